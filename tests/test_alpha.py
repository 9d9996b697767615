"""put_back_alpha (image_ops/alpha.py): the input's transparency, carried round the RGB-only models as Load
Image's MASK, laid onto the result by Restore Size and ResShift Crop Output."""
import numpy as np
import pytest
import torch
from PIL import Image

from timeaware_sr.clear_errors import InputError
from timeaware_sr.image_ops.alpha import put_back_alpha


def ramp_mask(height, width, batch=1):
    """LoadImage's convention: 1 - alpha, alpha a left-to-right ramp."""
    alpha = torch.linspace(0, 1, width).expand(batch, height, width)
    return 1 - alpha


def test_an_opaque_or_missing_mask_leaves_the_result_as_it_is():
    image = torch.rand(2, 32, 48, 3)
    assert put_back_alpha(image, None, "Node") is image
    assert put_back_alpha(image, torch.zeros(1, 8, 12), "Node") is image
    assert put_back_alpha(image, torch.zeros(64, 64), "Node") is image  # LoadImage's stand-in for "no alpha"


def test_the_mask_becomes_alpha_stretched_like_pil_bicubic_to_the_result():
    lr_alpha = (np.arange(12 * 9).reshape(9, 12) * 2).astype(np.uint8)  # every pixel its own alpha
    mask = 1 - torch.from_numpy(lr_alpha.astype(np.float32) / 255)[None]
    image = torch.rand(1, 36, 48, 3)
    out = put_back_alpha(image, mask, "Node")
    assert out.shape == (1, 36, 48, 4)
    assert torch.equal(out[..., :3], image)  # colour untouched
    expected = np.asarray(Image.fromarray(lr_alpha).resize((48, 36), Image.BICUBIC)).astype(np.float32) / 255
    assert np.abs(out[0, ..., 3].numpy() - expected).max() < 4 / 255  # PIL's bicubic (a = -0.5), 8-bit rounding


def test_one_mask_serves_a_batch_and_gray_or_rgba_results_keep_their_colour():
    mask = ramp_mask(4, 6)
    gray = torch.rand(3, 8, 12, 1)
    out = put_back_alpha(gray, mask, "Node")
    assert out.shape == (3, 8, 12, 2) and torch.equal(out[..., :1], gray)
    assert torch.equal(out[0, ..., 1], out[2, ..., 1])
    rgba = torch.rand(1, 8, 12, 4)
    out = put_back_alpha(rgba, mask, "Node")
    assert out.shape == (1, 8, 12, 4) and torch.equal(out[..., :3], rgba[..., :3])
    assert out[0, 0, 0, 3] == 0 and out[0, 0, -1, 3] == 1  # the mask's alpha, not the old one


def test_a_mask_of_the_same_size_is_taken_exactly():
    mask = torch.rand(2, 5, 7)
    out = put_back_alpha(torch.rand(2, 5, 7, 3), mask, "Node")
    assert torch.equal(out[..., 3], 1 - mask)


@pytest.mark.parametrize("mask, why", [
    (ramp_mask(4, 6, batch=2), "the mask holds 2 masks for a batch of 3 images"),
    (ramp_mask(6, 6), "the mask is 6x6 px, not the shape of the 12x8 px result"),
])
def test_a_mask_of_other_images_is_refused_saying_what_to_connect(mask, why):
    with pytest.raises(InputError, match=f"Restore Size: {why}.*connect the MASK of the node that loaded"):
        put_back_alpha(torch.rand(3, 8, 12, 3), mask, "Restore Size")


def test_rounding_of_a_scaled_side_is_not_a_mismatch():
    # ImageScaleBy 0.7 of a 4x (36x27 -> 101x76): one side rounds, the shape is still the mask's.
    out = put_back_alpha(torch.rand(1, 76, 101, 3), ramp_mask(27, 36), "Node")
    assert out.shape == (1, 76, 101, 4)
