"""TASR adapters on a ComfyUI MODEL (SPEC §4): identity with zero-init adapters, the gate equations
against an independent implementation from the raw modules, per-pixel/per-timestep alpha, TSS."""
import pytest
import torch
import torch.nn.functional as F

from support import ckpt_factory as cf
from support import tasr_factory as tf
import comfy.k_diffusion.sampling as kds
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.sample
import comfy.samplers
from comfy.ldm.modules.diffusionmodules.openaimodel import forward_timestep_embed
from comfy.ldm.modules.diffusionmodules.util import timestep_embedding
from timeaware_sr.model_patches.sd_components import build_unet, build_vae
from timeaware_sr.model_patches.tasr.adapter_patch import apply_tasr_adapters
from timeaware_sr.model_patches.tasr.adapters import TASRAdapters
from timeaware_sr.model_patches.tasr.checkpoint import load_tasr
from timeaware_sr.model_patches.tss.spatial_timestep import SIGMA_MAP_KEY, patch_spatial_timesteps, spatial_control
from timeaware_sr.samplers.tasr_schedule import spaced_ddpm_sigmas

LATENT = (1, 4, 16, 16)  # output blocks run at 2x2, 4x4, 8x8 and 16x16


@pytest.fixture(scope="module")
def sd():
    model = build_unet(tf.sd21_unet_state_dict("tiny"), comfy.model_base.ModelType.EPS)
    return model, build_vae(cf.vae_state_dict("tiny"))


@pytest.fixture(scope="module")
def tasr(tmp_path_factory):
    path = tmp_path_factory.mktemp("tasr") / "tasr_v1.pth"
    return load_tasr(str(tf.write_tasr(path, tf.tasr_state_dict("tiny"))))


def patcher_of(adapters):
    return comfy.model_patcher.ModelPatcher(adapters, torch.device("cpu"), torch.device("cpu"))


def conds(control, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    positive = torch.randn(batch, 4, cf.TINY_CONTEXT, generator=g)
    negative = torch.randn(batch, 4, cf.TINY_CONTEXT, generator=g)
    extra = {} if control is None else {"control": control}
    return [[positive, extra]], [[negative, dict(extra)]]


def controlled(tasr, vae, seed=2):
    hint = torch.rand(1, 3, 8 * LATENT[2], 8 * LATENT[3], generator=torch.Generator().manual_seed(seed))
    return tasr.control_net.copy().set_cond_hint(hint, 1.0, (0.0, 1.0), vae=vae), hint


def sample(model, control, steps=3, cfg=4.0, batch=1, seed=1):
    sigmas = spaced_ddpm_sigmas(model.get_model_object("model_sampling"), steps)
    latent = torch.zeros(batch, *LATENT[1:])
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(seed))
    return comfy.sample.sample_custom(model, noise, cfg, comfy.samplers.KSAMPLER(kds.sample_ddpm), sigmas,
                                      *conds(control, batch), latent, seed=seed, disable_pbar=True)


def test_zero_init_adapters_equal_plain_controlnet(sd, tasr):
    model, vae = sd
    control, _ = controlled(tasr, vae)
    plain = sample(model, control)
    gated = sample(apply_tasr_adapters(model, patcher_of(tf.adapters_module("tiny", init="zero"))), control)
    assert torch.equal(gated, plain)  # alpha = 2 sigmoid(0) = 1 exactly, and s + 1 * c == s + c
    trained = sample(apply_tasr_adapters(model, tasr.adapters), control)
    assert (trained - plain).abs().max() > 1e-2 * plain.abs().max()  # random adapters do change the result


def test_without_a_controlnet_the_patched_model_is_the_original(sd, tasr):
    model, _ = sd
    assert torch.equal(sample(apply_tasr_adapters(model, tasr.adapters), None), sample(model, None))


# --- SPEC §4 written out from the raw modules ---------------------------------------------------

def adapter_reference(w, k, x, emb):
    """alpha_k = 2 sigmoid(A_k(x, emb)) from the adapter's raw weights (SPEC §4's TimeAdapter)."""
    p = f"{k}.0."
    h = F.group_norm(x, 32, w[p + "in_layers.0.weight"], w[p + "in_layers.0.bias"], eps=1e-5)
    h = F.conv2d(F.silu(h), w[p + "in_layers.2.weight"], w[p + "in_layers.2.bias"], padding=1)
    scale, shift = F.linear(F.silu(emb), w[p + "emb_layers.1.weight"], w[p + "emb_layers.1.bias"])[:, :, None, None].chunk(2, 1)
    h = F.group_norm(h, 16, w[p + "out_layers.0.weight"], w[p + "out_layers.0.bias"], eps=1e-5) * (1 + scale) + shift
    h = F.conv2d(F.silu(h), w[p + "out_layers.2.weight"], w[p + "out_layers.2.bias"], padding=1)
    h = F.conv2d(F.silu(h), w[p + "out_layers.4.weight"], w[p + "out_layers.4.bias"], padding=1)
    return 2 * torch.sigmoid(h)


