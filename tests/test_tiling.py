"""Tiled Diffusion (SPEC §7): per-pixel networks give the untiled result at any tiling, so every crop
(latent, concat latent, ControlNet hints, TSS sigma maps) is aligned; a single tile is bitwise the
untiled call; nothing leaks into the original model or ControlNet."""
import pytest
import torch
import torch.nn.functional as F

from support import ckpt_factory as cf
from support.toy_models import make_pixelwise_, pixelwise_config, pixelwise_unet_model
import comfy.controlnet
import comfy.k_diffusion.sampling as kds
import comfy.model_management
import comfy.model_patcher
import comfy.ops
import comfy.sample
import comfy.samplers
from timeaware_sr.model_patches.tiling import tiled_hint_encoder
from timeaware_sr.model_patches.tiling.tile_grid import blend_window, overlap_share, tile_boxes, tile_starts
from timeaware_sr.clear_errors import InputError
from timeaware_sr.model_patches.tiling.tiled_model import WRAPPER_KEY, check_overlap, patch_tiled_diffusion
from timeaware_sr.nodes.tiling import TiledDiffusion
from timeaware_sr.model_patches.tss.spatial_timestep import patch_spatial_timesteps
from timeaware_sr.samplers.tss_sampler import sample_tss

# float32 sums of differently ordered but identical terms (w * d / sum w): a few ulps of |x| <= ~10.
EXACT = 1e-6


# ---------------------------------------------------------------- tile grid (pure math)

@pytest.mark.parametrize("length, tile, overlap", [(93, 32, 8), (67, 32, 8), (64, 16, 0), (100, 7, 6), (50, 49, 10)])
def test_tiles_cover_the_side_with_at_least_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + tile == length
    for a, b in zip(starts, starts[1:]):
        assert a + tile - b >= overlap and b > a  # neighbours overlap by >= overlap, and move forward


def test_a_tile_larger_than_a_side_is_one_tile_of_that_side():
    assert tile_starts(20, 32, 8) == [0]
    assert {(h, w) for _, _, h, w in tile_boxes(20, 70, 32, 8)} == {(20, 32)}


def test_the_gaussian_window_is_mixture_of_diffusers_variance_0_01_of_the_side():
    h, w = 12, 20
    window = blend_window(h, w, "gaussian")
    for y, x in [(0, 0), (5, 9), (11, 19), (6, 3)]:
        gy = torch.exp(torch.tensor(-((y - (h - 1) / 2) / h) ** 2 / 0.02))
        gx = torch.exp(torch.tensor(-((x - (w - 1) / 2) / w) ** 2 / 0.02))
        assert window[y, x].item() == pytest.approx((gy * gx).item(), rel=1e-6)
    assert torch.equal(blend_window(h, w, "uniform"), torch.ones(h, w))


def test_overlap_share_counts_the_extra_pixels():
    assert overlap_share(64, 64, 64, 16) == 0
    assert overlap_share(48, 16, 32, 16) == pytest.approx(2 * 32 * 16 / (48 * 16) - 1)


@pytest.mark.parametrize("settings, name", [
    ((0, 0, "gaussian", 1), "tile_size"), ((-4, 0, "gaussian", 1), "tile_size"),
    ((16, -1, "gaussian", 1), "overlap"), ((16, 16, "gaussian", 1), "overlap"), ((8, 12, "gaussian", 1), "overlap"),
    ((16, 4, "box", 1), "blend"), ((16, 4, "gaussian", 0), "tile_batch"), ((16, 4, "gaussian", -2), "tile_batch"),
])
def test_bad_sizes_are_refused_by_name(settings, name):
    """By the node, at queue time and when it runs: its schema's ranges, and the overlap rule between inputs."""
    message = TiledDiffusion.validate_inputs(**dict(zip(["tile_size", "overlap", "blend", "tile_batch"], settings)))
    assert message is not True and message.startswith(f"Tiled Diffusion (TimeAwareSR): {name}")
    with pytest.raises(InputError, match=rf"^Tiled Diffusion \(TimeAwareSR\): {name}"):
        TiledDiffusion.execute(pixelwise_unet_model(), *settings)
    if name == "overlap" and settings[1] >= 0:
        assert check_overlap(*settings[:2]).startswith("overlap must be smaller than tile_size")


