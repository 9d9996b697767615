"""TSS Spatial Dynamic Sampling (docs/tss.md §2): where the image has texture, as a map in [0, 1].

V0 = local variance of the luma in a 33x33 window; Vg = min-max normalised 33x33 Gaussian blur of
V0, per image (a flat image gives zeros). The blur's sigma follows OpenCV's rule for a 33 kernel
(0.3 ((33 - 1) / 2 - 1) + 0.8 = 5.3), the usual choice when only the kernel size is given.
"""
import torch
import torch.nn.functional as F

from ..clear_errors import InputError
from .luma import luma
from .model_size import SizeRecord, map_on_padded_canvas

WINDOW = 33
BLUR_SIGMA = 0.3 * ((WINDOW - 1) / 2 - 1) + 0.8


def image_luma(image: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE (B×H×W×C, C = 1..4) -> B×1×H×W; alpha is ignored."""
    if image.shape[-1] in (2, 4):
        image = image[..., :-1]
    if image.shape[-1] == 1:
        return image.movedim(-1, 1).float()
    return luma(image[..., :3].float()).movedim(-1, 1)


ROWS_PER_CHUNK = 256  # output rows per band: bounds the working memory to a few bands of the image


def variance_map_outputs(image: torch.Tensor, size: SizeRecord | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """SDS Variance Map's outputs: the map as a gray IMAGE to preview, and as a MASK; on the padded canvas of
    `size` when given (docs/shared.md §7.4)."""
    if min(image.shape) == 0:
        raise InputError(f"SDS Variance Map: the image is empty (shape {tuple(image.shape)})")
    v = variance_map(image)
    if size is not None:
        v = map_on_padded_canvas(v, size)
    return v[..., None].expand(-1, -1, -1, 3).contiguous(), v


def variance_map(image: torch.Tensor) -> torch.Tensor:
    """B×H×W texture map in [0, 1] from a ComfyUI IMAGE, one image and one band of rows at a time."""
    if not torch.isfinite(image).all():
        raise InputError("SDS Variance Map: the image contains NaN or infinite values")
    out = torch.empty(image.shape[:3], dtype=torch.float32, device=image.device)
    for b in range(image.shape[0]):
        out[b] = texture(image_luma(image[b:b + 1]).double()[0, 0])
    return out


def texture(y: torch.Tensor) -> torch.Tensor:
    """H×W luma (float64) -> normalised Gaussian blur of its 33×33 local variance, as float32.

    Both filters are separable: the box by pairwise sliding sums, the Gaussian by a sum of shifted
    rows; every border is replicate-padded, as F.pad(mode="replicate") before each filter."""
    H, W = y.shape
    r = WINDOW // 2
    y = y - y.mean()  # variance is shift-invariant; centred values keep E[y²] - E[y]² from cancelling
    x = torch.arange(WINDOW, dtype=y.dtype, device=y.device) - r
    gauss = torch.exp(-x * x / (2 * BLUR_SIGMA**2))
    gauss = gauss / gauss.sum()
    vg = torch.empty_like(y)
    for top in range(0, H, ROWS_PER_CHUNK):
        bottom = min(H, top + ROWS_PER_CHUNK)
        first, stop = max(0, top - r), min(H, bottom + r)  # V0 rows the blur reads inside the image
        v0 = _replicate(local_variance(y, first, stop), first - (top - r), (bottom + r) - stop, r)
        vg[top:bottom] = _shifted_sum(_shifted_sum(v0, gauss, 0), gauss, 1)
    low, high = vg.min(), vg.max()
    if high - low <= 1e-12:  # a flat image: no texture anywhere
        return torch.zeros_like(vg, dtype=torch.float32)
    return ((vg - low) / (high - low)).float()


def local_variance(y: torch.Tensor, first: int, stop: int) -> torch.Tensor:
    """Rows first..stop-1 of the 33×33 windowed variance E[y²] - E[y]² (replicate-padded), ≥ 0."""
    H, W = y.shape
    r = WINDOW // 2
    low, high = max(0, first - r), min(H, stop + r)
    band = _replicate(y[low:high], low - (first - r), (stop + r) - high, r)
    mean, mean_sq = _box(_box(band, 0), 1), _box(_box(band * band, 0), 1)
    return (mean_sq - mean * mean).clamp(min=0)


def _replicate(x: torch.Tensor, top: int, bottom: int, sides: int) -> torch.Tensor:
    """x (rows × columns) with its edge rows and columns repeated: F.pad(mode="replicate")."""
    return F.pad(x[None, None], (sides, sides, top, bottom), mode="replicate")[0, 0]


def _box(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean over WINDOW consecutive entries along dim (the output is WINDOW - 1 shorter): sliding sums
    of width 1, 2, 4, ... by pairwise adds (log2 passes, no long running sum to lose precision)."""
    total, width = x, 1
    while 2 * width <= WINDOW:
        n = total.shape[dim] - width
        total, width = total.narrow(dim, 0, n) + total.narrow(dim, width, n), 2 * width
    n = x.shape[dim] - WINDOW + 1
    total = total.narrow(dim, 0, n)
    for k in range(width, WINDOW):  # the entries past the largest power of two (33 = 32 + 1)
        total = total + x.narrow(dim, k, n)
    return total / WINDOW


def _shifted_sum(x: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """Valid 1-D correlation with `kernel` along dim, as a weighted sum of shifted slices (no im2col copy)."""
    n = x.shape[dim] - kernel.numel() + 1
    out = x.narrow(dim, 0, n) * kernel[0]
    for k in range(1, kernel.numel()):
        out.add_(x.narrow(dim, k, n), alpha=float(kernel[k]))
    return out


def to_latent_size(v: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """B×H×W map -> B×1×h×w at latent resolution by area averaging (docs/tss.md §2 step 3)."""
    return F.interpolate(v[:, None], size=(height, width), mode="area")
