"""Tiled Diffusion (docs/shared.md §7): every model call runs on overlapping latent tiles whose x0 estimates
are blended, while the sampler keeps the whole latent (one shared noise field; every sampler works
unchanged).

On a clone, with two wrappers:
- APPLY_MODEL (`_tiled_apply_model`, kept outermost among APPLY_MODEL wrappers so other patches,
  e.g. TSS per-pixel timesteps, see one tile batch as an ordinary model call): splits x into tiles,
  runs the rest of the model call on `tile_batch` tiles at a time and blends the results with
  `tile_grid.blend_window`. Everything spatial in the call gets the tiles' crops: every tensor
  argument with the latent's number of dims whose trailing two dims equal the latent's (concat
  latents such as the starter model's LR, inpainting masks, ...), the same tensors at the top level
  of transformer_options (the TSS sigma map), and ControlNet hints (`tiled_control.py`).
- CALC_COND_BATCH (`_defer_controls`): ControlNets run inside the model call, per tile.

Tiles of a batch are laid out chunk-major, like ComfyUI's cond/uncond batching: for each chunk of
`cond_or_uncond`, all tiles of that chunk's images, so per-chunk patches still find their chunk.
A latent that fits in one tile is passed through untouched (bitwise the untiled call).
"""
import functools
from dataclasses import dataclass

import torch

from ...clear_errors import InputError
from ..interrupt import check_interrupt
from .tile_grid import blend_window, tile_boxes
from .tiled_control import DeferredControl, TiledControls, defer_controls

NODE_NAME = "Tiled Diffusion (TimeAwareSR)"  # the node's display name (nodes/tiling.py), in every message
WRAPPER_KEY = "timeaware_sr_tiled_diffusion"
TILES_KEY = "tiled_diffusion_tiles"  # transformer_options during a tile batch: {"boxes": [...], "latent_size": (H, W)}


@dataclass(frozen=True)
class TileSettings:
    tile_size: int  # latent pixels
    overlap: int  # latent pixels
    blend: str
    tile_batch: int  # tiles per model call


def check_overlap(tile_size, overlap) -> bool | str:
    """True, or why the overlap does not fit the tile (None: not known yet): tiles must advance. Each
    value's own range is the node's schema (nodes/tiling.py)."""
    if tile_size is not None and overlap is not None and overlap >= tile_size:
        return (f"overlap must be smaller than tile_size, got overlap {overlap} with tile_size {tile_size}: "
                f"set overlap to {tile_size - 1} or less, or tile_size to {overlap + 1} or more")
    return True


def check_tile_sides(boxes, latent_size, settings: TileSettings, network) -> None:
    """Refuse tiles the model's network cannot take, naming the node and tile_size: a network with a
    `side_multiple` (ResShift's Swin UNet: 2^levels x window) takes only sides that are multiples of it.
    Only a side that tiling cut to tile_size is blamed on it; a latent side the network cannot take
    untiled is the network's own error to give."""
    multiple = getattr(network, "side_multiple", None)
    if not isinstance(multiple, int) or multiple <= 1:
        return
    tile = settings.tile_size
    cut = [side for side, whole in zip(boxes[0][2:], latent_size) if side == tile < whole]
    if not any(side % multiple for side in cut):
        return
    lower = tile // multiple * multiple
    examples = " or ".join(str(n) for n in (lower, lower + multiple) if n > 0)
    what = getattr(network, "network_name", "this model's network")
    raise InputError(f"{NODE_NAME}: tile_size {tile} cuts the {latent_size[0]}x{latent_size[1]} latent into tiles of "
                     f"{boxes[0][2]}x{boxes[0][3]}, but {what} takes only sides that are multiples of {multiple} "
                     f"latent pixels: set tile_size to a multiple of {multiple} (e.g. {examples})")


def patch_tiled_diffusion(model, tile_size: int = 64, overlap: int = 16, blend: str = "gaussian", tile_batch: int = 4):
    """MODEL -> a clone whose model calls run in tiles; a model already tiled gets the new settings.
    The settings are the Tiled Diffusion node's, checked there (schema ranges and check_overlap)."""
    import comfy.patcher_extension

    apply_model = comfy.patcher_extension.WrappersMP.APPLY_MODEL
    m = model.clone()
    m.remove_wrappers_with_key(apply_model, WRAPPER_KEY)
    m.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, WRAPPER_KEY)
    settings = TileSettings(tile_size, overlap, blend, tile_batch)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, WRAPPER_KEY, _defer_controls)
    m.add_wrapper_with_key(apply_model, WRAPPER_KEY, functools.partial(_tiled_apply_model, settings))
    # The first key is the outermost wrapper: tiling must see the whole latent before any other patch.
    others = {k: v for k, v in m.wrappers[apply_model].items() if k != WRAPPER_KEY}
    m.wrappers[apply_model] = {WRAPPER_KEY: m.wrappers[apply_model][WRAPPER_KEY], **others}
    return m


def _defer_controls(executor, model, conds, x_in, timestep, model_options, **kwargs):
    return executor(model, defer_controls(conds), x_in, timestep, model_options, **kwargs)


