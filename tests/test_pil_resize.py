"""Upscale Image (PIL Bicubic) against PIL's own Image.resize(BICUBIC) (docs/shared.md §7.3), and the node
on the live server."""
import numpy as np
import pytest
import torch
from PIL import Image

from timeaware_sr.image_ops.pil_resize import pil_bicubic, scaled_size

SIZES = [((29, 37), (116, 148)), ((37, 29), (111, 87)), ((13, 7), (52, 28)), ((100, 3), (400, 12)),
         ((3, 100), (12, 400)), ((64, 48), (23, 17)), ((50, 51), (33, 34)), ((31, 33), (124, 132)),
         ((1, 1), (4, 4)), ((1, 9), (4, 36)), ((45, 45), (45, 90))]  # (h, w) -> (H, W): up, down, strips


def pil_resized(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[pixels.shape[-1]]
    image = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)
    out = np.asarray(image.resize((width, height), Image.BICUBIC)).astype(np.float64) / 255
    return out[..., None] if mode == "L" else out


@pytest.mark.parametrize("size_in, size_out", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_equals_pils_bicubic_within_one_8_bit_step(size_in, size_out):
    rng = np.random.default_rng(size_in[0] * 1000 + size_in[1])
    noise = rng.integers(0, 256, (*size_in, 3), dtype=np.uint8)  # the hardest case: overshoot everywhere
    ours = pil_bicubic(torch.from_numpy(noise).float().div(255)[None], size_out[1], size_out[0])[0].double().numpy()
    theirs = pil_resized(noise, size_out[1], size_out[0])
    assert ours.shape == theirs.shape
    diff = np.abs(ours - theirs) * 255
    assert diff.max() <= 1 + 1e-4  # PIL's fixed-point weights may move a pixel by one step
    assert (diff > 0.5).mean() < 0.005  # and almost never do


@pytest.mark.parametrize("channels", [1, 4])
def test_gray_and_alpha_are_resized_like_colour(channels):
    """Every channel alone, as ComfyUI's own resizes do (PIL's RGBA resize premultiplies by alpha; the
    official pipelines resize RGB only)."""
    rng = np.random.default_rng(channels)
    pixels = rng.integers(0, 256, (21, 17, channels), dtype=np.uint8)
    ours = pil_bicubic(torch.from_numpy(pixels).float().div(255)[None], 68, 84)[0].double().numpy()
    theirs = np.concatenate([pil_resized(pixels[..., c:c + 1], 68, 84) for c in range(channels)], axis=-1)
    assert np.abs(ours - theirs).max() * 255 <= 1 + 1e-4


def test_it_is_not_comfyuis_bicubic():
    """ComfyUI's 'bicubic' (a = -0.75) differs by far more than a step on detailed content."""
    import comfy.utils

    noise = torch.rand(1, 16, 16, 3, generator=torch.Generator().manual_seed(3))
    comfy_x4 = comfy.utils.common_upscale(noise.movedim(-1, 1), 64, 64, "bicubic", "disabled").movedim(1, -1)
    assert (pil_bicubic(noise, 64, 64) - comfy_x4.clamp(0, 1)).abs().max() > 10 / 255


def test_a_batch_is_resized_image_by_image():
    images = torch.rand(3, 11, 13, 3, generator=torch.Generator().manual_seed(0))
    batch = pil_bicubic(images, 52, 44)
    for i in range(3):
        torch.testing.assert_close(batch[i:i + 1], pil_bicubic(images[i:i + 1], 52, 44), atol=0, rtol=0)


def test_sizes_round_as_upscale_image_by():
    assert scaled_size(37, 29, 4.0) == (148, 116)
    assert scaled_size(5, 3, 0.5) == (2, 2)  # round half to even, as Python's round in ImageScaleBy
    assert scaled_size(1, 1, 0.01) == (1, 1)


@pytest.mark.live
def test_the_node_returns_exactly_scale_times_the_input_on_the_server(comfy):
    rng = np.random.default_rng(5)
    rgba = rng.integers(0, 256, (29, 37, 4), dtype=np.uint8)
    name = "pil_resize_rgba.png"
    Image.fromarray(rgba, "RGBA").save(comfy.input_dir / name)
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "TimeAwareSR_ImageScalePIL", "inputs": {"image": ["1", 0], "scale_by": 4.0}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "pil_resize"}},
    }
    outputs = comfy.run(prompt)
    [path] = comfy.output_images(outputs, "3")
    saved = np.asarray(Image.open(path)).astype(np.float64) / 255
    assert saved.shape == (116, 148, 3)  # LoadImage splits alpha into a MASK: the colour comes through
    assert np.abs(saved - pil_resized(np.ascontiguousarray(rgba[..., :3]), 148, 116)).max() * 255 <= 1 + 1e-4
