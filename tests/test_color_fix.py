"""Colour fix (SPEC §7): the math against a StableSR-style reference written here, then the
ComfyUI-IMAGE wrapper's handling of real inputs."""
import numpy as np
import pytest
import torch

from timeaware_sr.image_ops.color_fix import (
    adain_color_fix,
    color_fix_images,
    wavelet_color_fix,
    wavelet_decomposition,
)


def photo_like(b=2, c=3, h=48, w=40, seed=0):
    """Smooth colour field plus texture, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, h)[:, None]
    x = torch.linspace(0, 1, w)[None, :]
    base = torch.stack([0.3 + 0.4 * x * y, (0.5 + 0.2 * torch.sin(6 * x)).expand(h, w), 0.4 + 0.3 * y.expand(h, w)])[:c]
    return (base + 0.1 * torch.rand(b, c, h, w, generator=g)).clamp(0, 1)


def stablesr_wavelet_fix(content: np.ndarray, style: np.ndarray, levels: int = 5) -> np.ndarray:
    """SPEC §7 / StableSR's wavelet_reconstruction on C×H×W arrays, with explicit neighbour indexing:
    level i blurs with the 3×3 kernel [1 2 1; 2 4 2; 1 2 1] / 16 whose taps sit 2^i pixels apart,
    reading past the border as the edge pixel; high = sum of (x - blur(x)) over the levels, low = the
    last blur. Output = content's high + style's low."""
    weights = {-1: 1, 0: 2, 1: 1}

    def blur(x, radius):
        h, w = x.shape[-2:]
        out = np.zeros_like(x)
        for di, wi in weights.items():
            rows = np.clip(np.arange(h) + di * radius, 0, h - 1)
            for dj, wj in weights.items():
                cols = np.clip(np.arange(w) + dj * radius, 0, w - 1)
                out += wi * wj / 16 * x[:, rows[:, None], cols[None, :]]
        return out

    def split(x):
        high = np.zeros_like(x)
        for i in range(levels):
            low = blur(x, 2**i)
            high += x - low
            x = low
        return high, x

    return split(content)[0] + split(style)[1]


def test_wavelet_fix_equals_the_stablesr_reference():
    content, style = photo_like(b=1, h=70, w=52, seed=11), photo_like(b=1, h=70, w=52, seed=12) * 0.6 + 0.3
    expected = stablesr_wavelet_fix(content[0].double().numpy(), style[0].double().numpy())
    ours = wavelet_color_fix(content, style)[0].double().numpy()
    assert np.abs(ours - expected).max() < 1e-5  # float32 convolutions summed over 5 levels, values ~1
    assert np.abs(expected - content[0].numpy()).max() > 0.05  # the fix really changes the image


def test_a_smaller_reference_is_resized_smoothly_before_the_fix():
    """A linear colour ramp survives bicubic upscaling exactly (the cubic kernel reproduces linear
    functions), so away from the border the fix with the 32×32 ramp must equal the fix with the
    same ramp drawn at 128×128: the resize is smooth where the content is."""
    def ramp(size):
        centres = (torch.arange(size, dtype=torch.float64) + 0.5) / size  # pixel centres in [0, 1]
        y, x = centres[:, None].expand(size, size), centres[None, :].expand(size, size)
        return torch.stack([0.2 + 0.5 * x, 0.7 - 0.4 * y, 0.3 + 0.2 * x + 0.3 * y], dim=-1)[None]

    image = as_image(photo_like(b=1, h=128, w=128, seed=13)) * 0.5 + 0.25
    out = color_fix_images(image, ramp(32).float())
    expected = stablesr_wavelet_fix(image[0].movedim(-1, 0).double().numpy(), ramp(128)[0].movedim(-1, 0).numpy())
    # Bicubic is exact for a ramp except within 2 px of the border, which the 5 levels spread up to
    # 31 px further: compare from 34 px in. 1e-5: float32 arithmetic on values ~1.
    inside = (slice(34, -34), slice(34, -34))
    diff = out[0].movedim(-1, 0).double().numpy()[(slice(None), *inside)] - np.clip(expected, 0, 1)[(slice(None), *inside)]
    assert np.abs(diff).max() < 1e-5


@pytest.mark.parametrize("method", ["wavelet", "adain"])
def test_a_reference_of_another_size_is_resized_by_antialiased_bicubic(method):
    """The ramp above cannot tell a nearest resize apart (torch's nearest 32 -> 128 staircase is centred on
    the ramp and the wavelet's blur flattens it); a textured reference can."""
    import torch.nn.functional as F

    image = as_image(photo_like(b=1, h=96, w=80, seed=21)) * 0.5 + 0.25
    for ref_h, ref_w in [(24, 20), (200, 150)]:  # up and down
        reference = as_image(photo_like(b=1, h=ref_h, w=ref_w, seed=22))
        resized = F.interpolate(reference.movedim(-1, 1), size=(96, 80), mode="bicubic", antialias=True,
                                align_corners=False).movedim(1, -1)
        torch.testing.assert_close(color_fix_images(image, reference, method),
                                   color_fix_images(image, resized, method), atol=1e-6, rtol=0)


def test_wavelet_decomposition_high_plus_low_is_the_input():
    x = photo_like()
    high, low = wavelet_decomposition(x)
    torch.testing.assert_close(high + low, x, atol=1e-6, rtol=0)  # telescoping sum, fp32 rounding


def test_wavelet_fix_of_an_image_against_itself_is_identity():
    x = photo_like()
    assert (wavelet_color_fix(x, x) - x).abs().max() <= 1e-5  # float32 convolutions, values ~1


def test_wavelet_fix_removes_a_global_colour_cast_and_keeps_detail():
    reference = photo_like(seed=1)
    cast = reference + torch.tensor([0.08, -0.05, 0.03])[:, None, None]
    # A constant offset has no high frequencies, so the fix restores the reference exactly.
    assert (wavelet_color_fix(cast, reference) - reference).abs().max() <= 1e-5  # float32, values ~1


def test_wavelet_fix_keeps_content_high_frequencies():
    reference = photo_like(h=96, w=96, seed=2)
    checker = ((torch.arange(96)[:, None] + torch.arange(96)[None, :]) % 2).float() * 0.2
    out = wavelet_color_fix(reference + checker, reference)
    # out - reference = high(checker): the first blur level removes the Nyquist pattern, leaving its
    # mean 0.1. Replicate padding disturbs up to 1+2+4+8+16 = 31 px from the border: compare inside.
    inside = (..., slice(32, -32), slice(32, -32))
    torch.testing.assert_close((out - reference)[inside], (checker - 0.1)[32:-32, 32:-32].expand(2, 3, -1, -1),
                               atol=1e-5, rtol=0)  # float32, values ~1


def test_adain_output_channel_stats_equal_the_reference():
    content = photo_like(seed=3) * 0.5 + 0.4
    reference = photo_like(seed=4)
    out = adain_color_fix(content, reference, eps=0.0)  # eps only guards flat images; 0 makes it exact
    torch.testing.assert_close(out.mean(dim=(2, 3)), reference.mean(dim=(2, 3)), atol=1e-5, rtol=0)  # float32 means
    torch.testing.assert_close(out.std(dim=(2, 3)), reference.std(dim=(2, 3)), atol=0, rtol=1e-5)  # float32 stds


def test_adain_of_a_flat_image_stays_finite():
    out = adain_color_fix(torch.full((1, 3, 8, 8), 0.5), photo_like(b=1))
    assert torch.isfinite(out).all()


def as_image(x):
    return x.movedim(1, -1)


def test_reference_of_another_size_is_resized_and_output_keeps_image_size():
    image = as_image(photo_like(b=1, h=64, w=48))
    reference = as_image(photo_like(b=1, h=16, w=12))
    out = color_fix_images(image, reference, "wavelet")
    assert out.shape == image.shape
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_one_reference_serves_a_whole_batch_and_matching_batches_pair_up():
    image = as_image(photo_like(b=3, seed=5))
    ref1 = as_image(photo_like(b=1, seed=6))
    out = color_fix_images(image, ref1, "adain")
    for i in range(3):
        torch.testing.assert_close(out[i:i + 1], color_fix_images(image[i:i + 1], ref1, "adain"))  # float32 defaults
    ref3 = as_image(photo_like(b=3, seed=7))
    out3 = color_fix_images(image, ref3, "adain")
    torch.testing.assert_close(out3[2:3], color_fix_images(image[2:3], ref3[2:3], "adain"))  # float32 defaults


def test_alpha_is_passed_through_untouched():
    rgb = as_image(photo_like(b=1))
    alpha = torch.rand(1, 48, 40, 1)
    out = color_fix_images(torch.cat([rgb, alpha], -1), as_image(photo_like(b=1, seed=9)))
    assert out.shape[-1] == 4
    assert torch.equal(out[..., 3:], alpha)


def test_grayscale_image_with_rgb_reference_and_rgb_image_with_gray_reference():
    gray = as_image(photo_like(b=1, c=1)) * 0.5 + 0.25
    rgb = as_image(photo_like(b=1, seed=10)) * 0.5 + 0.25  # away from 0 and 1: no clamping
    rgb[..., 0] += 0.2  # red and blue far apart, so mixing up the luma weights shows
    rgb[..., 2] -= 0.2
    luma = rgb[..., :1] * 0.299 + rgb[..., 1:2] * 0.587 + rgb[..., 2:] * 0.114  # BT.601
    expected = stablesr_wavelet_fix(gray[0].movedim(-1, 0).double().numpy(), luma[0].movedim(-1, 0).double().numpy())
    out_gray = color_fix_images(gray, rgb)
    assert out_gray.shape == gray.shape
    assert np.abs(out_gray[0].movedim(-1, 0).double().numpy() - expected).max() < 1e-5  # float32, values ~1
    out = color_fix_images(rgb, gray * 0.5 + 0.25)
    assert out.shape == rgb.shape
    # A gray reference gives every channel the same low frequencies: out - high(image) is gray.
    low = out.movedim(-1, 1) - wavelet_decomposition(rgb.movedim(-1, 1))[0]
    assert (low[:, 0] - low[:, 1]).abs().max() < 1e-5
    assert (low[:, 0] - low[:, 2]).abs().max() < 1e-5  # float32, values ~1


@pytest.mark.parametrize(
    "image, reference, message",
    [
        (torch.zeros(0, 8, 8, 3), torch.rand(1, 8, 8, 3), "image is empty"),
        (torch.rand(1, 8, 8, 3), torch.zeros(1, 0, 8, 3), "reference is empty"),
        (torch.rand(2, 8, 8, 3), torch.rand(3, 8, 8, 3), "reference batch size 3 must be 1 or equal the image batch size 2"),
        (torch.full((1, 8, 8, 3), float("nan")), torch.rand(1, 8, 8, 3), "image contains NaN"),
        (torch.rand(1, 8, 8, 5), torch.rand(1, 8, 8, 3), "image has 5 channels"),
    ],
)
def test_bad_inputs_raise_clear_errors(image, reference, message):
    with pytest.raises(ValueError, match=message):
        color_fix_images(image, reference)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="method must be one of"):
        color_fix_images(torch.rand(1, 8, 8, 3), torch.rand(1, 8, 8, 3), "histogram")
