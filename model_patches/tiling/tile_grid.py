"""Where the tiles go and how their x0 estimates are blended (docs/shared.md §7). Pure tensor math.

Tiles along one side all have the same length and are spread evenly from edge to edge, so
neighbours overlap by at least `overlap` and every tile of a grid can share one batch. The blend is
the Gaussian window of Mixture-of-Diffusers / StableSR / TASR's tiled sampler: variance 0.01 in
units of the tile side (sigma = 0.1 x side), so a tile's centre dominates and its zero-padded
borders, where the network sees least context, count least; or MultiDiffusion's plain average.
"""
import math

import torch

from ...clear_errors import InputError

BLENDS = ("gaussian", "uniform")
GAUSSIAN_VARIANCE = 0.01  # of the tile side, squared: Mixture of Diffusers' and TASR's constant


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of equal tiles covering [0, length), neighbours overlapping by >= overlap."""
    if tile >= length:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [i * (length - tile) // (count - 1) for i in range(count)]


def tile_boxes(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(top, left, tile height, tile width) of every tile, row by row; a side shorter than the tile is one tile."""
    th, tw = min(tile, height), min(tile, width)
    return [(y, x, th, tw) for y in tile_starts(height, tile, overlap) for x in tile_starts(width, tile, overlap)]


def blend_window(height: int, width: int, blend: str, device=None) -> torch.Tensor:
    """The tile's weight per pixel, height x width, float32, made on `device` (the model's: it is used in
    every step, so it is not copied there each time)."""
    if blend == "uniform":
        return torch.ones(height, width, device=device)
    if blend != "gaussian":
        raise InputError(f"blend must be one of {list(BLENDS)}, got {blend!r}")
    return _gaussian_1d(height, device)[:, None] * _gaussian_1d(width, device)[None, :]


def _gaussian_1d(length: int, device=None) -> torch.Tensor:
    offset = (torch.arange(length, dtype=torch.float32, device=device) - (length - 1) / 2) / length
    return torch.exp(-offset * offset / (2 * GAUSSIAN_VARIANCE))


def overlap_share(height: int, width: int, tile: int, overlap: int) -> float:
    """Extra pixels the tiles compute, as a share of the image: sum(tile areas) / (H W) - 1."""
    boxes = tile_boxes(height, width, tile, overlap)
    return sum(h * w for _, _, h, w in boxes) / (height * width) - 1