def reference_call(model, tasr, vae, hint, x, sigma, context):
    """One TASR model call from raw modules: the ControlNet on cat(x_VP, VAE mode x 0.18215), the
    UNet's blocks by hand with h = h + alpha c (middle) and s = s + alpha c (output blocks).
    Returns (denoised, [alpha_0..alpha_12], {output block i: its output})."""
    unet = model.model.diffusion_model
    ms = model.get_model_object("model_sampling")
    w = tasr.adapters.model.state_dict()
    fsm = vae.first_stage_model
    hint_latent = fsm.quant_conv(fsm.encoder(hint * 2 - 1)).chunk(2, dim=1)[0] * 0.18215
    t = ms.timestep(sigma)
    x_vp = x / (sigma**2 + 1).sqrt()
    net = tasr.control_net.control_model
    residuals = net(x_vp, hint_latent, t, context)
    middle, output = list(residuals["middle"]), list(residuals["output"])
    emb = unet.time_embed(timestep_embedding(t, unet.model_channels))
    hs, h = [], x_vp
    for block in unet.input_blocks:
        h = forward_timestep_embed(block, h, emb, context)
        hs.append(h)
    h = forward_timestep_embed(unet.middle_block, h, emb, context)
    c = middle.pop()
    alphas = [adapter_reference(w, 0, torch.cat([h + c, h, c], 1), emb)]
    h = h + alphas[0] * c
    outputs = {}
    for i, block in enumerate(unet.output_blocks):
        s, c = hs.pop(), output.pop()
        alphas.append(adapter_reference(w, i + 1, torch.cat([h, s + c, h, s, c], 1), emb))
        h = torch.cat([h, s + alphas[-1] * c], 1)
        h = forward_timestep_embed(block, h, emb, context, output_shape=hs[-1].shape if hs else None)
        outputs[i] = h
    eps = unet.out(h)
    return x - sigma.view(-1, 1, 1, 1) * eps, alphas, outputs


def traced_call(model, control, x, sigma, context, sigma_map=None):
    """One model call as the sampler makes it, recording every alpha and every output block's output."""
    comfy.model_management.load_models_gpu([model] + control.get_models())  # as sampling does: applies their patches
    adapters = model.get_additional_models()[0].model
    alphas, outputs = [], {}
    original = adapters.alpha
    adapters.alpha = lambda k, features, emb: alphas.append(original(k, features, emb)) or alphas[-1]
    blocks = model.model.diffusion_model.output_blocks
    # the UNet runs a block's layers one by one (forward_timestep_embed): its last layer's output is the block's
    hooks = [b[-1].register_forward_hook(lambda m, a, out, i=i: outputs.__setitem__(i, out)) for i, b in enumerate(blocks)]
    control.pre_run(model.model, lambda p: model.get_model_object("model_sampling").percent_to_sigma(p))
    options = {"wrappers": model.wrappers, "patches": model.model_options["transformer_options"]["patches"]}
    if sigma_map is not None:
        options[SIGMA_MAP_KEY] = sigma_map
    try:
        with torch.no_grad():
            c = control.get_control(x, sigma, {"c_crossattn": context}, len(x), options)
            out = model.model.apply_model(x, sigma, c_crossattn=context, control=c, transformer_options=options)
    finally:
        del adapters.alpha
        for hook in hooks:
            hook.remove()
        control.cleanup()
    return out, alphas, outputs