# ---------------------------------------------------------------- models

def sample(model, latent, positive, negative, sampler=kds.sample_euler, steps=3, cfg=2.0, options=None, seed=5):
    ms = model.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(ms, "normal", steps + 2)[2:]  # an img2img-style start
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():  # as ComfyUI's executor runs nodes
        return comfy.sample.sample_custom(model, noise, cfg, comfy.samplers.KSAMPLER(sampler, options or {}), sigmas,
                                          positive, negative, latent, seed=seed, disable_pbar=True)


def neutral(batch=1):
    return [[torch.zeros(batch, 1, 1), {}]]


class BlockHint(torch.nn.Module):
    """A stock ControlNet's hint encoder that maps each 8x8 pixel block to its latent pixel (area mean
    + 1x1 conv): per latent pixel, yet it takes the 8x pixel-size hint as stock ControlNets do."""

    def __init__(self, channels, seed):
        super().__init__()
        self.conv = cf.randomize_(torch.nn.Conv2d(3, channels, 1), seed)

    def forward(self, hint, emb, context):
        return self.conv(F.avg_pool2d(hint, 8))


def controlnet_config(in_channels):
    config = dict(pixelwise_config(in_channels=in_channels), use_spatial_transformer=True, context_dim=1)  # cldm asks
    for key in ("out_channels", "transformer_depth_output", "use_temporal_resblock", "use_temporal_attention"):
        config.pop(key, None)
    return config


def pixelwise_stock_controlnet(seed=21):
    from comfy.cldm.cldm import ControlNet

    net = cf.randomize_(ControlNet(hint_channels=3, **controlnet_config(4), operations=comfy.ops.disable_weight_init), seed)
    net.input_hint_block = BlockHint(net.model_channels, seed)
    make_pixelwise_(net, seed)
    return comfy.controlnet.ControlNet(net, load_device=comfy.model_management.get_torch_device())


def pixelwise_latent_controlnet(seed=22):
    """The pack's DoSSR-style ControlNet (hint latent concatenated onto x), per pixel, with a real
    (tiny) VAE as its condition encoder: the hint is encoded whole, so the crops must match exactly."""
    from timeaware_sr.model_patches.latent_hint_controlnet import LatentConcatControlNet, LatentHintControlNet
    from timeaware_sr.model_patches.sd_components import build_vae

    net = cf.randomize_(LatentConcatControlNet(**controlnet_config(8), operations=comfy.ops.disable_weight_init), seed)
    make_pixelwise_(net, seed)
    encoder = build_vae(cf.vae_state_dict("tiny", seed))
    return LatentHintControlNet(net, encoder, load_device=comfy.model_management.get_torch_device())


@pytest.fixture(scope="module")
def controlnets():
    return pixelwise_latent_controlnet(), pixelwise_stock_controlnet()


def with_controls(controlnets, latent, shared=True, seed=2):
    """Both ControlNets chained, one hint image per latent image; the negative gets its own weaker
    chain unless `shared` (then ComfyUI batches cond and uncond into one call)."""
    b, _, h, w = latent.shape
    g = torch.Generator().manual_seed(seed)
    hints = [torch.rand(b, 3, h * 8, w * 8, generator=g) for _ in controlnets]

    def chain(strength):
        control = None
        for cn, hint in zip(controlnets, hints):
            control = cn.copy().set_cond_hint(hint, strength, (0.0, 1.0)).set_previous_controlnet(control)
        return control

    positive = chain(1.0)
    negative = positive if shared else chain(0.4)
    return [[torch.zeros(b, 1, 1), {"control": positive}]], [[torch.zeros(b, 1, 1), {"control": negative}]]


