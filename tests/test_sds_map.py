"""TSS Spatial Dynamic Sampling variance map (SPEC §2)."""
import math

import numpy as np
import pytest
import torch

import torch.nn.functional as F

from timeaware_sr.image_ops import sds_map
from timeaware_sr.image_ops.sds_map import BLUR_SIGMA, WINDOW, local_variance, to_latent_size, variance_map


def brute_force_variance_map(image: np.ndarray) -> np.ndarray:
    """SPEC §2 steps 1-2 for one H×W×3 image, pixel by pixel: BT.601 luma, the population variance
    of the 33×33 window around each pixel, a 33×33 Gaussian blur with OpenCV's sigma for that size,
    min-max. Borders repeat the edge pixel (replicate) in both windows."""
    y = image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114
    r = 16  # 33 = 2 r + 1
    h, w = y.shape
    padded = np.pad(y, r, mode="edge")
    v0 = np.empty_like(y)
    for i in range(h):
        for j in range(w):
            v0[i, j] = padded[i:i + 33, j:j + 33].var()
    sigma = 0.3 * ((33 - 1) * 0.5 - 1) + 0.8  # cv2.getGaussianKernel's default for ksize 33
    g = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma**2))
    kernel = np.outer(g, g) / np.outer(g, g).sum()
    padded = np.pad(v0, r, mode="edge")
    vg = np.empty_like(v0)
    for i in range(h):
        for j in range(w):
            vg[i, j] = (padded[i:i + 33, j:j + 33] * kernel).sum()
    return (vg - vg.min()) / (vg.max() - vg.min())


def test_map_equals_a_brute_force_windowed_variance_and_blur():
    g = torch.Generator().manual_seed(7)
    img = torch.rand(1, 42, 50, 3, generator=g) * 0.2
    img[:, 10:30, 20:44] += 0.6 * torch.rand(1, 20, 24, 3, generator=g)  # a textured patch off-centre
    ours = variance_map(img)[0].double().numpy()
    expected = brute_force_variance_map(img[0].double().numpy())
    # The map is formed in float64 and returned as float32: 1e-6 covers the final rounding.
    assert np.abs(ours - expected).max() < 1e-6
    assert 0.2 < expected.mean() < 0.8  # a map with structure, not a near-constant one


def test_a_constant_image_gives_all_zeros():
    assert torch.equal(variance_map(torch.full((2, 40, 56, 3), 0.4)), torch.zeros(2, 40, 56))


def test_texture_side_is_high_and_flat_side_low():
    img = torch.full((1, 96, 128, 3), 0.5)
    # zero-mean texture: no brightness step at the border, which would itself be an (edge) texture
    img[:, :, 64:] += 0.3 * (torch.rand(1, 96, 64, 3, generator=torch.Generator().manual_seed(0)) - 0.5)
    v = variance_map(img)[0]
    assert v.min() >= 0 and v.max() == pytest.approx(1.0)  # min-max normalised: 1 up to float32 rounding
    assert v[:, 90:].mean() > 0.7 and v[:, :30].mean() < 0.05


def test_sizes_that_are_not_multiples_of_8_and_tiny_images_work():
    for h, w in [(37, 53), (9, 7), (1, 1)]:
        assert variance_map(torch.rand(1, h, w, 3)).shape == (1, h, w)


def test_batch_is_kept_and_each_image_is_normalised_on_its_own():
    a = torch.rand(1, 48, 48, 3) * 0.05
    b = torch.rand(1, 48, 48, 3)
    v = variance_map(torch.cat([a, b]))
    assert v.shape == (2, 48, 48)
    assert v[0].max() == pytest.approx(1.0) and v[1].max() == pytest.approx(1.0)  # float32 rounding
    torch.testing.assert_close(v[0], variance_map(a)[0])  # same image alone: float32 defaults


def test_gray_and_alpha_inputs_give_the_same_map_as_rgb():
    rgb = torch.rand(1, 32, 32, 3)
    gray = (rgb * torch.tensor([0.299, 0.587, 0.114])).sum(-1, keepdim=True)
    torch.testing.assert_close(variance_map(gray), variance_map(rgb), atol=1e-5, rtol=0)  # luma made here vs in the pack, float32
    rgba = torch.cat([rgb, torch.rand(1, 32, 32, 1)], -1)
    torch.testing.assert_close(variance_map(rgba), variance_map(rgb))  # alpha dropped: float32 defaults


