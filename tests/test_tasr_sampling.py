"""TASR sampling (SPEC §4): space_timesteps(1000, "20") through the tasr_spaced scheduler, the stock
ddpm sampler's step equal to the official spaced-DDPM posterior update, the network fed the original
timesteps, and nothing leaking into the unpatched MODEL or CONTROL_NET."""
import pytest
import torch

from support import ckpt_factory as cf
from support import tasr_factory as tf
import comfy.k_diffusion.sampling as kds
import comfy.model_base
import comfy.model_sampling
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
from timeaware_sr.nodes import ksampler_lists
from timeaware_sr.model_patches.sd_components import build_unet, build_vae
from timeaware_sr.model_patches.tasr.adapter_patch import apply_tasr_adapters
from timeaware_sr.model_patches.tasr.checkpoint import load_tasr
from timeaware_sr.samplers.tasr_schedule import spaced_ddpm_sigmas


def guided_diffusion_space_timesteps(num_timesteps, count):
    """guided-diffusion respace.space_timesteps(num_timesteps, str(count)) for one section, written out."""
    stride = 1 if count <= 1 else (num_timesteps - 1) / (count - 1)
    steps, position = [], 0.0
    for _ in range(count):
        steps.append(round(position))
        position += stride
    return sorted(set(steps))


def sd_model_sampling():
    class SD(comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.EPS):
        pass

    return SD()  # SD's scaled-linear betas, 0.00085 .. 0.012, 1000 steps


@pytest.mark.parametrize("steps", [20, 7, 1])
def test_the_scheduler_gives_space_timesteps_as_the_models_own_sigmas(steps):
    ms = sd_model_sampling()
    sigmas = spaced_ddpm_sigmas(ms, steps)
    expected = list(reversed(guided_diffusion_space_timesteps(1000, steps)))
    assert sigmas[-1] == 0 and len(sigmas) == steps + 1
    assert ms.timestep(sigmas[:-1]).long().tolist() == expected
    assert torch.equal(sigmas[:-1], ms.sigmas[expected].float())
    if steps == 20:
        assert expected[:3] == [999, 946, 894] and expected[-3:] == [105, 53, 0]  # SPEC §4: 0, 53, ..., 946, 999


def test_the_scheduler_is_in_ksamplers_list():
    ksampler_lists.register()  # what the pack's extension does when ComfyUI loads it
    assert "tasr_spaced" in comfy.samplers.SCHEDULER_NAMES and "ddpm" in comfy.samplers.SAMPLER_NAMES
    ms = sd_model_sampling()
    assert torch.equal(comfy.samplers.calculate_sigmas(ms, "tasr_spaced", 20), spaced_ddpm_sigmas(ms, 20))


def sd_alphas_cumprod():
    """SD's schedule (SPEC notation), float64 as the official sampler's numpy arrays."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, dim=0)


def official_step(x_vp, eps, k, timesteps, alphas_cumprod, z):
    """utils/sampler.py's p_sample at spaced index k, in float64: respaced betas from the original
    alphas_cumprod, x0 from eps, the posterior mean and the posterior variance (no noise at k = 0)."""
    abar = alphas_cumprod[timesteps]
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    beta = 1 - abar / abar_prev
    x0 = (1 / abar[k]).sqrt() * x_vp - (1 / abar[k] - 1).sqrt() * eps
    coef1 = beta[k] * abar_prev[k].sqrt() / (1 - abar[k])
    coef2 = (1 - abar_prev[k]) * (1 - beta[k]).sqrt() / (1 - abar[k])
    variance = beta[k] * (1 - abar_prev[k]) / (1 - abar[k])
    return coef1 * x0 + coef2 * x_vp + (variance.sqrt() * z if k > 0 else 0)


@pytest.mark.parametrize("k", [19, 10, 1, 0])  # first step, a middle one, the last noisy one, the final one
def test_one_ddpm_step_equals_the_official_spaced_posterior_update(k):
    ms = sd_model_sampling()
    timesteps = guided_diffusion_space_timesteps(1000, 20)
    sigmas = spaced_ddpm_sigmas(ms, 20)
    i = 19 - k  # ComfyUI walks the schedule from the noisiest end
    g = torch.Generator().manual_seed(k)
    x_vp = torch.randn(1, 4, 6, 6, generator=g, dtype=torch.float64)
    eps = torch.randn(1, 4, 6, 6, generator=g, dtype=torch.float64)
    z = torch.randn(1, 4, 6, 6, generator=g, dtype=torch.float64)
    sigma = sigmas[i].double()
    x_ve = x_vp * (1 + sigma**2).sqrt()

    def eps_model(x, s, **kwargs):  # a k-diffusion denoiser whose eps prediction is `eps`
        return (x - s.view(-1, 1, 1, 1) * eps.float()).float()

    out = kds.sample_ddpm(eps_model, x_ve.float(), sigmas[i:i + 2], noise_sampler=lambda *a: z.float(), disable=True)
    next_sigma = sigmas[i + 1].double()
    expected = official_step(x_vp, eps, k, timesteps, sd_alphas_cumprod(), z) * (1 + next_sigma**2).sqrt()
    # ComfyUI forms the coefficients in float32 from sigmas, the reference in float64: 1e-5 relative
    assert (out.double() - expected).abs().max() <= 1e-5 * expected.abs().max()


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    path = tmp_path_factory.mktemp("tasr") / "tasr_v1.pth"
    model = build_unet(tf.sd21_unet_state_dict("tiny"), comfy.model_base.ModelType.EPS)
    return model, build_vae(cf.vae_state_dict("tiny")), load_tasr(str(tf.write_tasr(path, tf.tasr_state_dict("tiny"))))


def run(model, control, steps=20, batch=1, seed=3):
    """KSampler's path: sampler and scheduler by their dropdown names."""
    ksampler_lists.register()
    hint_conds = {"control": control}
    g = torch.Generator().manual_seed(4)
    positive = [[torch.randn(batch, 4, cf.TINY_CONTEXT, generator=g), dict(hint_conds)]]
    negative = [[torch.randn(batch, 4, cf.TINY_CONTEXT, generator=g), dict(hint_conds)]]
    latent = torch.zeros(batch, 4, 8, 8)
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(model, noise, steps, 4.0, "ddpm", "tasr_spaced", positive, negative, latent,
                               seed=seed, disable_pbar=True)