def test_alpha_and_block_outputs_equal_spec_equations(sd, tasr):
    model, vae = sd
    control, hint = controlled(tasr, vae)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(LATENT, generator=g) * 3
    sigma, context = torch.tensor([2.9]), torch.randn(1, 4, cf.TINY_CONTEXT, generator=g)
    out, alphas, outputs = traced_call(apply_tasr_adapters(model, tasr.adapters), control, x, sigma, context)
    with torch.no_grad():
        ref, ref_alphas, ref_outputs = reference_call(model, tasr, vae, hint, x, sigma, context)
    # same float32 ops in the same order except ComfyUI's fused attention and VAE wrapper: 1e-5 relative
    tol = lambda ref: 1e-5 * ref.abs().max()  # noqa: E731
    assert len(alphas) == 13
    for k in (0, 1, 6, 9, 12):  # middle (2x2), output blocks 0 (2x2), 5 (4x4), 8 (8x8), 11 (16x16)
        assert alphas[k].shape == (1, 1, *ref_alphas[k].shape[-2:])
        assert (alphas[k] - ref_alphas[k]).abs().max() <= 1e-5
    assert len({a.shape[-1] for a in alphas}) == 4  # alphas at four resolutions
    assert min(a.min() for a in alphas) < 0.9 and max(a.max() for a in alphas) > 1.1  # a real gate, not ~1
    for i in (0, 5, 8, 11):
        assert (outputs[i] - ref_outputs[i]).abs().max() <= tol(ref_outputs[i])
    assert (out - ref).abs().max() <= tol(ref)


def test_alpha_is_per_pixel_and_changes_with_the_timestep_alone(sd, tasr):
    adapters = tasr.adapters.model
    unet = sd[0].model.diffusion_model
    g = torch.Generator().manual_seed(3)
    features = [torch.randn(2, 256, 4, 4, generator=g)] * 3  # the middle adapter's input: 3 x 256 channels (tiny)
    emb = lambda t: unet.time_embed(timestep_embedding(torch.tensor([t, t]), unet.model_channels))  # noqa: E731
    with torch.no_grad():
        early, late = adapters.alpha(0, features, emb(999)), adapters.alpha(0, features, emb(53))
    assert early.shape == (2, 1, 4, 4)
    assert early.std() > 1e-3  # varies across pixels
    assert (early - late).abs().max() > 1e-2  # same features, another timestep: another gate


def test_with_tss_the_adapters_follow_each_pixels_timestep(sd, tasr):
    """A constant per-pixel map at sigma 0.4 while ComfyUI sees sigma 1.7 must equal a plain call at 0.4:
    the UNet, the ControlNet (TSS's per-run copy) and the adapters all use the map's timestep."""
    model, vae = sd
    control, _ = controlled(tasr, vae)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(LATENT, generator=g) * 2
    context = torch.randn(1, 4, cf.TINY_CONTEXT, generator=g)
    gated = apply_tasr_adapters(model, tasr.adapters)
    both = patch_spatial_timesteps(gated)
    at_map_level, level_alphas, _ = traced_call(gated, control, x, torch.tensor([0.4]), context)
    constant = torch.full((1, 1, *LATENT[2:]), 0.4)
    mapped, mapped_alphas, _ = traced_call(both, spatial_control(control), x, torch.tensor([1.7]), context, constant)
    # the map path rescales x per pixel and re-forms x0 per pixel: float32 round-off only
    assert (mapped - at_map_level).abs().max() <= 1e-5 * at_map_level.abs().max()
    for a, b in zip(mapped_alphas, level_alphas):
        assert (a - b).abs().max() <= 1e-4
    halves = constant.clone()
    halves[..., LATENT[3] // 2:] = 3.0
    _, split_alphas, _ = traced_call(both, spatial_control(control), x, torch.tensor([1.7]), context, halves)
    assert all(a.shape == (1, 1, *b.shape[-2:]) for a, b in zip(split_alphas, level_alphas))
    right = split_alphas[-1][..., -3:]  # 16x16, away from the border: sigma 3.0 instead of 0.4
    assert (right - level_alphas[-1][..., -3:]).abs().max() > 1e-3


def test_adapters_for_another_unet_are_refused(sd, tasr):
    model, _ = sd
    other = patcher_of(TASRAdapters([640] * 13, 256))  # e.g. adapters of a wider UNet
    with pytest.raises(ValueError, match="tasr_adapters were made for a different UNet"):
        apply_tasr_adapters(model, other)
    with pytest.raises(ValueError, match="already applied"):
        apply_tasr_adapters(apply_tasr_adapters(model, tasr.adapters), tasr.adapters)


def test_adapters_narrower_than_released_ones_use_the_largest_dividing_group_count():
    """A 32-wide test UNet's output block 8 adapter: C = 2 (64 + 32) + 32 = 224, m = 56, which 16 does not divide."""
    adapter = TASRAdapters([224], 128)[0][0]
    assert (adapter.in_layers[0].num_groups, adapter.out_layers[0].num_groups) == (32, 8)
    wide = TASRAdapters([6400], 1280, device="meta")[0][0]
    assert (wide.in_layers[0].num_groups, wide.out_layers[0].num_groups) == (32, 16)