def brute_force_local_variance(y):
    """Each pixel's population variance over its 33×33 window, edge pixels repeated, one window at a time."""
    H, W = y.shape
    r = WINDOW // 2
    out = torch.empty(H, W, dtype=torch.float64)
    for i in range(H):
        rows = torch.arange(i - r, i + r + 1).clamp(0, H - 1)
        for j in range(W):
            cols = torch.arange(j - r, j + r + 1).clamp(0, W - 1)
            out[i, j] = y[rows][:, cols].var(unbiased=False)
    return out


def test_local_variance_equals_a_brute_force_windowed_variance():
    """Window 33 with replicate borders, checked pixel by pixel; 1e-12: float64 running sums of
    values in [-1, 1] over at most 33 + 40 entries."""
    y = torch.rand(40, 45, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y[:, :20] = 0.25  # a flat part, where the variance is 0 up to rounding
    torch.testing.assert_close(local_variance(y, 0, 40), brute_force_local_variance(y), atol=1e-12, rtol=0)
    torch.testing.assert_close(local_variance(y, 7, 19), brute_force_local_variance(y)[7:19], atol=1e-12, rtol=0)


def conv_reference_map(image):
    """The previous implementation (whole-image float64 conv2d, replicate pad) written out here."""
    y = (image[..., :3].double() * torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)).sum(-1)[:, None]

    def separable(x, k):
        r = k.numel() // 2
        x = F.conv2d(F.pad(x, (r, r, r, r), mode="replicate"), k.view(1, 1, 1, -1))
        return F.conv2d(x, k.view(1, 1, -1, 1))

    box = torch.full((33,), 1 / 33, dtype=torch.float64)
    v0 = (separable(y * y, box) - separable(y, box) ** 2).clamp(min=0)
    x = torch.arange(33, dtype=torch.float64) - 16
    g = torch.exp(-x * x / (2 * (0.3 * (16 - 1) + 0.8) ** 2))
    vg = separable(v0, g / g.sum()).flatten(1)
    low, high = vg.min(1, keepdim=True).values, vg.max(1, keepdim=True).values
    return ((vg - low) / (high - low)).view(image.shape[:3]).float()


@pytest.mark.parametrize("rows_per_chunk", [256, 7])  # one band, and many bands with a ragged last one
def test_banded_map_equals_the_whole_image_convolution(monkeypatch, rows_per_chunk):
    """Same map as the conv2d implementation it replaced; 1e-6: the float32 output's rounding, far above
    the float64 differences of summation order (~1e-12 before normalisation)."""
    monkeypatch.setattr(sds_map, "ROWS_PER_CHUNK", rows_per_chunk)
    g = torch.Generator().manual_seed(5)
    image = torch.rand(2, 70, 83, 3, generator=g)
    image[:, :, :40] = 0.5 + 0.02 * torch.rand(2, 70, 40, 3, generator=g)
    assert BLUR_SIGMA == pytest.approx(0.3 * (16 - 1) + 0.8)
    torch.testing.assert_close(variance_map(image), conv_reference_map(image), atol=1e-6, rtol=0)


def test_resize_to_latent_averages_areas():
    """Every latent pixel is the mean of the 8×8 image block it covers (SPEC §2 step 3, area)."""
    v = torch.rand(2, 24, 40, generator=torch.Generator().manual_seed(3))
    out = to_latent_size(v, 3, 5)
    block_means = v.reshape(2, 3, 8, 5, 8).mean(dim=(2, 4))
    assert out.shape == (2, 1, 3, 5)
    torch.testing.assert_close(out[:, 0], block_means, rtol=0, atol=1e-6)  # float32 sums of 64 values


def test_live_sds_node_previews_the_map(comfy):
    import shutil

    import numpy as np
    from PIL import Image

    from support import comfy_live

    sample = comfy_live.PACK_DIR / "workflows" / "assets" / "chelsea_lr.png"
    shutil.copy(sample, comfy.input_dir / sample.name)
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": sample.name}},
        "2": {"class_type": "TimeAwareSR_SDSVarianceMap", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "sds"}},
        "4": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 1]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "sds_mask"}},
    }
    outputs = comfy.run(prompt)
    [preview] = comfy.output_images(outputs, "3")
    [mask] = comfy.output_images(outputs, "5")
    a, b = np.asarray(Image.open(preview)), np.asarray(Image.open(mask))
    assert a.shape == (64, 96, 3) and np.array_equal(a, b)
    assert a.max() == 255 and a.min() < 64  # normalised: the cat's fur is textured, some areas are smooth


def test_nan_input_is_refused():
    img = torch.rand(1, 16, 16, 3)
    img[0, 3, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        variance_map(img)
