"""TSS Time Dynamic Sampling (SPEC §1): f's defining properties, and ComfyUI's `normal` scheduler as
the independent reference at n = 1."""
import pytest
import torch

import comfy.model_sampling
import comfy.samplers
from support.comfy_live import PromptRejected
from timeaware_sr.samplers.tds_schedule import tds_remap, tds_sigmas, tds_timesteps

T = 999.0


@pytest.mark.parametrize("a, n", [(550.0, 2.0), (300.0, 3.5), (800.0, 1.5)])
def test_f_fixes_zero_a_and_T_and_is_monotone(a, n):
    assert tds_remap(torch.tensor(0.0), a, n, T).item() == 0
    assert tds_remap(torch.tensor(a), a, n, T).item() == pytest.approx(a, abs=1e-9)
    assert tds_remap(torch.tensor(T), a, n, T).item() == pytest.approx(T, abs=1e-9)  # float64 powers of ~1e3: rounding ~1e-13
    t = torch.linspace(0, T, 10001, dtype=torch.float64)
    assert torch.all(torch.diff(tds_remap(t, a, n, T)) > 0)


def test_n_one_is_exactly_the_uniform_schedule():
    uniform = torch.linspace(T, 0, 25, dtype=torch.float64)
    assert torch.equal(tds_timesteps(25, 400.0, 1.0, T, 0.0), uniform)
    t = torch.linspace(0, T, 1001, dtype=torch.float64)
    assert torch.equal(tds_remap(t, 400.0, 1.0, T), t)


@pytest.mark.parametrize("n", [1.5, 2.0, 3.0])
def test_steps_are_denser_at_both_ends_than_at_a(n):
    t = tds_timesteps(41, 550.0, n, T, 0.0)
    gaps = -torch.diff(t)
    near_a = gaps[torch.argmin((t[:-1] - 550).abs())]
    assert gaps[0] < near_a and gaps[-1] < near_a


def test_n_one_equals_comfyuis_normal_scheduler():
    ms = comfy.model_sampling.ModelSamplingDiscrete()
    ours = tds_sigmas(ms, 12, a=500.0, n=1.0)
    theirs = comfy.samplers.calculate_sigmas(ms, "normal", 12)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)  # both float32 sigma(t) lookups: rounding ~1e-7


def test_a_partial_start_keeps_both_ends_and_a():
    t = tds_timesteps(9, 300.0, 2.5, 600.0, 100.0)
    assert t[0].item() == pytest.approx(600) and t[-1].item() == pytest.approx(100)  # float64; approx's 1e-6 relative
    f = tds_remap(torch.tensor(200.0), 200.0, 2.5, 500.0)  # a maps to itself on the stretched interval
    assert f.item() == pytest.approx(200.0)  # float64; approx's 1e-6 relative


@pytest.mark.parametrize("start, end, a, n", [(600.0, 100.0, 300.0, 2.5), (499.0, 250.0, 420.0, 3.0)])
def test_a_partial_interval_is_f_on_the_interval_stretched_by_hand(start, end, a, n):
    """SPEC §1's f written out on [end, start] mapped to [0, T']: u = t - end, a' = a - end."""
    t = torch.linspace(start, end, 13, dtype=torch.float64)
    T_, u, a_ = start - end, t - end, a - end
    expected = end + torch.where(u < a_, u**n / a_ ** (n - 1), T_ - (T_ - u) ** n / (T_ - a_) ** (n - 1))
    # float64 throughout; 1e-9 of a timestep is rounding (powers of numbers up to 1e3)
    torch.testing.assert_close(tds_timesteps(13, a, n, start, end), expected, rtol=0, atol=1e-9)


def test_per_pixel_parameters_broadcast():
    a = torch.tensor([[300.0, 700.0]])
    n = torch.tensor([[1.0, 3.0]])
    out = tds_remap(torch.tensor(500.0), a, n, T)
    assert out.shape == (1, 2)
    assert out[0, 0].item() == 500.0  # n = 1: untouched
    assert out[0, 1].item() == pytest.approx(500**3 / 700**2)  # float64; approx's 1e-6 relative


@pytest.mark.parametrize("a, n, start, end, message", [
    (500.0, 0.5, T, 0.0, "n must be at least 1"),
    (0.0, 2.0, T, 0.0, "a must lie strictly between"),
    (T, 2.0, T, 0.0, "a must lie strictly between"),
    (500.0, 2.0, 300.0, 400.0, "end timestep must be at least 0 and below the start"),
])
def test_bad_parameters_are_refused_by_name(a, n, start, end, message):
    with pytest.raises(ValueError, match=message):
        tds_timesteps(10, a, n, start, end)


def test_live_tds_scheduler_node_and_ksampler_entry(comfy):
    info = comfy.object_info()
    assert "tds" in info["KSampler"]["input"]["required"]["scheduler"][0]
    prompt = {
        "1": {"class_type": "TimeAwareSR_StarterModelLoader", "inputs": {"model_name": "starter_sr.safetensors"}},
        "2": {"class_type": "TimeAwareSR_TDSScheduler", "inputs": {"model": ["1", 0], "steps": 6, "a": 550.0, "n": 2.0,
                                                                  "start": 999.0, "end": 0.0}},
        "3": {"class_type": "SamplerCustom", "inputs": {
            "model": ["1", 0], "add_noise": True, "noise_seed": 1, "cfg": 1.0, "positive": ["1", 2], "negative": ["1", 2],
            "sampler": ["4", 0], "sigmas": ["2", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["1", 1]}},
    }
    assert comfy.run(prompt)["6"]["images"]
    prompt["2"]["inputs"]["n"] = 0.5
    with pytest.raises(PromptRejected) as err:
        comfy.run(prompt)
    assert "n must be at least 1 and at most 10, got 0.5" in err.value.messages()
    prompt["2"]["inputs"].update(n=2.0, a=1000.0)
    with pytest.raises(PromptRejected) as err:
        comfy.run(prompt)
    assert "a must lie strictly between" in err.value.messages()