def control_for(parts):
    model, vae, tasr = parts
    hint = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(8))
    return tasr.control_net.copy().set_cond_hint(hint, 1.0, (0.0, 1.0), vae=vae)


def test_ksampler_feeds_the_network_the_original_timesteps(parts):
    model, _, tasr = parts
    gated = apply_tasr_adapters(model, tasr.adapters)
    seen = []

    def record(executor, x, timesteps, *args, **kwargs):
        seen.append(timesteps[0].item())
        return executor(x, timesteps, *args, **kwargs)

    gated.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test_record", record)
    run(gated, control_for(parts))
    expected = list(reversed(guided_diffusion_space_timesteps(1000, 20)))
    assert seen == expected  # one batched cond+uncond call per step, at 999, 946, ..., 53, 0


def test_cfg_with_a_batch_gates_each_image_like_a_single_run(parts):
    """Batch 2 under CFG 4 (cond and uncond batched: 4 images per UNet call, one hint broadcast):
    each image equals its own batch-1 run. Deterministic Euler, so only the batching differs."""
    model, _, tasr = parts
    gated = apply_tasr_adapters(model, tasr.adapters)
    sigmas = spaced_ddpm_sigmas(model.get_model_object("model_sampling"), 3)
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(6))
    g = torch.Generator().manual_seed(4)
    cond, uncond = torch.randn(1, 4, cf.TINY_CONTEXT, generator=g), torch.randn(1, 4, cf.TINY_CONTEXT, generator=g)

    def sample(n):
        control = control_for(parts)
        positive = [[cond.repeat(len(n), 1, 1), {"control": control}]]
        negative = [[uncond.repeat(len(n), 1, 1), {"control": control}]]
        return comfy.sample.sample_custom(gated, n, 4.0, comfy.samplers.KSAMPLER(kds.sample_euler), sigmas, positive,
                                          negative, torch.zeros_like(n), seed=0, disable_pbar=True)

    both = sample(noise)
    for i in range(2):
        alone = sample(noise[i:i + 1])
        assert (both[i] - alone[0]).abs().max() <= 1e-5 * alone.abs().max()  # batched convs: float32 round-off
    assert (both[0] - both[1]).abs().max() > 1e-3


def test_the_original_model_and_controlnet_are_unchanged_by_a_tasr_run(parts):
    model, _, tasr = parts
    control = control_for(parts)
    unet_before = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    control_before = {k: v.clone() for k, v in tasr.control_net.control_model.state_dict().items()}
    plain = run(model, control, steps=4)
    run(apply_tasr_adapters(model, tasr.adapters), control, steps=4)
    assert all(torch.equal(v, unet_before[k]) for k, v in model.model.diffusion_model.state_dict().items())
    assert all(torch.equal(v, control_before[k]) for k, v in tasr.control_net.control_model.state_dict().items())
    assert not model.wrappers.get(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL)
    assert "patches" not in model.model_options["transformer_options"]
    assert torch.equal(run(model, control, steps=4), plain)


def test_a_flow_matching_model_is_refused_in_tasrs_name():
    from timeaware_sr.clear_errors import InputError

    class FlowSampling(comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST):
        def __init__(self):  # no model_config needed: only the type is inspected
            torch.nn.Module.__init__(self)

    with pytest.raises(InputError, match="model: TASR needs a discrete-time"):
        spaced_ddpm_sigmas(FlowSampling(), 20)
