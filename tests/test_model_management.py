"""The pack's extra networks are known to ComfyUI's model management (issue 26), in-process on the CPU.

For each method the step that runs its extra networks is run at test size through ComfyUI's own entry points
(sample_custom, VAE.encode / decode, the pack's encode), from an empty `current_loaded_models`:
- every parameter and buffer of the extra networks (TASR adapters and ControlNet, DoSSR ControlNet and condition
  encoder, TADSR's time-aware encoder, ResShift's network and VQ-f4, the starter model) must then be inside a
  patcher that ComfyUI loaded for that step (comfy.model_management.current_loaded_models);
- run again with ComfyUI's NO_VRAM budget (lowvram_model_memory 0.1, forced through LoadedModel.model_load as the
  live proxy does: on a CPU ComfyUI loads fully), each extra network must be marked lowvram with every layer that
  holds weights a comfy.ops layer casting per layer, except the parameters the pack's code moves itself
  (UNTOUCHED_AND_HANDLED); and the output must equal the fully loaded run's (same device and dtype: the per
  layer cast is a no-op, so equal up to float32 rounding).
On a CPU the offload and load devices are one device: a weight read on the wrong device cannot fail here (it
would on a GPU). The "every layer is cast or listed" check is this test's stand-in for that.
"""
from dataclasses import dataclass

import pytest
import torch

import comfy.k_diffusion.sampling as kds
import comfy.model_management as mm
import comfy.sample
import comfy.samplers
from support import ckpt_factory as cf
from support import resshift_factory as rf
from support import tadsr_factory as tf
from support import tasr_factory as taf
from support.comfy_live import PACK_DIR
from support.lowvram_proxy_plugin import UNTOUCHED_AND_HANDLED, describe_load, partial_model_load


@dataclass
class Method:
    run: object  # () -> output tensor; runs the step that uses the extra networks
    networks: dict  # name -> nn.Module: the method's extra networks


def hint_image(size=64, seed=8):
    return torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(seed))


def text(seed=4):
    return torch.randn(1, 4, cf.TINY_CONTEXT, generator=torch.Generator().manual_seed(seed))


def euler(model, latent, positive, negative, sigmas, cfg=1.0, seed=3):
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample_custom(model, noise, cfg, comfy.samplers.KSAMPLER(kds.sample_euler), sigmas, positive,
                                      negative, latent, seed=seed, disable_pbar=True)


def model_sigmas(model, steps=1):
    return comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", steps)


def dossr(tmp_path):
    from timeaware_sr.model_patches.dossr.checkpoint import load_dossr

    parts = load_dossr(str(cf.tiny_dossr_checkpoint()))
    cn = parts.control_net

    def run():
        control = cn.copy().set_cond_hint(hint_image().movedim(-1, 1), 1.0, (0.0, 1.0))
        conds = [[text(), {"control": control}]]
        return euler(parts.model, torch.zeros(1, 4, 8, 8), conds, [[text(5), {"control": control}]],
                     model_sigmas(parts.model))
    return Method(run, {"ControlNet": cn.control_model, "condition encoder": cn.hint_encoder.first_stage_model})


def tasr(tmp_path):
    import comfy.model_base
    from timeaware_sr.model_patches.sd_components import build_unet, build_vae
    from timeaware_sr.model_patches.tasr.adapter_patch import apply_tasr_adapters
    from timeaware_sr.model_patches.tasr.checkpoint import load_tasr

    model = build_unet(taf.sd21_unet_state_dict("tiny"), comfy.model_base.ModelType.EPS)
    vae = build_vae(cf.vae_state_dict("tiny"))
    parts = load_tasr(str(taf.write_tasr(tmp_path / "tasr_v1.pth", taf.tasr_state_dict("tiny"))))
    gated = apply_tasr_adapters(model, parts.adapters)

    def run():
        control = parts.control_net.copy().set_cond_hint(hint_image().movedim(-1, 1), 1.0, (0.0, 1.0), vae=vae)
        return euler(gated, torch.zeros(1, 4, 8, 8), [[text(), {"control": control}]],
                     [[text(5), {"control": control}]], model_sigmas(gated))
    return Method(run, {"adapters": parts.adapters.model, "ControlNet": parts.control_net.control_model})


def tadsr(tmp_path):
    from timeaware_sr.model_patches.tadsr import checkpoint as ck
    from timeaware_sr.model_patches.tadsr import time_vae_folder as tvf
    from timeaware_sr.model_patches.tadsr.encode import encode_image

    vae = tvf.time_aware_vae(tf.time_vae_state_dict("tiny"), ck.parse_tadsr_checkpoint(tf.tadsr_pkl_dict("tiny")))
    return Method(lambda: encode_image(vae, hint_image(32), 500, seed=None),
                  {"time-aware encoder": vae.first_stage_model.encoder})


