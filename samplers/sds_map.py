"""TSS Spatial Dynamic Sampling (SPEC §2): where the image has texture, as a map in [0, 1].

V0 = local variance of the luma in a 33x33 window; Vg = min-max normalised 33x33 Gaussian blur of
V0, per image (a flat image gives zeros). The blur's sigma follows OpenCV's rule for a 33 kernel
(0.3 ((33 - 1) / 2 - 1) + 0.8 = 5.3), the usual choice when only the kernel size is given.
"""
import torch
import torch.nn.functional as F

from .luma import luma

WINDOW = 33
BLUR_SIGMA = 0.3 * ((WINDOW - 1) / 2 - 1) + 0.8


def image_luma(image: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE (B×H×W×C, C = 1..4) -> B×1×H×W; alpha is ignored."""
    if image.shape[-1] in (2, 4):
        image = image[..., :-1]
    if image.shape[-1] == 1:
        return image.movedim(-1, 1).float()
    return luma(image[..., :3].float()).movedim(-1, 1)


def _separable(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    r = kernel.numel() // 2
    x = F.pad(x, (r, r, r, r), mode="replicate")  # any image size, unlike reflect
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    return F.conv2d(x, kernel.view(1, 1, -1, 1))


def variance_map(image: torch.Tensor) -> torch.Tensor:
    """B×H×W texture map in [0, 1] from a ComfyUI IMAGE."""
    if not torch.isfinite(image).all():
        raise ValueError("SDS Variance Map: the image contains NaN or infinite values")
    y = image_luma(image).double()
    box = torch.full((WINDOW,), 1.0 / WINDOW, dtype=y.dtype, device=y.device)
    mean, mean_sq = _separable(y, box), _separable(y * y, box)
    v0 = (mean_sq - mean * mean).clamp(min=0)
    x = torch.arange(WINDOW, dtype=y.dtype, device=y.device) - WINDOW // 2
    gauss = torch.exp(-x * x / (2 * BLUR_SIGMA**2))
    vg = _separable(v0, gauss / gauss.sum()).flatten(1)
    low, high = vg.min(dim=1, keepdim=True).values, vg.max(dim=1, keepdim=True).values
    spread = high - low
    normalised = torch.where(spread > 1e-12, (vg - low) / spread.clamp(min=1e-12), torch.zeros_like(vg))
    return normalised.view(image.shape[0], *image.shape[1:3]).float()


def to_latent_size(v: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """B×H×W map -> B×1×h×w at latent resolution by area averaging (SPEC §2 step 3)."""
    return F.interpolate(v[:, None], size=(height, width), mode="area")
