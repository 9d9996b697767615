"""DoSSR schedule and solvers (SPEC §3) against the official constants, ComfyUI's own DDPM
sampler, and a Gaussian case whose exact x0-predictor and target marginal are known."""
import math

import pytest
import torch

import comfy.k_diffusion.sampling as kds
import comfy.model_sampling
from timeaware_sr.samplers.ddpm import spaced_timesteps
from timeaware_sr.samplers.dossr_schedule import DEFAULT_T1, dossr_sigmas, eta_schedule, etas_at_sigmas
from timeaware_sr.samplers.dossr_solver import sample_dossr


@pytest.fixture(scope="module")
def ms():
    return comfy.model_sampling.ModelSamplingDiscrete()  # SD's linear-sqrt betas, T = 1000


def test_eta_table_matches_the_official_trunc_12_schedule():
    eta = eta_schedule()
    assert eta.dtype == torch.float64 and eta.shape == (1000,)
    assert eta[499].item() == pytest.approx((1 - math.cos(0.999 * math.pi)) / 2, abs=1e-15)  # float64
    assert eta[499].item() == pytest.approx(0.9999975326, abs=1e-10)  # digits given
    assert eta[0].item() == pytest.approx(2.4674e-6, rel=1e-4)  # 5 digits given
    assert torch.all(eta[500:] == 1) and torch.all(eta[1:500] > eta[:499])


@pytest.mark.parametrize("steps, expected", [
    (1, [0, 499]),
    (5, [0, 100, 200, 299, 399, 499]),
    (10, [0, 50, 100, 150, 200, 250, 299, 349, 399, 449, 499]),
])
def test_timestep_spacing_matches_guided_diffusion(steps, expected):
    assert spaced_timesteps(steps, DEFAULT_T1) == expected


def test_scheduler_gives_the_models_own_sigmas_at_the_official_timesteps(ms):
    sigmas = dossr_sigmas(ms, 5)
    assert torch.equal(sigmas, ms.sigmas[[499, 399, 299, 200, 100, 0]].float())
    assert ms.timestep(sigmas).tolist() == [499, 399, 299, 200, 100, 0]


def test_final_clean_only_replaces_the_last_sigma_with_zero(ms):
    official, clean = dossr_sigmas(ms, 5), dossr_sigmas(ms, 5, final_clean=True)
    assert torch.equal(official[:-1], clean[:-1]) and official[-1] > 0 and clean[-1] == 0


@pytest.mark.parametrize("steps, t1", [(0, 500), (500, 500), (5, 1), (5, 1001)])
def test_out_of_range_steps_or_t1_are_refused(ms, steps, t1):
    with pytest.raises(ValueError, match="steps|t1"):
        dossr_sigmas(ms, steps, t1)


def test_sigmas_above_t1_are_refused_with_a_clear_message(ms):
    with pytest.raises(ValueError, match="t1=500"):
        etas_at_sigmas(ms, ms.sigmas[[700, 300, 0]])


def test_flow_matching_models_are_refused_by_name():
    class Flow(comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST):
        pass

    with pytest.raises(ValueError, match="discrete-time \\(DDPM\\) diffusion model .* samples with Flow"):
        dossr_sigmas(Flow(), 5)


def toy_denoiser(x, sigma, **kwargs):
    """Nonlinear in x and sigma, so coefficient mix-ups show."""
    return torch.tanh(0.7 * x) / (1 + sigma[:, None, None, None] ** 2) + 0.1


