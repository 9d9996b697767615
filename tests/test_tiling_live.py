"""Tiled Diffusion inside a real ComfyUI server: the large-image workflow at a reduced size with tiles
small enough to split it, the starter model tiled vs untiled, TSS + tiles, bad sizes refused; the
methods' own encoders in tiles: TADSR Encode (Tiled) in the shipped TADSR workflow, ResShift's
workflow with stock VAE Encode / Decode (Tiled)."""
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from support import comfy_live
from support.comfy_live import PromptRejected

SAMPLE = comfy_live.PACK_DIR / "workflows" / "assets" / "chelsea_lr.png"  # 96 x 64
WORKFLOWS = comfy_live.PACK_DIR / "workflows"


@pytest.fixture(scope="module")
def lr_image(comfy, shipped_models):
    shutil.copy(SAMPLE, comfy.input_dir / SAMPLE.name)
    return SAMPLE.name


def prompt_of(comfy, name, lr_image):
    wf = comfy_live.load_workflow(WORKFLOWS / f"{name}.json")
    overrides = {(n["id"], "image"): lr_image for n in wf["nodes"] if n["type"] == "LoadImage"}
    return comfy_live.workflow_to_prompt(wf, comfy.object_info(), overrides)


def node_of(prompt, class_type):
    [node_id] = [k for k, v in prompt.items() if v["class_type"] == class_type]
    return node_id


def saved(comfy, outputs, node_id):
    [im] = outputs[node_id]["images"]
    return np.asarray(Image.open(io.BytesIO(comfy.fetch_image_bytes(im)))).astype(np.float64)


def test_the_large_workflow_runs_with_every_stage_tiled(comfy, lr_image):
    """96x64 LR -> 384x256 (latent 48x32) with 16-latent-px model tiles and 128-px VAE tiles, so every
    tiled stage really splits the image (the shipped settings are for 1024² inputs)."""
    p = prompt_of(comfy, "dossr_x4_large", lr_image)
    p[node_of(p, "TimeAwareSR_TiledDiffusion")]["inputs"].update(tile_size=16, overlap=4, tile_batch=3)
    p[node_of(p, "VAEEncodeTiled")]["inputs"].update(tile_size=128, overlap=32)
    p[node_of(p, "VAEDecodeTiled")]["inputs"].update(tile_size=128, overlap=32)
    p[node_of(p, "CFGGuider")]["inputs"]["cfg"] = 2.0  # cond and uncond batched with the tiles
    out = saved(comfy, comfy.run(p), node_of(p, "SaveImage"))
    assert out.shape == (256, 384, 3) and np.isfinite(out).all() and out.std() > 1


def starter_prompt(comfy, lr_image, tiles=None):
    """The shipped starter workflow, its model through Tiled Diffusion when `tiles` is given."""
    p = prompt_of(comfy, "starter_sr_x4", lr_image)
    if tiles is not None:
        loader = node_of(p, "TimeAwareSR_StarterModelLoader")
        p["100"] = {"class_type": "TimeAwareSR_TiledDiffusion", "inputs": {"model": [loader, 0], **tiles}}
        p[node_of(p, "CFGGuider")]["inputs"]["model"] = ["100", 0]
    return p


def test_the_starter_model_tiled_matches_untiled(comfy, lr_image):
    p = starter_prompt(comfy, lr_image)
    untiled = saved(comfy, comfy.run(p), node_of(p, "SaveImage"))
    whole = starter_prompt(comfy, lr_image, dict(tile_size=384, overlap=16, blend="gaussian", tile_batch=1))
    assert np.array_equal(saved(comfy, comfy.run(whole), node_of(whole, "SaveImage")), untiled)  # one tile: bitwise
    tiled = starter_prompt(comfy, lr_image, dict(tile_size=128, overlap=32, blend="gaussian", tile_batch=2))
    out = saved(comfy, comfy.run(tiled), node_of(tiled, "SaveImage"))
    psnr = 10 * np.log10(255.0 ** 2 / np.mean((out - untiled) ** 2))
    assert not np.array_equal(out, untiled) and psnr > 40  # 8-bit output of a pixel-space model: seams would show


def tss_prompt(comfy, lr_image):
    p = prompt_of(comfy, "tss_starter_x4", lr_image)
    p[node_of(p, "TimeAwareSR_TDSScheduler")]["inputs"]["steps"] = 3  # keep the live suite short
    return p


@pytest.fixture(scope="module")
def tss_reference(comfy, lr_image):
    p = tss_prompt(comfy, lr_image)
    return saved(comfy, comfy.run(p), node_of(p, "SaveImage"))  # once: ComfyUI would cache a repeat