def resshift(tmp_path):
    from timeaware_sr.model_patches.resshift.checkpoint import build_resshift_model
    from timeaware_sr.model_patches.resshift.model import lq_conditioning
    from timeaware_sr.model_patches.resshift.vq_f4 import (
        VQModelF4,
        build_vq_f4_vae,
        vq_config_from_weights,
    )
    from timeaware_sr.samplers.resshift_sampler import sample_resshift
    from timeaware_sr.samplers.resshift_schedule import resshift_sigmas

    model = build_resshift_model(rf.unet_state_dict("tiny"), "sinsr", "tiny")
    sd = rf.vq_state_dict("tiny")
    module = VQModelF4(**vq_config_from_weights(sd))
    module.load_state_dict(sd)
    vae = build_vq_f4_vae(module)

    def run():
        image = hint_image(256)
        y = vae.encode(image)  # the VQ encoder, loaded by ComfyUI's VAE.encode
        lq = image.movedim(-1, 1)[:, :, ::4, ::4] * 2 - 1
        cond = lq_conditioning(lq)
        noise = torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
        x0 = comfy.sample.sample_custom(model, noise, 1.0, comfy.samplers.KSAMPLER(sample_resshift),
                                        resshift_sigmas(model.get_model_object("model_sampling")), cond, cond, y,
                                        disable_pbar=True)
        return vae.decode(x0)  # the codebook and decoder
    return Method(run, {"network": model.model.diffusion_model, "VQ-f4": module})


def starter(tmp_path):
    from timeaware_sr.model_patches.starter.starter_sr import load_starter

    model, vae, conditioning = load_starter(str(PACK_DIR / "model_patches" / "weights" / "starter_sr.safetensors"))

    def run():
        latent = vae.encode(hint_image(32))
        return euler(model, latent, conditioning, conditioning, model_sigmas(model))
    return Method(run, {"starter UNet": model.model.diffusion_model})


METHODS = {"dossr": dossr, "tasr": tasr, "tadsr": tadsr, "resshift": resshift, "starter": starter}


@pytest.fixture(autouse=True)
def nothing_left_loaded():
    """Later tests in the session start, as these do, from an empty current_loaded_models."""
    yield
    mm.unload_all_models()


@pytest.fixture(scope="module", params=sorted(METHODS))
def method(request, tmp_path_factory):
    return request.param, METHODS[request.param](tmp_path_factory.mktemp(request.param))


def run_loaded(method: Method, monkeypatch, partial: bool):
    """(output, loaded patchers) of one run from an empty current_loaded_models; with `partial`, every load
    takes NO_VRAM's budget."""
    mm.unload_all_models()
    with monkeypatch.context() as m:
        if partial:
            m.setattr(mm.LoadedModel, "model_load", partial_model_load("novram"))
        with torch.no_grad():
            out = method.run()
        loaded = [lm.model for lm in mm.current_loaded_models]
    return out, loaded


def tensors_of(module: torch.nn.Module) -> dict:
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


def owner(patchers, module):
    """The loaded patcher whose module holds this network (every one of its tensors), or None."""
    for patcher in patchers:
        held = {id(t) for t in tensors_of(patcher.model).values()}
        if all(id(t) in held for t in tensors_of(module).values()):
            return patcher
    return None


def test_every_extra_weight_is_in_a_patcher_comfyui_loaded_for_the_step(method, monkeypatch):
    name, m = method
    _, loaded = run_loaded(m, monkeypatch, partial=False)
    for network, module in m.networks.items():
        assert tensors_of(module), f"{name}: the {network} has no weights"
        held = {id(t) for p in loaded for t in tensors_of(p.model).values()}
        stray = [k for k, t in tensors_of(module).items() if id(t) not in held]
        assert not stray, (f"{name}: the {network}'s {stray[:5]} (of {len(stray)}) are in no patcher ComfyUI loaded "
                           f"for the step; loaded: {[type(p.model).__name__ for p in loaded]}")


def test_partial_loading_casts_every_extra_layer_and_gives_the_full_loads_output(method, monkeypatch):
    name, m = method
    full, _ = run_loaded(m, monkeypatch, partial=False)
    partial, loaded = run_loaded(m, monkeypatch, partial=True)
    for network, module in m.networks.items():
        patcher = owner(loaded, module)
        assert patcher is not None, f"{name}: the {network} was not loaded under NO_VRAM's budget"
        load = describe_load(patcher)
        assert load["lowvram"] and load["cast_layers"] > 0, f"{name}: the {network} was loaded whole: {load}"
        prefix = next(k for k, v in patcher.model.named_modules() if v is module)
        own = [p for p in load["untouched"] if not prefix or p.startswith(prefix + ".")]
        stray = [p for p in own if not any(p.endswith(k) for k in UNTOUCHED_AND_HANDLED)]
        assert not stray, f"{name}: the {network}'s {stray} are neither cast per layer nor loaded (on a GPU: left on the CPU)"
    # same device, same dtype: the per-layer cast copies nothing, the same float32 ops run
    torch.testing.assert_close(partial, full, rtol=1e-6, atol=1e-6)