def pixelwise_starter(seed=9):
    """The starter model's class (LR concatenated to the input, residual x0) on a per-pixel network."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from timeaware_sr.model_patches.starter.starter_sr import StarterSRConfig, StarterSRModel

    unet_config = pixelwise_config(in_channels=6, out_channels=3)
    config = StarterSRConfig(dict(unet_config))
    config.set_inference_dtype(torch.float32, None)
    model = StarterSRModel(config)
    model.diffusion_model = make_pixelwise_(cf.randomize_(UNetModel(**unet_config, operations=comfy.ops.disable_weight_init), seed), seed)
    device = comfy.model_management.get_torch_device()
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=device)


def close(a, b, tolerance=EXACT):
    return (a - b).abs().max().item() <= tolerance * max(1.0, b.abs().max().item())


# ---------------------------------------------------------------- exactness

@pytest.mark.parametrize("tile, overlap, tile_batch, blend, shared", [
    (8, 0, 1, "gaussian", True), (16, 5, 3, "gaussian", True), (9, 6, 4, "uniform", False), (24, 4, 4, "gaussian", False),
])
def test_pixelwise_unet_and_controlnets_give_the_untiled_result_at_any_tiling(controlnets, tile, overlap, tile_batch,
                                                                              blend, shared):
    """Batch 2, CFG 2, two chained ControlNets (latent hint + stock 8x hint) with a hint per image;
    latent 21x45, so tile 24 is larger than one side only."""
    model = pixelwise_unet_model()
    latent = torch.randn(2, 4, 21, 45, generator=torch.Generator().manual_seed(1))
    untiled = sample(model, latent, *with_controls(controlnets, latent, shared), sampler=kds.sample_dpmpp_2m)
    tiled = sample(patch_tiled_diffusion(model, tile, overlap, blend, tile_batch), latent,
                   *with_controls(controlnets, latent, shared), sampler=kds.sample_dpmpp_2m)
    without = sample(model, latent, neutral(2), neutral(2), sampler=kds.sample_dpmpp_2m)
    assert (untiled - without).abs().max() > 1e-2  # the ControlNets matter
    assert close(tiled, untiled)


@pytest.mark.parametrize("tss_first", [True, False])
def test_tss_maps_and_the_concat_latent_are_cropped_with_each_tile(tss_first):
    """The starter model's class (its LR is the concat latent) on a per-pixel network, latent 67x93,
    TSS per-pixel schedules, tiling applied before or after the TSS patch."""
    model = pixelwise_starter()
    g = torch.Generator().manual_seed(4)
    latent = torch.rand(1, 3, 67, 93, generator=g) * 2 - 1
    options = {"variance": torch.rand(1, 67, 93, generator=g), "a_range": (200.0, 400.0), "n_range": (1.0, 3.0)}
    untiled = sample(patch_spatial_timesteps(model), latent, neutral(), neutral(), sample_tss, 4, 1.0, options)
    if tss_first:
        patched = patch_tiled_diffusion(patch_spatial_timesteps(model), 32, 8, "gaussian", 3)
    else:
        patched = patch_spatial_timesteps(patch_tiled_diffusion(model, 32, 8, "gaussian", 3))
    tiled = sample(patched, latent, neutral(), neutral(), sample_tss, 4, 1.0, options)
    flat = sample(model, latent, neutral(), neutral(), kds.sample_euler, 4, 1.0)
    assert (untiled - flat).abs().max() > 1e-2  # the per-pixel schedules matter
    # Four steps of per-pixel schedules carry the tiles' float32 rounding along: the difference is ~1e-6 of the
    # image's range (it passed 1e-6 only barely, and failed now and then on a busy machine); a real tiling error
    # is more than 1e-2 (as `flat` above).
    assert close(tiled, untiled, tolerance=1e-5)


@pytest.fixture(scope="module")
def dossr_parts():
    from timeaware_sr.model_patches.dossr.checkpoint import load_dossr

    return load_dossr(str(cf.tiny_dossr_checkpoint()))


def dossr_conds(parts, latent, seed=3):
    b, _, h, w = latent.shape
    g = torch.Generator().manual_seed(seed)
    hint = torch.rand(b, 3, h * 8, w * 8, generator=g)
    control = parts.control_net.copy().set_cond_hint(hint, 1.0, (0.0, 1.0), vae=parts.vae)
    return ([[torch.randn(b, 4, cf.TINY_CONTEXT, generator=g), {"control": control}]],
            [[torch.randn(b, 4, cf.TINY_CONTEXT, generator=g), {"control": control}]])


def test_a_tile_at_least_the_image_gives_the_untiled_result_bitwise(dossr_parts):
    """A real (tiny) SD 2.1 UNet with attention and DoSSR's ControlNet, CFG 2, batch 2."""
    latent = torch.randn(2, 4, 16, 24, generator=torch.Generator().manual_seed(6))
    untiled = sample(dossr_parts.model, latent, *dossr_conds(dossr_parts, latent))
    for tile in (24, 40):
        tiled = sample(patch_tiled_diffusion(dossr_parts.model, tile, 8, "gaussian", 2), latent,
                       *dossr_conds(dossr_parts, latent))
        assert torch.equal(tiled, untiled)


