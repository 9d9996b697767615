"""Color Fix inside a real ComfyUI server, queued through the HTTP API."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from support.comfy_live import ExecutionFailed, PromptRejected
from timeaware_sr.image_ops.color_fix import color_fix_images


def write_png(comfy, name, array):
    Image.fromarray(array).save(comfy.input_dir / name)
    return torch.from_numpy(array.astype(np.float32) / 255)[None]


def prompt(image, reference, method="wavelet", batch=None):
    p = {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "LoadImage", "inputs": {"image": reference}},
        "3": {"class_type": "TimeAwareSR_ColorFix", "inputs": {"image": ["1", 0], "reference": ["2", 0], "method": method}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "colorfix"}},
    }
    if batch:
        p["5"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": batch}}
        p["3"]["inputs"]["image"] = ["5", 0]
    return p


@pytest.fixture(scope="module")
def images(comfy):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:96]
    hr = np.stack([x * 2, y * 3, 255 - x * 2], -1).clip(0, 255) + rng.integers(0, 40, (64, 96, 3))
    lr = np.stack([x[::4, ::4] * 2 + 40, y[::4, ::4] * 3, 200 - x[::4, ::4]], -1)
    return write_png(comfy, "cf_hr.png", hr.clip(0, 255).astype(np.uint8)), write_png(comfy, "cf_lr.png", lr.clip(0, 255).astype(np.uint8))


@pytest.mark.parametrize("method", ["wavelet", "adain"])
def test_color_fix_runs_in_the_server_and_matches_the_math(comfy, images, method):
    hr, lr = images
    outputs = comfy.run(prompt("cf_hr.png", "cf_lr.png", method))
    [saved] = outputs["4"]["images"]
    result = np.asarray(Image.open(io.BytesIO(comfy.fetch_image_bytes(saved)))).astype(np.float32) / 255
    assert result.shape == (64, 96, 3)  # the image's size, not the 24×16 reference's
    expected = color_fix_images(hr, lr, method)[0].numpy()
    assert np.abs(result - expected).max() <= 1 / 255 + 1e-6  # PNG quantisation


def test_one_reference_for_a_batch(comfy, images):
    hr, lr = images
    outputs = comfy.run(prompt("cf_hr.png", "cf_lr.png", batch=3))
    assert len(outputs["4"]["images"]) == 3
    expected = color_fix_images(hr, lr)[0].numpy()
    for saved in outputs["4"]["images"]:  # every image of the batch got the one reference's colours
        result = np.asarray(Image.open(io.BytesIO(comfy.fetch_image_bytes(saved)))).astype(np.float32) / 255
        assert np.abs(result - expected).max() <= 1 / 255 + 1e-6  # PNG quantisation


def test_mismatched_batches_fail_with_a_clear_message(comfy, images):
    p = prompt("cf_hr.png", "cf_lr.png", batch=2)
    p["6"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["2", 0], "amount": 3}}
    p["3"]["inputs"]["reference"] = ["6", 0]
    with pytest.raises(ExecutionFailed, match="reference batch size 3 must be 1 or equal the image batch size 2"):
        comfy.run(p)


def test_unknown_method_is_rejected_before_running(comfy, images):
    with pytest.raises(PromptRejected) as err:
        comfy.run(prompt("cf_hr.png", "cf_lr.png", method="histogram"))
    assert "method" in err.value.messages() and "histogram" in err.value.messages()
