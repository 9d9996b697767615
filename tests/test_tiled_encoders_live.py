"""The methods' own encoders on large images, inside a real ComfyUI server (issue 15): TADSR Encode
(Tiled) in the shipped TADSR workflow, and ResShift's workflow with stock VAE Encode / Decode (Tiled),
at tile sizes small enough to split the test image."""
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
    one_tile = run_saved(comfy, tadsr_prompt(comfy, lr_image, dict(tile_size=512, overlap=64)))
    assert np.array_equal(one_tile, untiled)  # 384 x 256 fits one tile: bitwise, the seed's noise included
    tiled = run_saved(comfy, tadsr_prompt(comfy, lr_image, dict(tile_size=128, overlap=32)))  # 3 layouts of tiles
    assert tiled.shape == untiled.shape == (256, 384, 3) and tiled.std() > 1
    assert not np.array_equal(tiled, untiled)  # it really tiled (random tiny weights: no closeness to expect)


@pytest.mark.parametrize("tiles, message", [
    (dict(tile_size=128, overlap=64), "overlap must be below half of tile_size"),
    (dict(tile_size=136, overlap=16), "tile_size must be at least 64 and a multiple of 16 pixels, got 136"),
    (dict(tile_size=128, overlap=20), "overlap must be 0 or more and a multiple of 8 pixels, got 20"),
])
def test_bad_tiles_are_refused_when_queued(comfy, lr_image, tiles, message):
    with pytest.raises(PromptRejected) as refused:
        comfy.queue(tadsr_prompt(comfy, lr_image, tiles))
    assert message in refused.value.messages()


def test_resshift_runs_with_stock_tiled_vae_encode_and_decode(comfy, lr_image):
    """96 x 64 LR -> padded 128 x 64 -> x4 = 512 x 256 pixels, 128 x 64 latent: 128-px tiles split both."""
    p = prompt_of(comfy, "sinsr_onestep_x4", lr_image)
    for stock in ("VAEEncode", "VAEDecode"):
        node = p[node_of(p, stock)]
        node["class_type"] = stock + "Tiled"
        node["inputs"].update(tile_size=128, overlap=32, temporal_size=64, temporal_overlap=8)
    out = run_saved(comfy, p)
    assert out.shape == (256, 384, 3) and np.isfinite(out).all() and out.std() > 1