@pytest.mark.parametrize("tiling_first", [True, False])
def test_tss_and_tiles_compose_in_either_order(comfy, lr_image, tss_reference, tiling_first):
    p = tss_prompt(comfy, lr_image)
    loader, patch = node_of(p, "TimeAwareSR_StarterModelLoader"), node_of(p, "TimeAwareSR_TSSSpatialTimestepPatch")
    tiles = dict(tile_size=96, overlap=24, blend="gaussian", tile_batch=4)
    if tiling_first:
        p["100"] = {"class_type": "TimeAwareSR_TiledDiffusion", "inputs": {"model": [loader, 0], **tiles}}
        p[patch]["inputs"]["model"] = ["100", 0]
    else:
        p["100"] = {"class_type": "TimeAwareSR_TiledDiffusion", "inputs": {"model": [patch, 0], **tiles}}
        for node in p.values():
            if node["class_type"] in ("CFGGuider", "TimeAwareSR_TDSScheduler"):
                node["inputs"]["model"] = ["100", 0]
    out = saved(comfy, comfy.run(p), node_of(p, "SaveImage"))
    assert 10 * np.log10(255.0 ** 2 / np.mean((out - tss_reference) ** 2)) > 35


@pytest.mark.parametrize("tiles, name", [
    (dict(tile_size=16, overlap=16), "overlap"), (dict(tile_size=8, overlap=12), "overlap"),
    (dict(tile_size=0, overlap=0), "tile_size"), (dict(tile_size=16, overlap=-1), "overlap"),
    (dict(tile_size=16, overlap=4, tile_batch=0), "tile_batch"),
])
def test_bad_sizes_are_refused_when_queued(comfy, lr_image, tiles, name):
    p = starter_prompt(comfy, lr_image, dict(dict(tile_size=64, overlap=16, blend="gaussian", tile_batch=2), **tiles))
    with pytest.raises(PromptRejected) as refused:
        comfy.queue(p)
    assert name in refused.value.messages()


# --- the methods' own encoders on large images: TADSR Encode (Tiled), ResShift's VQ through stock tiled VAE nodes ---

def tadsr_prompt(comfy, lr_image, tiles=None, mode="sample"):
    """The shipped TADSR workflow; with `tiles`, its TADSR Encode replaced by TADSR Encode (Tiled)."""
    p = prompt_of(comfy, "tadsr_x4", lr_image)
    encode = p[node_of(p, "TimeAwareSR_TADSREncode")]
    encode["inputs"]["mode"] = mode
    if tiles is not None:
        encode["class_type"] = "TimeAwareSR_TADSREncodeTiled"
        encode["inputs"].update(tiles)
    return p


def run_saved(comfy, p):
    return saved(comfy, comfy.run(p), node_of(p, "SaveImage"))


def test_tadsr_encode_tiled_runs_in_tiles_and_within_one_tile_is_tadsr_encode(comfy, lr_image):
    untiled = run_saved(comfy, tadsr_prompt(comfy, lr_image))
    one_tile = run_saved(comfy, tadsr_prompt(comfy, lr_image, dict(tile_size=1024, overlap=64)))
    # the x4 image, 384 x 256, is encoded at 768 x 512 (short side raised to 512): one 1024 tile holds it, so the
    # result is bitwise the untiled one, the seed's noise included
    assert np.array_equal(one_tile, untiled)
    tiled = run_saved(comfy, tadsr_prompt(comfy, lr_image, dict(tile_size=256, overlap=64)))  # several tiles
    assert tiled.shape == untiled.shape == (256, 384, 3) and tiled.std() > 1
    assert not np.array_equal(tiled, untiled)  # it really tiled (random tiny weights: no closeness to expect)


@pytest.mark.parametrize("tiles, message", [
    (dict(tile_size=128, overlap=64), "overlap must be below half of tile_size"),
    (dict(tile_size=136, overlap=16), "tile_size must be at least 64 and a multiple of 16 pixels, got 136"),
    (dict(tile_size=128, overlap=20), "overlap must be 0 or more and a multiple of 8 pixels, got 20"),
])
def test_bad_tadsr_encode_tiles_are_refused_when_queued(comfy, lr_image, tiles, message):
    with pytest.raises(PromptRejected) as refused:
        comfy.queue(tadsr_prompt(comfy, lr_image, tiles))
    assert message in refused.value.messages()


def test_resshift_runs_with_stock_tiled_vae_encode_and_decode_and_tiled_diffusion(comfy, lr_image):
    """96 x 64 LR -> padded 128 x 64 -> x4 = 512 x 256 pixels, 128 x 64 latent: 128-px VAE tiles and
    32-latent-px model tiles split it (the LR conditioning is cropped per tile like any latent-sized input)."""
    p = prompt_of(comfy, "sinsr_onestep_x4", lr_image)
    for stock in ("VAEEncode", "VAEDecode"):
        node = p[node_of(p, stock)]
        node["class_type"] = stock + "Tiled"
        node["inputs"].update(tile_size=128, overlap=32, temporal_size=64, temporal_overlap=8)
    loader = node_of(p, "TimeAwareSR_ResShiftLoader")
    p["100"] = {"class_type": "TimeAwareSR_TiledDiffusion",
                "inputs": {"model": [loader, 0], "tile_size": 32, "overlap": 8, "blend": "gaussian", "tile_batch": 4}}
    p[node_of(p, "BasicGuider")]["inputs"]["model"] = ["100", 0]
    out = run_saved(comfy, p)
    assert out.shape == (256, 384, 3) and np.isfinite(out).all() and out.std() > 1
