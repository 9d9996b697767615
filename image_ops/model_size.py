"""Fit an image to the size a model samples at, and give the exact size back afterwards (docs/shared.md §7.4).

Official pipelines do two things before sampling and undo both after decoding:
1. raise the short side to a minimum when it is below it (TASR: 512 px on the x4 image; TADSR: 512 on the
   x4 image, from 128 px on the LR), with torch's antialiased bicubic (a = -0.5, TASR's call) and the long
   side scaled by the same ratio, truncated to whole pixels (TASR's `resize_short_edge_to`);
2. pad bottom/right to a multiple of the model's size unit (64 for the SD-based code and ResShift), with
   zeros (DiffBIR/DoSSR, TASR) or by reflection (ResShift).
After decoding: keep the top-left unpadded part, then resize back to the input's size. The `SizeRecord`
says what was done, so the second step needs nothing but the record and the decoded image.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..clear_errors import InputError

PAD_MODES = ("zeros", "reflect")
MAX_SIDE = 16384  # ComfyUI's MAX_RESOLUTION: no stock node makes or takes a longer side


@dataclass(frozen=True)
class SizeRecord:
    """Sizes (height, width) in pixels: the image given, after raising its short side, after padding."""
    original: tuple[int, int]
    raised: tuple[int, int]
    padded: tuple[int, int]


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def raised_size(height: int, width: int, min_short_side: int) -> tuple[int, int]:
    """The size with the short side at `min_short_side` when it is below it, else the size unchanged;
    the long side keeps the aspect ratio, truncated (TASR's rule; a square stays square)."""
    if min(height, width) >= min_short_side:
        return height, width
    if height == width:
        return min_short_side, min_short_side
    if height < width:
        return min_short_side, int(width * (min_short_side / height))
    return int(height * (min_short_side / width)), min_short_side


def plan(height: int, width: int, multiple: int, min_short_side: int) -> SizeRecord:
    """The record, or a clear refusal when the result would pass MAX_SIDE (a thin strip raised to a 512 px short
    side grows its long side by the same ratio: 2048x4 would become 262144x512 and exhaust the machine)."""
    raised = raised_size(height, width, min_short_side)
    padded = (round_up(raised[0], multiple), round_up(raised[1], multiple))
    if max(padded) > MAX_SIDE:
        why = (f" Its sides are {max(height, width) / min(height, width):.0f}:1 apart; raised to a {min_short_side} px "
               f"short side they must be within {MAX_SIDE // min_short_side}:1." if raised != (height, width) else "")
        raise InputError(
            f"Fit to Model Size: the {width}x{height} px image would become {padded[1]}x{padded[0]} px (short side "
            f"raised to {min_short_side}, padded to a multiple of {multiple}), above the {MAX_SIDE} px per side ComfyUI "
            f"allows.{why} Crop the image (or split it into pieces) first")
    return SizeRecord((height, width), raised, padded)


def reflect_indices(n: int, total: int) -> torch.Tensor:
    """Source index for each of `total` positions: 0..n-1, then mirrored back and forth without repeating
    the edge (period 2(n - 1)). Equals torch's reflect padding wherever that accepts the pad (pad < n),
    and keeps mirroring where it does not; a 1-px side is repeated."""
    if n == 1:
        return torch.zeros(total, dtype=torch.long)
    period = 2 * (n - 1)
    i = torch.arange(total) % period
    return torch.where(i < n, i, period - i)


def pad_bottom_right(x: torch.Tensor, height: int, width: int, mode: str) -> torch.Tensor:
    """(..., H, W) padded at the bottom and right to (height, width)."""
    h, w = x.shape[-2:]
    if mode == "zeros":
        return F.pad(x, (0, width - w, 0, height - h))
    rows = reflect_indices(h, height).to(x.device)
    cols = reflect_indices(w, width).to(x.device)
    return x[..., rows, :][..., cols]


def resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, C, H, W) by torch's antialiased bicubic (TASR's resize both ways); unchanged at the same size."""
    if tuple(x.shape[-2:]) == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bicubic", antialias=True)


def fit_to_model(image: torch.Tensor, multiple: int, min_short_side: int, mode: str):
    """IMAGE (B, H, W, C) -> (the raised and padded IMAGE, its SizeRecord). Every channel (alpha too) is
    treated alike; the resize is clipped to [0, 1] like any stored image."""
    if mode not in PAD_MODES:
        raise InputError(f"mode must be one of {', '.join(PAD_MODES)}, got {mode!r}")
    record = plan(image.shape[1], image.shape[2], multiple, min_short_side)
    x = image.movedim(-1, 1)
    if record.raised != record.original:
        x = resize(x, *record.raised).clamp(0, 1)
    x = pad_bottom_right(x, *record.padded, mode)
    return x.movedim(1, -1), record


def scale_of(image: torch.Tensor, record: SizeRecord) -> int:
    """How many times the padded size the image is (1 after a VAE round trip, 4 after an x4 model):
    a whole number, the same on both axes, else the image is not the one the record was made for."""
    height, width = image.shape[1:3]
    ph, pw = record.padded
    if height % ph or width % pw or height // ph != width // pw:
        raise InputError(
            f"image is {width}x{height} px, but the size record is of a {pw}x{ph} px padded image: connect the "
            f"image decoded from that padded image (the same size, or a whole multiple of it on both sides)")
    return height // ph


def restore_size(image: torch.Tensor, record: SizeRecord) -> torch.Tensor:
    """The decoded IMAGE (B, s·H', s·W', C) -> (B, s·h, s·w, C): the padding cropped away, then resized back
    from the raised size to s times the size the record was made from."""
    s = scale_of(image, record)
    (rh, rw), (h, w) = record.raised, record.original
    x = image[:, :s * rh, :s * rw].movedim(-1, 1)
    if (rh, rw) != (h, w):
        x = resize(x, s * h, s * w).clamp(0, 1)
    return x.movedim(1, -1).contiguous()


def map_on_padded_canvas(values: torch.Tensor, record: SizeRecord) -> torch.Tensor:
    """A per-pixel map (B, H, W) of the picture at any resolution (e.g. the SDS map of the LR) laid onto the
    padded canvas: stretched to the raised size, zeros in the padding. Resized to the latent afterwards, it
    then lines up with the padded latent, where stretching it over the whole canvas would not."""
    x = values[:, None].float()
    if tuple(x.shape[-2:]) != record.raised:
        x = F.interpolate(x, size=record.raised, mode="bilinear", antialias=True).clamp(0, 1)
    return F.pad(x, (0, record.padded[1] - record.raised[1], 0, record.padded[0] - record.raised[0]))[:, 0]
