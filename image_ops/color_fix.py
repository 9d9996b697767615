"""Colour fix after SR (docs/shared.md §7): AdaIN and StableSR's wavelet low/high-frequency swap.

The tensor functions take B×C×H×W; `color_fix_images` takes ComfyUI IMAGEs (B×H×W×C in [0, 1])
and handles the practical cases: a reference of another size, one reference for a batch,
grayscale and alpha.
"""
import torch
import torch.nn.functional as F

from ..clear_errors import InputError
from .luma import luma

METHODS = ("wavelet", "adain")
WAVELET_LEVELS = 5  # StableSR / DoSSR / TASR all use 5


def adain_color_fix(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Match each channel's mean and std to the style image's (Huang & Belongie, AdaIN)."""
    c_mean, c_std = _channel_stats(content, eps)
    s_mean, s_std = _channel_stats(style, eps)
    return (content - c_mean) / c_std * s_std + s_mean


def _channel_stats(x: torch.Tensor, eps: float):
    flat = x.flatten(2)
    mean = flat.mean(dim=2)[..., None, None]
    std = (flat.var(dim=2) + eps).sqrt()[..., None, None]
    return mean, std


def wavelet_blur(x: torch.Tensor, radius: int) -> torch.Tensor:
    """One level of the à-trous 3×3 binomial blur, dilated by `radius`, replicate-padded."""
    k = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=x.dtype, device=x.device) / 16
    k = k.expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (radius,) * 4, mode="replicate"), k, groups=x.shape[1], dilation=radius)


def wavelet_decomposition(x: torch.Tensor, levels: int = WAVELET_LEVELS):
    """Split x into (high, low) with high + low == x: the sum telescopes over the levels."""
    high = torch.zeros_like(x)
    for i in range(levels):
        low = wavelet_blur(x, 2**i)
        high = high + (x - low)
        x = low
    return high, x


def wavelet_color_fix(content: torch.Tensor, style: torch.Tensor, levels: int = WAVELET_LEVELS) -> torch.Tensor:
    """Keep content's high frequencies and take style's low frequencies (colour, tone)."""
    content_high, _ = wavelet_decomposition(content, levels)
    _, style_low = wavelet_decomposition(style, levels)
    return content_high + style_low


def color_fix_images(image: torch.Tensor, reference: torch.Tensor, method: str = "wavelet") -> torch.Tensor:
    """Colour-fix ComfyUI IMAGEs (B×H×W×C). The image keeps its own size and alpha."""
    if method not in METHODS:
        raise InputError(f"Color Fix: method must be one of {METHODS}, got {method!r}")
    _check_image("image", image)
    _check_image("reference", reference)
    if reference.shape[0] not in (1, image.shape[0]):
        raise InputError(
            f"Color Fix: reference batch size {reference.shape[0]} must be 1 or equal the image "
            f"batch size {image.shape[0]}"
        )
    color, alpha = _split_alpha(image.float())
    ref_color, _ = _split_alpha(reference.float())
    ref_color = _match_channels(ref_color, color.shape[-1])

    content = color.movedim(-1, 1)
    style = ref_color.movedim(-1, 1).to(content.device)
    if style.shape[-2:] != content.shape[-2:]:
        # Only the reference's low frequencies are used, so a smooth resize loses nothing.
        style = F.interpolate(style, size=content.shape[-2:], mode="bicubic", antialias=True, align_corners=False)
    style = style.expand(content.shape[0], -1, -1, -1)

    fix = wavelet_color_fix if method == "wavelet" else adain_color_fix
    out = fix(content, style).movedim(1, -1).clamp(0, 1)
    if alpha is not None:
        out = torch.cat([out, alpha], dim=-1)
    return out


def _check_image(name: str, x: torch.Tensor):
    if x is None or x.ndim != 4 or min(x.shape) == 0:
        shape = None if x is None else tuple(x.shape)
        raise InputError(f"Color Fix: {name} is empty or not an image batch (shape {shape}, expected B×H×W×C)")
    if x.shape[-1] not in (1, 2, 3, 4):
        raise InputError(f"Color Fix: {name} has {x.shape[-1]} channels; expected 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)")
    if not torch.isfinite(x).all():
        raise InputError(f"Color Fix: {name} contains NaN or infinite values")


def _split_alpha(x: torch.Tensor):
    if x.shape[-1] in (2, 4):
        return x[..., :-1], x[..., -1:]
    return x, None


def _match_channels(reference: torch.Tensor, channels: int) -> torch.Tensor:
    if reference.shape[-1] == channels:
        return reference
    if channels == 1:  # RGB reference for a grayscale image: compare brightness
        return luma(reference)
    return reference.expand(*reference.shape[:-1], channels)
