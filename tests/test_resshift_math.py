"""ResShift's schedule, posterior and samplers (SPEC §6) against closed forms written out here."""
import math

import numpy as np
import pytest
import torch

from timeaware_sr.samplers.resshift_sampler import posterior_step, sample_resshift
from timeaware_sr.samplers.resshift_schedule import PRESETS, resshift_sigmas, resshift_sigmas_table, sqrt_etas, timesteps_for


def closed_form_etas(T, kappa, min_noise_level, power, etas_end):
    """SPEC §6 rewritten: sqrt_eta_t = start * (end / start) ** ((t / (T-1)) ** power), eta = sqrt_eta^2."""
    start = min(min_noise_level / kappa, min_noise_level)
    x = np.arange(T) / (T - 1)
    return (start * (etas_end / start) ** (x ** power)) ** 2


@pytest.mark.parametrize("preset, first_sqrt", [("resshift_v1", 0.02), ("resshift_v3", 0.1)])
def test_eta_schedule_matches_spec_formula_first_last_and_monotone(preset, first_sqrt):
    p = PRESETS[preset]
    eta = sqrt_etas(p["T"], p["kappa"], p["min_noise_level"], p["power"], p["etas_end"]).numpy() ** 2
    assert len(eta) == p["T"]
    assert eta[0] == pytest.approx(first_sqrt ** 2, rel=1e-12)  # float64 throughout
    assert eta[-1] == pytest.approx(0.99 ** 2, rel=1e-12)  # etas_end is the last sqrt-eta
    assert np.all(np.diff(eta) > 0)
    np.testing.assert_allclose(eta, closed_form_etas(p["T"], p["kappa"], p["min_noise_level"], p["power"],
                                                     p["etas_end"]), rtol=1e-12)


def test_sigmas_are_kappa_sqrt_eta_descending_and_end_in_zero():
    class MS:  # what the scheduler reads off the model
        sigmas = resshift_sigmas_table(PRESETS["resshift_v1"]).float()
        preset_steps = 15

    s = resshift_sigmas(MS)
    p = PRESETS["resshift_v1"]
    expected = p["kappa"] * np.sqrt(closed_form_etas(15, 2.0, 0.04, 0.3, 0.99))[::-1]
    np.testing.assert_allclose(s[:-1].numpy(), expected, rtol=1e-6)  # float32 sigmas
    assert s[-1] == 0
    assert resshift_sigmas(MS, 1).tolist() == pytest.approx([expected[0], 0.0], rel=1e-6)  # SinSR / TAD-SR: t = T-1
    assert timesteps_for(15, 4) == [14, 9, 5, 0] and timesteps_for(4, 4) == [3, 2, 1, 0]


def posterior_coefficients(sigma, sigma_next):
    """(coefficient of x_t, of x0, std) of the implemented update, read off by linearity."""
    one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    a = posterior_step(one, zero, sigma, sigma_next, zero).item()
    b = posterior_step(zero, one, sigma, sigma_next, zero).item()
    std = posterior_step(zero, zero, sigma, sigma_next, one).item()
    return a, b, std


@pytest.mark.parametrize("preset", ["resshift_v1", "resshift_v3"])
def test_posterior_mean_and_variance_equal_closed_forms_and_keep_the_forward_marginal(preset):
    p = PRESETS[preset]
    kappa = p["kappa"]
    eta = closed_form_etas(p["T"], kappa, p["min_noise_level"], p["power"], p["etas_end"])
    sig = kappa * np.sqrt(eta)
    for t in range(1, p["T"]):
        a, b, std = posterior_coefficients(sig[t], sig[t - 1])
        alpha = eta[t] - eta[t - 1]
        assert a == pytest.approx(eta[t - 1] / eta[t], rel=1e-12)
        assert b == pytest.approx(alpha / eta[t], rel=1e-12)
        assert std ** 2 == pytest.approx(kappa ** 2 * eta[t - 1] * alpha / eta[t], rel=1e-12)
        # q(x_t | x0, y) = N(x0 + eta_t (y - x0), kappa^2 eta_t) pushed through the posterior is q(x_{t-1} | x0, y)
        x0, y = 0.3, -0.7
        mean_t = x0 + eta[t] * (y - x0)
        assert a * mean_t + b * x0 == pytest.approx(x0 + eta[t - 1] * (y - x0), rel=1e-12)
        assert a ** 2 * kappa ** 2 * eta[t] + std ** 2 == pytest.approx(kappa ** 2 * eta[t - 1], rel=1e-12)
    a, b, std = posterior_coefficients(sig[0], 0.0)  # the last step: x0, no noise
    assert (a, b, std) == (0.0, 1.0, 0.0)