class TileBatch:
    """Lays whole-batch tensors out as one batch of tiles (chunk-major) and blends the results back."""

    def __init__(self, boxes, x: torch.Tensor, chunks: int):
        self.boxes, self.batch, self.chunks = boxes, x.shape[0], chunks
        self.ndim, self.latent_size = x.ndim, tuple(x.shape[-2:])

    def is_spatial(self, v) -> bool:
        return isinstance(v, torch.Tensor) and v.ndim == self.ndim and tuple(v.shape[-2:]) == self.latent_size

    def lay_out(self, v: torch.Tensor, crop: bool, ratio: int = 1, name: str = "tensor") -> torch.Tensor:
        if v.shape[0] != self.batch:
            if self.batch % v.shape[0]:
                raise InputError(f"{NODE_NAME}: {name} has batch {v.shape[0]}, which does not divide the model "
                                 f"batch {self.batch}")
            v = v.repeat(self.batch // v.shape[0], *([1] * (v.ndim - 1)))  # ComfyUI's convention: repeat per chunk
        per_chunk = self.batch // self.chunks
        parts = []
        for j in range(self.chunks):
            rows = v[j * per_chunk:(j + 1) * per_chunk]
            for y, x, h, w in self.boxes:
                parts.append(rows[..., y * ratio:(y + h) * ratio, x * ratio:(x + w) * ratio] if crop else rows)
        return torch.cat(parts)

    def tile_value(self, name, v):
        """Spatial tensors cropped, other batch-first tensors repeated per tile, anything else as it is."""
        if self.is_spatial(v):
            return self.lay_out(v, crop=True, name=name)
        if isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == self.batch:
            return self.lay_out(v, crop=False, name=name)
        return v

    def transformer_options(self, options: dict) -> dict:
        tiled = {k: self.lay_out(v, crop=True, name=k) if self.is_spatial(v) else v for k, v in options.items()}
        tiled[TILES_KEY] = {"boxes": list(self.boxes), "latent_size": self.latent_size}
        return tiled

    def accumulate(self, out, norm, denoised, window):
        per_chunk, n = self.batch // self.chunks, len(self.boxes)
        for j in range(self.chunks):
            for i, (y, x, h, w) in enumerate(self.boxes):
                rows = denoised[(j * n + i) * per_chunk:(j * n + i + 1) * per_chunk]
                out[j * per_chunk:(j + 1) * per_chunk, :, y:y + h, x:x + w] += rows * window
        for y, x, h, w in self.boxes:
            norm[..., y:y + h, x:x + w] += window


def _tiled_apply_model(settings: TileSettings, executor, x, t, c_concat=None, c_crossattn=None, control=None,
                       transformer_options={}, **kwargs):
    height, width = x.shape[-2:]
    boxes = tile_boxes(height, width, settings.tile_size, settings.overlap)
    if len(boxes) == 1:
        if isinstance(control, DeferredControl):
            control = control.whole()
        return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
    check_tile_sides(boxes, (height, width), settings, getattr(executor.class_obj, "diffusion_model", None))
    if control is not None and not isinstance(control, DeferredControl):
        raise InputError(f"{NODE_NAME}: this model call brought ControlNet outputs computed for the whole latent; "
                         "they cannot be split into tiles (was the model called outside ComfyUI's sampler?)")
    chunks = len(transformer_options.get("cond_or_uncond", [])) or 1
    chunks = chunks if x.shape[0] % chunks == 0 else 1
    controls = TiledControls(control) if control is not None else None
    # A pixel sums at most a few tiles' weighted outputs: float32 keeps them to ~1e-7 and works on every
    # device (MPS has no float64); a half-precision network's outputs are summed in float32 too.
    accumulate = torch.promote_types(x.dtype, torch.float32)
    window = blend_window(boxes[0][2], boxes[0][3], settings.blend, x.device).to(accumulate)
    out, norm = None, torch.zeros(1, 1, height, width, device=x.device, dtype=accumulate)
    try:
        for start in range(0, len(boxes), settings.tile_batch):
            check_interrupt()  # per tile batch: one step of a large image is many network calls
            tiles = TileBatch(boxes[start:start + settings.tile_batch], x, chunks)
            x_t, t_t = tiles.lay_out(x, crop=True), tiles.lay_out(t, crop=False)
            options_t = tiles.transformer_options(transformer_options)
            kwargs_t = {k: tiles.tile_value(k, v) for k, v in kwargs.items()}
            control_t = None
            if controls is not None:
                cond_t = {k: tiles.tile_value(k, v) for k, v in controls.deferred.cond.items()
                          if k not in ("transformer_options", "control")}
                cond_t["transformer_options"] = options_t
                control_t = controls.for_tiles(x_t, t_t, cond_t, options_t,
                                               lambda hint, ratio: tiles.lay_out(hint, crop=True, ratio=ratio))
            denoised = executor(x_t, t_t, tiles.tile_value("c_concat", c_concat),
                                tiles.tile_value("c_crossattn", c_crossattn), control_t, options_t, **kwargs_t)
            if out is None:
                out = torch.zeros(x.shape[0], denoised.shape[1], height, width, device=x.device, dtype=accumulate)
            tiles.accumulate(out, norm, denoised.to(accumulate), window)
            del denoised, control_t
    finally:
        if controls is not None:
            controls.restore()
    return (out / norm).to(x.dtype)
