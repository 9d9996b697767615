"""Per-pixel timestep patch (SPEC §2.5): identity with a constant map, locality, no leakage."""
import pytest
import torch

from support import ckpt_factory as cf
import comfy.model_base
import comfy.model_management
from timeaware_sr.model_patches.sd_components import build_unet
from timeaware_sr.model_patches.tss.spatial_timestep import (
    SIGMA_MAP_KEY,
    patch_spatial_timesteps,
    per_pixel_denoised,
    state_emb_at,
)
from support.toy_models import pixelwise_unet_model

CONTEXT = {"sd15": cf.TINY_CONTEXT, "sd21": cf.TINY_CONTEXT, "sdxl": cf.TINY_CONTEXT}


def model_for(arch, size="tiny", prediction="eps"):
    sd = cf.unet_state_dict(arch, size, prediction)
    model_type = comfy.model_base.ModelType.V_PREDICTION if prediction == "v" else comfy.model_base.ModelType.EPS
    return build_unet({k[len(cf.UNET_PREFIX):]: v for k, v in sd.items()}, model_type=model_type)


def denoise(patcher, x, sigma, sigma_map=None, context_dim=cf.TINY_CONTEXT, y_dim=None, seed=0):
    """One model call the way ComfyUI's sampler makes it, on the patcher's own wrappers and object patches."""
    comfy.model_management.load_models_gpu([patcher])
    g = torch.Generator().manual_seed(seed)
    context = torch.randn(x.shape[0], 4, context_dim, generator=g)
    extra = {"y": torch.randn(x.shape[0], y_dim, generator=g)} if y_dim else {}
    options = {"wrappers": patcher.wrappers}
    if sigma_map is not None:
        options[SIGMA_MAP_KEY] = sigma_map
    with torch.no_grad():
        return patcher.model.apply_model(x, sigma, c_crossattn=context, transformer_options=options, **extra)


@pytest.mark.parametrize("arch, prediction, y_dim", [("sd15", "eps", None), ("sd21", "v", None), ("sdxl", "eps", 2816)])
def test_constant_timestep_map_equals_unpatched_model(arch, prediction, y_dim):
    model = model_for(arch, prediction=prediction)
    x = torch.randn(2, 4, 16, 24, generator=torch.Generator().manual_seed(1)) * 3
    sigma = torch.tensor([2.5, 0.7])
    reference = denoise(model, x, sigma, y_dim=y_dim)
    patched = patch_spatial_timesteps(model)
    constant = sigma.view(2, 1, 1, 1).expand(2, 1, 16, 24).clone()
    out = denoise(patched, x, sigma, constant, y_dim=y_dim)
    # float32 UNet on both sides, the same ops with per-pixel scaling in between: ~1e-6 relative
    assert (out - reference).abs().max() <= 1e-5 * max(1.0, reference.abs().max().item())
    assert torch.equal(denoise(patched, x, sigma, y_dim=y_dim), reference)  # no map: the original computation


@pytest.mark.slow
def test_constant_timestep_map_equals_unpatched_model_at_real_sd21_size():
    model = model_for("sd21", "real", "v")
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(2)) * 2
    sigma = torch.tensor([1.3])
    reference = denoise(model, x, sigma, context_dim=1024)
    out = denoise(patch_spatial_timesteps(model), x, sigma, sigma.view(1, 1, 1, 1).expand(1, 1, 16, 16), context_dim=1024)
    # float32 UNet on both sides, the same ops with per-pixel scaling in between: ~1e-6 relative
    assert (out - reference).abs().max() <= 1e-5 * max(1.0, reference.abs().max().item())


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_every_pixel_sees_its_own_timestep_in_a_pixelwise_unet(prediction):
    """A non-constant map: each pixel's output (input scaling, embedding and x0 per pixel, eps or v)
    equals the unpatched model's at that pixel's sigma."""
    model = pixelwise_unet_model(prediction=prediction)
    x = torch.randn(1, 4, 6, 8, generator=torch.Generator().manual_seed(4)) * 2
    levels = torch.tensor([0.3, 1.1, 4.0])
    which = torch.randint(0, 3, (1, 1, 6, 8), generator=torch.Generator().manual_seed(5))
    sigma_map = levels[which]
    out = denoise(patch_spatial_timesteps(model), x, torch.tensor([1.1]), sigma_map, context_dim=1)
    for k, level in enumerate(levels):
        at_level = denoise(model, x, level.view(1), context_dim=1)
        mask = (which == k).expand_as(x)
        # float32 forward passes of outputs ~1 that differ only in summation order: 1e-5
        assert (out[mask] - at_level[mask]).abs().max() <= 1e-5


