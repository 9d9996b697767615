"""The LR image around ResShift's network (docs/resshift.md §6): padding, the x4 bicubic input, the crop back.

The official code reflect-pads each LR side bottom/right to a multiple of 64 LR pixels (the network's
latent must divide by 2^3 levels x window 8), runs everything on the padded image and crops the
output to 4x the original size. torch's reflect padding needs pad < side, so the official code fails
for sides of 32 px or less; here the reflection repeats (the image mirrored back and forth, period
2(n-1)), which equals torch's reflect whenever torch's works. A 1-px side is repeated.
"""
import torch
import torch.nn.functional as F

from ...clear_errors import InputError
from ...image_ops.model_size import pad_bottom_right, round_up

PAD_MULTIPLE = 64  # LR pixels
SCALE = 4


def padded_size(n: int, multiple: int = PAD_MULTIPLE) -> int:
    return round_up(n, multiple)


def pad_lr(image: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """(B, C, H, W) padded bottom/right by reflection to multiples of `multiple`."""
    h, w = image.shape[-2:]
    return pad_bottom_right(image, padded_size(h, multiple), padded_size(w, multiple), "reflect")


def prepare_lr(image: torch.Tensor):
    """ComfyUI IMAGE (B, H, W, 3) in [0, 1] -> (x4 bicubic of the padded LR as an IMAGE, lq in [-1, 1] (B, 3, h, w)).

    The upscaled image is not clipped: bicubic's overshoot is kept, as the official code encodes it.
    (Bicubic is linear, so upscaling in [0, 1] and the VAE's x * 2 - 1 equal the official order.)
    """
    if image.ndim != 4 or image.shape[-1] not in (3, 4):
        raise InputError(f"image must be an RGB image batch (B, H, W, 3), got shape {tuple(image.shape)}")
    if not torch.isfinite(image).all():
        raise InputError("image contains NaN or infinite values")
    lr = pad_lr(image[..., :3].movedim(-1, 1).float())
    up = F.interpolate(lr, scale_factor=SCALE, mode="bicubic")
    return up.movedim(1, -1), lr * 2 - 1


def crop_output(image: torch.Tensor, lr_height: int, lr_width: int) -> torch.Tensor:
    """The top-left 4h x 4w of an output IMAGE (B, H, W, C): the padding's share removed. The image must be the
    decoded result of that LR, 4x its padded size: any other pairing would crop a wrong or shifted picture."""
    expected = (SCALE * padded_size(lr_height), SCALE * padded_size(lr_width))
    if tuple(image.shape[1:3]) != expected:
        raise InputError(f"image is {image.shape[2]}x{image.shape[1]} px, but an lr_image of {lr_width}x{lr_height} "
                         f"px gives a decoded result of {expected[1]}x{expected[0]} px (4x its padded size): connect "
                         "to lr_image the same image that went into 'ResShift Prepare LR', and to image the VAE "
                         "Decode of that run")
    return image[:, :SCALE * lr_height, :SCALE * lr_width]
