"""Device hygiene of every method's sampling (issue 26 item 2), on the CPU through DeviceSentinel
(support/device_sentinel.py: which tensors would be on the CPU of a GPU machine, and which ops the
pack's own code runs in the per-step path).

Each method runs through ComfyUI's sampling at test size, at two step counts. In the per-step path
the pack must make no tensor without device=, move no CPU-made tensor to the device, mix none with
device tensors, copy no device tensor to the host and make no float64 tensor; and the number of
host-to-device moves it makes in the whole run must not grow with the steps (schedules are formed on
the CPU and moved once per run: samplers/pixel_schedule.py DeviceSteps). What this cannot show, a
real device shows: `make gpu-check` (tools/gpu_check.py) runs every method on CUDA."""
import pytest
import torch

from support import ckpt_factory as cf
from support import resshift_factory
from support import tadsr_factory
from support import tasr_factory
from support.device_sentinel import DeviceSentinel, watch_network
import comfy.model_base
import comfy.sample
import comfy.samplers
from timeaware_sr.model_patches.sd_components import build_unet, build_vae
from timeaware_sr.samplers.dossr_schedule import dossr_sigmas
from timeaware_sr.samplers.dossr_solver import sample_dossr


def conds(batch, width, seed=11, extra=None):
    g = torch.Generator().manual_seed(seed)
    return ([[torch.randn(batch, 4, width, generator=g), dict(extra or {})]],
            [[torch.randn(batch, 4, width, generator=g), dict(extra or {})]])


def sample(model, sampler, sigmas, latent, cfg=2.0, width=cf.TINY_CONTEXT, extra=None):
    positive, negative = conds(latent.shape[0], width, extra=extra)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(5))
    return comfy.sample.sample_custom(model, noise, cfg, sampler, sigmas, positive, negative, latent, seed=5,
                                      disable_pbar=True)


def sd_model():
    return build_unet({k[len(cf.UNET_PREFIX):]: v for k, v in cf.unet_state_dict("sd21", "tiny", "eps").items()})


def lr(shape=(2, 4, 8, 8)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(2))


def variance(shape=(2, 64, 64)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(4))


def dossr(steps):
    model = sd_model()
    sigmas = dossr_sigmas(model.get_model_object("model_sampling"), steps)
    return model, lambda: sample(model, comfy.samplers.KSAMPLER(sample_dossr, {"order": 3}), sigmas, lr())


def dossr_tss(steps):
    from timeaware_sr.model_patches.tss.spatial_timestep import patch_spatial_timesteps

    model = patch_spatial_timesteps(sd_model())
    sigmas = dossr_sigmas(model.get_model_object("model_sampling"), steps)
    options = {"order": 3, "variance": variance()}
    return model, lambda: sample(model, comfy.samplers.KSAMPLER(sample_dossr, options), sigmas, lr())


def dossr_tiled(steps):
    """DoSSR through Tiled Diffusion: 8x8 latent tiles with overlap over a 16x16 latent."""
    from timeaware_sr.model_patches.tiling.tiled_model import patch_tiled_diffusion

    model = patch_tiled_diffusion(sd_model(), tile_size=8, overlap=2, tile_batch=2)
    sigmas = dossr_sigmas(model.get_model_object("model_sampling"), steps)
    return model, lambda: sample(model, comfy.samplers.KSAMPLER(sample_dossr, {"order": 3}), sigmas,
                                 lr((1, 4, 16, 16)))


def tss(base):
    def build(steps):
        from timeaware_sr.model_patches.tss.spatial_timestep import patch_spatial_timesteps
        from timeaware_sr.samplers.tds_schedule import tds_sigmas
        from timeaware_sr.samplers.tss_sampler import sample_tss

        model = patch_spatial_timesteps(sd_model())
        sigmas = tds_sigmas(model.get_model_object("model_sampling"), steps)
        options = {"variance": variance(), "base": base}
        return model, lambda: sample(model, comfy.samplers.KSAMPLER(sample_tss, options), sigmas, torch.zeros(2, 4, 8, 8))
    return build


def resshift(steps):
    from timeaware_sr.model_patches.resshift.checkpoint import build_resshift_model
    from timeaware_sr.model_patches.resshift.model import LQ_KEY
    from timeaware_sr.samplers.resshift_sampler import sample_resshift_in_comfy
    from timeaware_sr.samplers.resshift_schedule import resshift_sigmas

    model = build_resshift_model(resshift_factory.unet_state_dict("tiny"), "resshift_v1", "tiny")
    sigmas = resshift_sigmas(model.get_model_object("model_sampling"), steps)
    lq = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    latent = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    return model, lambda: sample(model, comfy.samplers.KSAMPLER(sample_resshift_in_comfy), sigmas, latent, cfg=1.0,
                                 width=1, extra={LQ_KEY: lq})