def gaussian_x0_predictor(mu, s0, y, kappa):
    """E[x0 | x_t] when x0 ~ N(mu, s0^2) and x_t = (1 - eta) x0 + eta y + kappa sqrt(eta) eps (a Gaussian)."""
    def model(x, sigma, **kwargs):
        eta = (sigma[0].item() / kappa) ** 2
        a, v = 1 - eta, kappa ** 2 * eta
        return mu + s0 ** 2 * a / (a ** 2 * s0 ** 2 + v) * (x - eta * y - a * mu)
    return model


def test_multistep_sampling_converges_to_the_gaussian_target_as_steps_grow(report_table):
    mu, s0, y, kappa = 0.5, 0.8, -1.0, 2.0
    model = gaussian_x0_predictor(mu, s0, y, kappa)
    rows, errors = [], []
    for T in [1, 4, 15, 60, 240]:
        preset = dict(PRESETS["resshift_v1"], T=max(T, 2))
        table = resshift_sigmas_table(preset)
        sigmas = torch.cat([table.flip(0)[:T] if T > 1 else table[-1:], torch.zeros(1)]).double()
        g = torch.Generator().manual_seed(0)
        n = 100_000
        x = y + sigmas[0] * torch.randn(n, 1, dtype=torch.float64, generator=g)  # x_T = y + kappa sqrt(eta_T) eps
        out = sample_resshift(model, x, sigmas, disable=True,
                              noise_sampler=lambda s, sn: torch.randn(n, 1, dtype=torch.float64, generator=g))
        err = abs(out.mean().item() - mu) + abs(out.std().item() - s0)
        errors.append(err)
        rows.append(f"  T={T:4d}  mean {out.mean().item():+.4f} (target {mu})  std {out.std().item():.4f} "
                    f"(target {s0})  |error| {err:.4f}")
    report_table("ResShift posterior sampling, Gaussian x0, exact x0 predictor:\n" + "\n".join(rows))
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))
    # floor: the chain starts at y (not at q(x_T)'s mean) and ends at t = 0 with eta_0 = 4e-4 (about 0.015
    # at T = 240 in a 4e5-sample run); with 1e5 samples the Monte-Carlo error of mean and std is about 0.003 each
    assert errors[-1] < 0.03


def test_one_step_is_a_single_call_at_t_minus_one_and_returns_x0():
    calls = []

    def model(x, sigma, **kwargs):
        calls.append((x.clone(), sigma.clone()))
        return torch.full_like(x, 0.25)

    y = torch.randn(2, 3, 8, 8)
    sig = resshift_sigmas_table(PRESETS["sinsr"]).float()
    sigmas = torch.tensor([sig[-1].item(), 0.0])
    eps = torch.randn_like(y)
    out = sample_resshift(model, y + sigmas[0] * eps, sigmas, disable=True)
    assert len(calls) == 1 and torch.equal(calls[0][1], torch.full((2,), sigmas[0].item()))
    assert sigmas[0].item() == pytest.approx(2.0 * 0.99, rel=1e-6)  # kappa sqrt(eta_T)
    assert torch.equal(out, torch.full_like(y, 0.25))
