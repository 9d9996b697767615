"""PIL's bicubic resize (Image.resize(size, Image.BICUBIC)) on ComfyUI IMAGEs, in float: the resize the
official TADSR and TASR pre-processing calls, which their models were trained on (docs/shared.md §7.3).

ComfyUI's own bicubic is a different filter (a = -0.75, no antialiasing when shrinking), and torch's
antialiased bicubic differs from PIL's at the borders when enlarging. PIL's rule, per axis:
- the cubic convolution kernel with a = -0.5 (Keys), stretched by the scale when shrinking;
- output pixel i centred at (i + 0.5) * in/out in input coordinates;
- taps outside the image dropped and the remaining weights renormalised to sum to 1.
Width is resized first, then height, as PIL does, and each pass is stored as PIL stores an 8-bit image:
clipped to [0, 1] (bicubic overshoot at sharp edges does not carry into the second pass) and rounded to
1/255 steps. The official pipelines resize 8-bit images, so this is what their models saw; PIL's
fixed-point weights can still move a pixel by one step.
"""
import math

import torch

from ..clear_errors import InputError

A = -0.5  # PIL's bicubic (Resample.c bicubic_filter)
SUPPORT = 2.0


def cubic(x: torch.Tensor) -> torch.Tensor:
    x = x.abs()
    near = ((A + 2) * x - (A + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * A
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def axis_weights(size_in: int, size_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(tap indices, weights), each size_out x taps, float64 weights summing to 1 per row."""
    scale = size_in / size_out
    stretch = max(scale, 1.0)
    support = SUPPORT * stretch
    taps = int(math.ceil(support)) * 2 + 1
    centre = (torch.arange(size_out, dtype=torch.float64) + 0.5) * scale
    first = torch.clamp((centre - support + 0.5).trunc(), min=0)  # PIL: (int)(center - support + 0.5)
    last = torch.clamp((centre + support + 0.5).trunc(), max=size_in)
    index = first[:, None] + torch.arange(taps, dtype=torch.float64)[None]
    weight = cubic((index - centre[:, None] + 0.5) / stretch)
    weight = torch.where(index < last[:, None], weight, torch.zeros_like(weight))
    weight = weight / weight.sum(dim=1, keepdim=True)
    return index.clamp(max=size_in - 1).long(), weight


def resize_axis(x: torch.Tensor, size_out: int, dim: int) -> torch.Tensor:
    index, weight = axis_weights(x.shape[dim], size_out)
    x = x.movedim(dim, -1)
    index, weight = index.to(x.device), weight.to(x)  # built in float64 on the CPU (MPS has no float64), moved once
    out = x[..., index[:, 0]] * weight[:, 0]
    for tap in range(1, index.shape[1]):  # tap by tap: memory of one output, not of all taps
        out += x[..., index[:, tap]] * weight[:, tap]
    return out.movedim(-1, dim)


def pil_bicubic(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """An IMAGE (B,H,W,C, any channels: alpha is resized like colour) resized to width x height."""
    if image.ndim != 4:
        raise InputError(f"image must be a batch of images (B,H,W,C), got shape {tuple(image.shape)}")
    if width < 1 or height < 1:
        raise InputError(f"the resized image must be at least 1x1 pixels, got {width}x{height}")
    x = image.float()
    if x.shape[2] != width:
        x = as_8_bit(resize_axis(x, width, 2))
    if x.shape[1] != height:
        x = as_8_bit(resize_axis(x, height, 1))
    return x


def as_8_bit(x: torch.Tensor) -> torch.Tensor:
    """Clipped and rounded to 1/255 steps, as PIL stores each pass of an 8-bit image."""
    return torch.floor(x.clamp(0, 1) * 255 + 0.5) / 255


def scaled_size(width: int, height: int, scale_by: float) -> tuple[int, int]:
    """ComfyUI's ImageScaleBy rule (round each side), at least 1 pixel."""
    return max(1, round(width * scale_by)), max(1, round(height * scale_by))