def tasr(steps, tmp_path):
    from timeaware_sr.model_patches.tasr.adapter_patch import apply_tasr_adapters
    from timeaware_sr.model_patches.tasr.checkpoint import load_tasr
    from timeaware_sr.nodes import ksampler_lists

    ksampler_lists.register()
    parts = load_tasr(str(tasr_factory.write_tasr(tmp_path / "tasr_v1.pth", tasr_factory.tasr_state_dict("tiny"))))
    model = apply_tasr_adapters(build_unet(tasr_factory.sd21_unet_state_dict("tiny"), comfy.model_base.ModelType.EPS),
                                parts.adapters)
    hint = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(8))
    control = parts.control_net.copy().set_cond_hint(hint, 1.0, (0.0, 1.0), vae=build_vae(cf.vae_state_dict("tiny")))
    sampler = comfy.samplers.ksampler("ddpm")
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "tasr_spaced", steps)
    return model, lambda: sample(model, sampler, sigmas, torch.zeros(1, 4, 8, 8), cfg=4.0, extra={"control": control})


def starter(steps):
    from support import starter_eval

    model, _, cond = starter_eval.load_model()
    up = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1  # the bicubic-upscaled LR
    sigmas = dossr_sigmas(model.get_model_object("model_sampling"), steps)
    sampler = comfy.samplers.KSAMPLER(sample_dossr, {"order": 3})
    noise = torch.randn(up.shape, generator=torch.Generator().manual_seed(5))
    return model, lambda: comfy.sample.sample_custom(model, noise, 1.0, sampler, sigmas, cond, cond, up, seed=5,
                                                     disable_pbar=True)


MULTI_STEP = {"dossr": dossr, "dossr_tss": dossr_tss, "dossr_tiled": dossr_tiled, "tss_euler": tss("euler"), "tss_dpmpp_2m": tss("dpmpp_2m"),
              "resshift": resshift, "tasr": tasr, "starter": starter}


def watched_run(build, steps, *args):
    model, run = build(steps, *args)
    sentinel = DeviceSentinel()
    hook = watch_network(model, sentinel)
    try:
        with sentinel:
            out = run()
    finally:
        hook.remove()
    assert torch.isfinite(out).all()
    return sentinel


@pytest.mark.parametrize("method", MULTI_STEP)
def test_the_per_step_path_makes_and_moves_nothing_on_the_cpu_and_no_float64(method, tmp_path):
    args = (tmp_path,) if method == "tasr" else ()
    few, more = (watched_run(MULTI_STEP[method], steps, *args) for steps in (2, 3))
    assert more.pack_ops_in_steps > few.pack_ops_in_steps > 0, "the sentinel saw none of the pack's per-step code"
    assert not few.violations and not more.violations, sorted(set(few.violations + more.violations))
    assert len(more.transfers) == len(few.transfers), (
        f"{method}: host-to-device moves grow with the steps: {few.transfers} at 2 steps, {more.transfers} at 3")


def test_tadsrs_one_step_makes_and_moves_nothing_on_the_cpu_and_no_float64():
    """One step: its whole sampler is the per-step path."""
    from test_tadsr_lora import tiny_model
    from timeaware_sr.model_patches.tadsr import checkpoint as ck
    from timeaware_sr.samplers.tadsr_one_step import sample_tadsr_one_step, tadsr_sigmas

    model = ck.tadsr_model(tiny_model(), ck.parse_tadsr_checkpoint(tadsr_factory.tadsr_pkl_dict("tiny", seed=6)))
    sigmas = tadsr_sigmas(model.get_model_object("model_sampling"), 500)
    sentinel = DeviceSentinel()

    def one_step(*args, **kwargs):
        sentinel.start_steps()
        return sample_tadsr_one_step(*args, **kwargs)

    with sentinel:
        out = sample(model, comfy.samplers.KSAMPLER(one_step), sigmas, lr((1, 4, 8, 8)), width=64)
    assert torch.isfinite(out).all() and sentinel.pack_ops_in_steps > 0
    assert not sentinel.violations, sorted(set(sentinel.violations))


BAD_STEPS = {  # what a broken step would return, x being the right one
    "without device=": "x + torch.tensor(0.5)",
    "moves a CPU-made tensor": "x * torch.linspace(1, 2, 10)[3].to(x.device)",
    "gives float64": "(x.double() * 0.5).to(x.dtype)",
    "mixes a CPU-made tensor": "x * torch.ones(x.shape[-2:]).cpu()",
    "copies a device tensor to the host": "x + x.cpu().sum()",
}


@pytest.mark.parametrize("bad", BAD_STEPS)
def test_the_sentinel_catches_a_sampler_that_breaks_each_rule(bad, monkeypatch):
    """The sentinel judges only pack files: a broken step compiled as the ResShift sampler's file is caught."""
    from timeaware_sr.samplers import resshift_sampler

    code = compile("def posterior_step(x, denoised, sigma, sigma_next, noise):\n"
                   "    x = good(x, denoised, sigma, sigma_next, noise)\n"
                   f"    return {BAD_STEPS[bad]}\n", resshift_sampler.__file__, "exec")
    namespace = {"good": resshift_sampler.posterior_step, "torch": torch}
    exec(code, namespace)
    monkeypatch.setattr(resshift_sampler, "posterior_step", namespace["posterior_step"])
    sentinel = watched_run(resshift, 3)
    assert any(bad in v for v in sentinel.violations), f"'{bad}' not caught: {sentinel.violations}"
