"""TADSR's one step through ComfyUI's sampling path equals the official get_x0_from_res,
x0 = z_L / sqrt(abar_ts) - UNet(z_L, t_s, c), written out here from a raw UNet call (SPEC §5)."""
import pytest
import torch

from support import tadsr_factory as tf
from test_tadsr_lora import tiny_model
from timeaware_sr.model_patches.tadsr import checkpoint as ck
from timeaware_sr.samplers.tadsr_one_step import sample_tadsr_one_step, tadsr_sigmas

LATENT_SCALE = 0.18215  # SD's VAE scaling factor (ComfyUI's process_latent_in)


def official_alphas_cumprod():
    """diffusers DDPMScheduler, SD 2.1 scheduler config: scaled_linear betas 0.00085..0.012, float32."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


@pytest.fixture(scope="module")
def model():
    return ck.tadsr_model(tiny_model(), ck.parse_tadsr_checkpoint(tf.tadsr_pkl_dict("tiny", seed=6)))


def conds(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 77, 64, generator=g)  # tiny SD 2.1 text context width 64


def run_one_step(model, latent, t_s, cfg=1.0, positive=None, negative=None, callback=None):
    import comfy.sample
    import comfy.samplers

    positive = conds(1) if positive is None else positive
    negative = conds(2) if negative is None else negative
    sigmas = tadsr_sigmas(model.get_model_object("model_sampling"), t_s)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(9))  # must be ignored
    return comfy.sample.sample_custom(model, noise, cfg, comfy.samplers.KSAMPLER(sample_tadsr_one_step), sigmas,
                                      [[positive, {}]], [[negative, {}]], latent, callback=callback, seed=9)


def raw_unet(model, z, t_s, context):
    """The patched UNet called directly, as the official code calls its diffusers UNet."""
    import comfy.model_management as mm

    mm.load_models_gpu([model])
    with torch.no_grad():
        return model.model.diffusion_model(z, timesteps=torch.full((z.shape[0],), t_s), context=context.expand(z.shape[0], -1, -1))


@pytest.mark.parametrize("t_s", [1, 500, 999])
def test_one_step_equals_z_over_sqrt_abar_minus_unet_output(model, t_s):
    latent = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(t_s))  # raw VAE latent (LATENT)
    out = run_one_step(model, latent, t_s)
    z = latent * LATENT_SCALE
    f = raw_unet(model, z, t_s, conds(1))
    x0 = z / official_alphas_cumprod()[t_s] ** 0.5 - f
    expected = x0 / LATENT_SCALE
    # float32: ComfyUI's schedule is built in float64 (official float32, ~1e-7 relative) and the VE
    # round trip x = z*sqrt(1+s^2), (x - denoised)/s adds a few ulp of |x|/s (s(1) ~ 0.04)
    assert (out - expected).abs().max() <= 2e-5 * expected.abs().max()


def test_cfg_above_one_mixes_the_unet_outputs(model):
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    out = run_one_step(model, latent, 500, cfg=3.0)
    z = latent * LATENT_SCALE
    f_c, f_u = raw_unet(model, z, 500, conds(1)), raw_unet(model, z, 500, conds(2))
    expected = (z / official_alphas_cumprod()[500] ** 0.5 - (f_u + 3.0 * (f_c - f_u))) / LATENT_SCALE
    assert (out - expected).abs().max() <= 2e-5 * expected.abs().max()  # as above


@pytest.mark.parametrize("t_s", [1, 500, 999])
def test_sigmas_hit_the_integer_timestep(model, t_s):
    ms = model.get_model_object("model_sampling")
    sigmas = tadsr_sigmas(ms, t_s)
    assert sigmas[1] == 0 and int(ms.timestep(sigmas[0])) == t_s
    assert abs(1 / (1 + sigmas[0].double() ** 2) - official_alphas_cumprod()[t_s].double()) < 1e-6  # abar from sigma


def test_the_step_reports_progress_with_the_result_as_preview(model):
    seen = []
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    out = run_one_step(model, latent, 500, callback=lambda i, denoised, x, total: seen.append((i, denoised, total)))
    [(i, denoised, total)] = seen
    assert i == 0 and total == 1 and torch.allclose(denoised / LATENT_SCALE, out, atol=1e-6)


def test_several_steps_or_an_empty_latent_are_refused(model):
    import comfy.sample
    import comfy.samplers

    sampler = comfy.samplers.KSAMPLER(sample_tadsr_one_step)
    latent = torch.zeros(1, 4, 8, 8)
    with pytest.raises(ValueError, match=r"needs the LR image's latent as its input latent \(from 'TADSR Encode'\)"):
        comfy.sample.sample_custom(model, latent, 1.0, sampler, torch.tensor([1.0, 0.0]), [[conds(1), {}]],
                                   [[conds(2), {}]], latent)
    with pytest.raises(ValueError, match="takes exactly one step"):
        comfy.sample.sample_custom(model, latent, 1.0, sampler, torch.tensor([2.0, 1.0, 0.0]), [[conds(1), {}]],
                                   [[conds(2), {}]], latent + 1)


@pytest.mark.parametrize("t_s", [0, 1000])
def test_t_s_outside_1_999_is_refused(model, t_s):
    with pytest.raises(ValueError, match="t_s must be between 1 and 999"):
        tadsr_sigmas(model.get_model_object("model_sampling"), t_s)


def test_a_cancel_stops_the_step(model):
    """The UNet call runs through ComfyUI's ops, which check for a cancel at every layer."""
    import comfy.model_management as mm

    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            run_one_step(model, latent, 500)
    finally:
        mm.interrupt_current_processing(False)
    assert torch.isfinite(run_one_step(model, latent, 500)).all()  # and the next run is unaffected