class FixedNoise:
    def __init__(self, shape, n, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.noises = [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(n)]
        self.calls = 0

    def __call__(self, sigma, sigma_next):
        self.calls += 1
        return self.noises[self.calls - 1]


def test_with_zero_eta_order_1_equals_comfyuis_ddpm_sampler(ms):
    """eta = 0, t1 = T: the DoS-SDE order-1 step is SDE-DPM-Solver-1, i.e. ComfyUI's sample_ddpm."""
    sigmas = ms.sigmas[[800, 500, 250, 0]].double()
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * sigmas[0]
    zeros = torch.zeros(len(sigmas), dtype=torch.float64)
    ours = sample_dossr(toy_denoiser, x, sigmas, noise_sampler=FixedNoise(x.shape, 3), order=1, t1=1000,
                        x_hat0=torch.zeros_like(x), etas=zeros, disable=True)
    ref = kds.sample_ddpm(toy_denoiser, x, sigmas, noise_sampler=FixedNoise(x.shape, 3), disable=True)
    # float64 on both sides, different but equivalent formulas: agreement to rounding (~1e-15 relative)
    assert (ours - ref).abs().max() <= 1e-12 * ref.abs().max()


# --- Gaussian HR data: x0 ~ N(MU, VAR0), fixed LR latent XHAT ---------------------------------
MU, VAR0, XHAT, N_SAMPLES = 0.7, 0.25, -0.4, 500_000
STEPS = (1, 2, 5, 10, 25, 50, 100, 200)


def gaussian_denoiser(ms, t1=500):
    def denoise(x, sigma, **kwargs):
        s = sigma[0].double()
        eta = etas_at_sigmas(ms, sigma[:1], t1)[0]
        b = 1 - eta
        # x = eta XHAT + b x0 + s eps  =>  E[x0 | x] = MU + b VAR0 / (b^2 VAR0 + s^2) (x - eta XHAT - b MU)
        return MU + b * VAR0 / (b * b * VAR0 + s * s) * (x - eta * XHAT - b * MU)
    return denoise


def gaussian_run(ms, steps, order):
    """(mean error, std error) of the samples against the exact marginal at t = 0."""
    sigmas = dossr_sigmas(ms, steps).double()
    g = torch.Generator().manual_seed(123)  # common random numbers across runs
    x = XHAT + sigmas[0] * torch.randn(N_SAMPLES, 1, 1, 1, generator=g, dtype=torch.float64)
    noise = lambda sigma, sigma_next: torch.randn(x.shape, generator=g, dtype=torch.float64)  # noqa: E731
    out = sample_dossr(gaussian_denoiser(ms), x, sigmas, noise_sampler=noise, order=order,
                       x_hat0=torch.full_like(x, XHAT), etas=etas_at_sigmas(ms, sigmas), disable=True)
    eta0, s0 = etas_at_sigmas(ms, sigmas[-1:])[0].item(), sigmas[-1].item()
    target_mean, target_std = eta0 * XHAT + (1 - eta0) * MU, math.sqrt((1 - eta0) ** 2 * VAR0 + s0**2)
    return out.mean().item() - target_mean, out.std().item() - target_std


def test_gaussian_case_approaches_the_exact_marginal_and_higher_orders_win(ms, report_table):
    table = {(n, o): gaussian_run(ms, n, o) for n in STEPS for o in (1, 2, 3)}
    lines = ["DoSSR on Gaussian HR data with the exact x0-predictor: sample mean / std minus the exact t=0 marginal's",
             "steps " + "".join(f"   order {o}: mean      std " for o in (1, 2, 3))]
    lines += [f"{n:5d} " + "".join(f"   {table[n, o][0]:+.1e}  {table[n, o][1]:+.1e}" for o in (1, 2, 3)) for n in STEPS]
    report_table("\n".join(lines))
    mc = 3e-3  # Monte Carlo error of the mean (std 0.5, 5e5 samples: 7e-4) with margin
    assert all(abs(table[key][0]) < mc for key in table if key[0] >= 5)
    for order in (1, 2, 3):
        # The std error shrinks steadily once steps resolve the eta ramp (orders 2-3 overshoot at 10).
        std_errors = [abs(table[n, order][1]) for n in (25, 50, 100, 200)]
        assert std_errors == sorted(std_errors, reverse=True), f"order {order}: {std_errors}"
        assert std_errors[-1] < (0.015 if order == 1 else 0.005)
    assert abs(table[5, 2][1]) < abs(table[5, 1][1]) and abs(table[5, 3][1]) < abs(table[5, 1][1])


@pytest.mark.parametrize("dtype, tolerance", [
    (torch.float16, 1e-2),  # fp16 keeps ~3 decimal digits: its rounding of x, x_hat0 and each output, over 5 steps
    (torch.float32, 1e-5),  # float32 rounding of the same
])
def test_low_precision_from_eta_near_one_matches_float64(ms, dtype, tolerance):
    """1 - eta ~ 2.5e-6 at the first step: the coefficients must be formed in float64 and only the
    weighted sum done in the latent's dtype, so fp16 / fp32 runs track the float64 run."""
    sigmas = dossr_sigmas(ms, 5)
    g = torch.Generator().manual_seed(4)
    x_hat0 = torch.randn(1, 4, 8, 8, generator=g, dtype=torch.float64)
    x = x_hat0 + sigmas[0] * torch.randn(1, 4, 8, 8, generator=g, dtype=torch.float64)
    noises = [torch.randn(1, 4, 8, 8, generator=g, dtype=torch.float64) for _ in range(5)]
    model = lambda x, sigma, **kw: torch.tanh(0.5 * x) + 0.1  # noqa: E731

    def run(dt, steps_done):
        stream = iter(noises)
        return sample_dossr(model, x.to(dt), sigmas[:steps_done + 1], x_hat0=x_hat0.to(dt),
                            etas=etas_at_sigmas(ms, sigmas[:steps_done + 1]), order=3, disable=True,
                            noise_sampler=lambda a, b: next(stream).to(dt))

    for steps_done in (1, 5):
        out, exact = run(dtype, steps_done), run(torch.float64, steps_done)
        assert out.dtype == dtype
        assert (out.double() - exact).abs().max() <= tolerance * exact.abs().max()


def test_the_model_is_called_without_autograd(ms):
    """Like k-diffusion's samplers: recording the UNet's graph would cost time and memory."""
    seen = []
    model = lambda x, sigma, **kw: (seen.append(torch.is_grad_enabled()), 0.5 * x)[1]  # noqa: E731
    sigmas = dossr_sigmas(ms, 3)
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    sample_dossr(model, x, sigmas, x_hat0=x.detach(), etas=etas_at_sigmas(ms, sigmas), disable=True)
    assert seen == [False, False, False]


def official_vp_form(den_vp, xhat, noises, steps, order, init_noise, abar):
    """SPEC §3's VP-form update written out directly (A = alpha (1 - eta), lambda = sigma / A), with the
    official state init and lower-order first steps: an independent reference for the VE solver."""
    ts = spaced_timesteps(steps, DEFAULT_T1)
    ab = abar[ts]
    alpha, sig, eta = ab.sqrt(), (1 - ab).sqrt(), eta_schedule()[ts]
    A = alpha * (1 - eta)
    lam = sig / A
    x = alpha[-1] * xhat + sig[-1] * init_noise
    x0_prev, d1_prev = None, None
    for k, j in enumerate(range(steps, 0, -1)):
        x0 = den_vp(x, j)
        r = lam[j - 1] / lam[j]
        new = (A[j - 1] / A[j]) * r**2 * x + A[j - 1] * (eta[j - 1] / (1 - eta[j - 1]) - r**2 * eta[j] / (1 - eta[j])) * xhat
        new = new + A[j - 1] * (1 - r**2) * x0
        if order >= 2 and x0_prev is not None:
            d1 = (x0 - x0_prev) / (lam[j] - lam[j + 1])
            new = new - A[j - 1] * (lam[j - 1] - lam[j]) ** 2 / lam[j] * d1
            if order == 3 and d1_prev is not None:
                d2 = 2 * (d1 - d1_prev) / (lam[j] - lam[j + 2])
                new = new + A[j - 1] * ((lam[j] - 3 * lam[j - 1]) * (lam[j] - lam[j - 1]) / 2 - lam[j - 1] ** 2 * math.log(r)) * d2
            d1_prev = d1
        x0_prev = x0
        x = new + A[j - 1] * lam[j - 1] * math.sqrt(1 - r**2) * noises[k]
    return x, alpha[0]


@pytest.mark.parametrize("steps", [1, 2, 5, 10])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_ve_solver_equals_the_vp_form_of_spec_section_3(ms, steps, order):
    """Float64 throughout: the two forms must agree to rounding (the official code returns the VP state,
    alpha_0 times ComfyUI's VE state)."""
    g = torch.Generator().manual_seed(steps * 10 + order)
    shape = (2, 1, 4, 4)
    xhat = torch.randn(shape, generator=g, dtype=torch.float64)
    init = torch.randn(shape, generator=g, dtype=torch.float64)
    noises = [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(steps)]
    abar = 1 / (1 + ms.sigmas.double() ** 2)
    sig_ve = ((1 - abar) / abar).sqrt()[list(reversed(spaced_timesteps(steps, DEFAULT_T1)))]
    den_ve = lambda x, sigma, **kw: torch.tanh(0.5 * x) + 0.05 * sigma[:, None, None, None]  # noqa: E731
    stream = iter(noises)
    ve = sample_dossr(den_ve, xhat + sig_ve[0] * init, sig_ve, noise_sampler=lambda a, b: next(stream), order=order,
                      x_hat0=xhat, etas=etas_at_sigmas(ms, sig_ve.float()), disable=True)

    def den_vp(x_vp, j):
        s = sig_ve[steps - j].item()
        return den_ve(x_vp * math.sqrt(1 + s * s), torch.full((shape[0],), s, dtype=torch.float64))

    vp, alpha0 = official_vp_form(den_vp, xhat, noises, steps, order, init, abar)
    assert ((ve * alpha0 - vp).abs().max() / vp.abs().max()).item() < 1e-12


def test_a_nan_lr_latent_is_refused(ms):
    from types import SimpleNamespace

    from timeaware_sr.samplers.dossr_solver import LR_SOURCE
    from timeaware_sr.samplers.lr_latent import lr_latent
    latent = torch.zeros(1, 4, 8, 8)
    latent[0, 0, 0, 0] = float("nan")
    model = SimpleNamespace(latent_image=latent, inner_model=SimpleNamespace(
        inner_model=SimpleNamespace(latent_format=SimpleNamespace(latent_channels=4))))
    with pytest.raises(ValueError, match="LR latent given to the DoSSR sampler contains NaN"):
        lr_latent(model, "the DoSSR sampler", LR_SOURCE)