@pytest.mark.parametrize("resolutions", [2, 3])
def test_every_feature_resolution_gets_the_map_of_its_blocks(resolutions):
    """A UNet with 2-3 resolutions where a pixel depends only on its aligned block: with a map constant
    on those blocks, each block's output equals the unpatched model's at that block's sigma, so every
    ResBlock (full, half and quarter resolution) received the map resized to its own size."""
    model = pixelwise_unet_model(resolutions=resolutions)
    block = 2 ** (resolutions - 1)
    x = torch.randn(1, 4, 3 * block, 4 * block, generator=torch.Generator().manual_seed(8)) * 2
    levels = torch.tensor([0.2, 0.9, 2.5, 6.0])
    which_block = torch.randint(0, 4, (1, 1, 3, 4), generator=torch.Generator().manual_seed(9))
    which = which_block.repeat_interleave(block, -2).repeat_interleave(block, -1)
    out = denoise(patch_spatial_timesteps(model), x, torch.tensor([1.0]), levels[which], context_dim=1)
    for k, level in enumerate(levels):
        at_level = denoise(model, x, level.view(1), context_dim=1)
        mask = (which == k).expand_as(x)
        assert (out[mask] - at_level[mask]).abs().max() <= 1e-5  # float32, summation order only
    assert (denoise(model, x, torch.tensor([0.2]), context_dim=1) - out).abs().max() > 1e-2  # the map matters


def test_the_embedding_map_is_area_averaged_to_each_feature_resolution():
    """SPEC §2.5: the embedding map is resized to each resolution; averaging (area) keeps every
    pixel's timestep in the lower-resolution features, picking one pixel per block would not."""
    emb = torch.randn(2, 5, 8, 12, generator=torch.Generator().manual_seed(10))
    state = {"emb_map": emb}
    for h, w in [(8, 12), (4, 6), (2, 3)]:
        fh, fw = 8 // h, 12 // w
        block_means = emb.reshape(2, 5, h, fh, w, fw).mean(dim=(3, 5))
        # channel-last, as the patched emb_layers take it; 1e-6: float32 means of up to 16 values
        torch.testing.assert_close(state_emb_at(state, (h, w)), block_means.movedim(1, -1), rtol=0, atol=1e-6)


def test_per_pixel_v_prediction_x0_is_the_formula_by_hand():
    """ComfyUI formed d_ref from the raw v output with the scalar sigma s; the patch must return
    x0 = x / (S^2 + 1) - v S / sqrt(S^2 + 1) with each pixel's S (VE form of x0 = alpha x_t - sigma v)."""
    g = torch.Generator().manual_seed(12)
    x = torch.randn(2, 4, 5, 6, generator=g, dtype=torch.float64) * 3
    v = torch.randn(2, 4, 5, 6, generator=g, dtype=torch.float64)
    s = torch.tensor([1.5, 0.4], dtype=torch.float64).view(2, 1, 1, 1)
    S = torch.rand(2, 1, 5, 6, generator=g, dtype=torch.float64) * 5 + 0.05
    x_in = x * ((s * s + 1) / (S * S + 1)).sqrt()
    d_ref = x_in / (s * s + 1) - v * s / (s * s + 1).sqrt()  # comfy.model_sampling.V_PREDICTION, sigma_data 1
    ours = per_pixel_denoised(comfy.model_base.ModelType.V_PREDICTION, x, x_in, d_ref, s, S)
    expected = x / (S * S + 1) - v * S / (S * S + 1).sqrt()
    assert (ours - expected).abs().max() <= 1e-12  # float64 rounding of values ~10
    eps = torch.randn(2, 4, 5, 6, generator=g, dtype=torch.float64)
    ours_eps = per_pixel_denoised(comfy.model_base.ModelType.EPS, x, x_in, x_in - eps * s, s, S)
    assert (ours_eps - (x - S * eps)).abs().max() <= 1e-12


def test_the_original_model_is_untouched_after_using_the_patched_clone():
    model = model_for("sd21")
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(6))
    before = denoise(model, x, torch.tensor([1.0]))
    patched = patch_spatial_timesteps(model)
    denoise(patched, x, torch.tensor([1.0]), torch.rand(1, 1, 8, 8) * 3 + 0.1)
    after = denoise(model, x, torch.tensor([1.0]))
    assert torch.equal(before, after)
    assert not model.object_patches and not model.wrappers


def test_non_unet_models_are_refused():
    import types
    fake = types.SimpleNamespace(get_model_object=lambda name: torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"model: per-pixel timesteps need an SD1.x/SD2.x/SDXL UNet model; this MODEL is .*\(network Linear\)"):
        patch_spatial_timesteps(fake)