def test_odd_sizes_batches_and_cfg_run_on_a_real_unet_and_the_original_is_untouched(dossr_parts):
    model = dossr_parts.model
    latent = torch.randn(2, 4, 29, 37, generator=torch.Generator().manual_seed(7))
    small = latent[..., :8, :8]
    before = sample(model, small, *dossr_conds(dossr_parts, small))
    tiled = sample(patch_tiled_diffusion(model, 16, 4, "gaussian", 4), latent, *dossr_conds(dossr_parts, latent),
                   steps=1)
    assert tiled.shape == latent.shape and torch.isfinite(tiled).all()
    assert (tiled - latent).abs().mean() > 1e-3
    after = sample(model, small, *dossr_conds(dossr_parts, small))
    assert torch.equal(before, after)
    assert WRAPPER_KEY not in str(model.wrappers) and not model.object_patches


def test_other_control_kinds_are_refused_by_name():
    model = pixelwise_unet_model()
    latent = torch.zeros(1, 4, 16, 16)
    control = comfy.controlnet.ControlBase()
    conds = [[torch.zeros(1, 1, 1), {"control": control}]]
    with pytest.raises(ValueError, match="a ControlBase in the conditioning .* cannot be tiled"):
        sample(patch_tiled_diffusion(model, 8, 2, "gaussian", 2), latent, conds, conds)


# ---------------------------------------------------------------- tiled hint encoder

def test_large_hints_are_encoded_in_tiles_with_comfyuis_rule(monkeypatch, controlnets):
    latent_cn = controlnets[0]
    vae = latent_cn.hint_encoder
    pixels = torch.rand(1, 96, 80, 3, generator=torch.Generator().manual_seed(8))
    encoder = tiled_hint_encoder.TiledHintEncoder(vae)
    with torch.inference_mode():  # ComfyUI's tiled encode needs it, as inside the executor
        assert torch.equal(encoder.encode(pixels), vae.encode(pixels))  # small: one piece, as before
        monkeypatch.setattr(tiled_hint_encoder, "MAX_WHOLE_PIXELS", 48 * 48)
        monkeypatch.setattr(tiled_hint_encoder, "TILE", 32)
        monkeypatch.setattr(tiled_hint_encoder, "OVERLAP", 8)
        tiled = encoder.encode(pixels)
        assert torch.equal(tiled, vae.encode_tiled(pixels, tile_x=32, tile_y=32, overlap=8))
        assert (tiled - vae.encode(pixels)).abs().max() > 1e-4  # really tiled

    seen = []
    first_stage = vae.first_stage_model
    monkeypatch.setattr(first_stage, "encode", lambda x, _f=first_stage.encode: seen.append(x.shape) or _f(x))
    model = pixelwise_unet_model()
    latent = torch.randn(1, 4, 12, 10, generator=torch.Generator().manual_seed(9))
    hint = torch.rand(1, 3, 96, 80)
    control = latent_cn.copy().set_cond_hint(hint, 1.0, (0.0, 1.0))
    conds = [[torch.zeros(1, 1, 1), {"control": control}]]
    sample(patch_tiled_diffusion(model, 8, 2, "gaussian", 2), latent, conds, conds, steps=1)
    assert seen and max(s[-1] * s[-2] for s in seen) <= 64 * 16  # encode_tiled's widest layout: 2 tile x tile / 2
