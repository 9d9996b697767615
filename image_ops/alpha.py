"""The input's transparency put back on a result (docs/shared.md §7.5). SD VAEs and the upscale models work on
RGB, so a graph carries the input's alpha around them as a ComfyUI MASK (LoadImage's: 1 where transparent) and
lays it onto the result, stretched to the result's size."""
import torch
import torch.nn.functional as F

from ..clear_errors import InputError


def put_back_alpha(image: torch.Tensor, mask: torch.Tensor | None, node: str) -> torch.Tensor:
    """IMAGE (B, H, W, C) with alpha = 1 - mask resized (bicubic, clamped) to H x W as its last channel,
    replacing any alpha it has. A missing or all-zero mask (an opaque picture; LoadImage gives a 64x64 zero
    mask for a picture without alpha) leaves the image as it is, so opaque pictures stay RGB."""
    if mask is None or not torch.count_nonzero(mask):
        return image
    mask = mask[None] if mask.dim() == 2 else mask
    (b, height, width), (mb, mh, mw) = image.shape[:3], mask.shape
    if mb not in (1, b):
        raise InputError(f"{node}: the mask holds {mb} masks for a batch of {b} images: connect the MASK of the "
                         f"node that loaded these images (one mask, or one per image)")
    if abs(width * mh - height * mw) > max(mh, mw):  # one scale on both axes, up to rounding of a side
        raise InputError(f"{node}: the mask is {mw}x{mh} px, not the shape of the {width}x{height} px result: connect "
                         f"the MASK of the node that loaded the input image (its transparency)")
    alpha = 1 - mask[:, None].float()
    if (mh, mw) != (height, width):
        alpha = F.interpolate(alpha, size=(height, width), mode="bicubic", antialias=True).clamp(0, 1)
    alpha = alpha.movedim(1, -1).to(image).expand(b, -1, -1, -1)
    colour = image[..., :3] if image.shape[-1] >= 3 else image[..., :1]
    return torch.cat([colour, alpha], dim=-1)
