"""ControlNets inside a tiled model call (docs/shared.md §7: the control hints are cropped per tile).

ComfyUI runs `get_control` on the whole latent before the model call, and a ControlNet caches its
prepared hint (resized, VAE-encoded) for one latent size only: asked for a tile, it would squeeze
the whole hint image into the tile. So, on the tiled clone:

- CALC_COND_BATCH wrapper (`defer_controls`): each cond's control is swapped, for this one call, for
  a stand-in whose get_control only records its arguments (`DeferredControl`).
- The tiled APPLY_MODEL wrapper then runs the real chain once per tile batch (`control_for_tiles`):
  every ControlNet of the chain first prepares its whole-latent hint with ComfyUI's own code (the
  network swapped for a stub for that moment, so nothing runs at full size), then gets the tiles'
  crops of it, scaled by hint size / latent size (8 for stock ControlNets, 1 for latent hints).
  Afterwards each ControlNet holds its whole-latent hint again, as after an untiled call.

Hints that need a VAE are encoded in tiles when large (`tiled_hint_encoder.py`).
"""
from dataclasses import dataclass

import torch

from ...clear_errors import InputError
from .tiled_hint_encoder import TiledHintEncoder


@dataclass
class DeferredControl:
    """The arguments ComfyUI gave get_control for the whole latent; resolved inside the model call."""
    control: object
    x: torch.Tensor
    t: torch.Tensor
    cond: dict
    batched_number: int
    transformer_options: dict

    def whole(self):
        """The untiled result, exactly as ComfyUI would have computed it."""
        return self.control.get_control(self.x, self.t, self.cond, self.batched_number, self.transformer_options)


class _Deferring:
    def __init__(self, control):
        self.control = control

    def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
        return DeferredControl(self.control, x_noisy, t, cond, batched_number, transformer_options)


def defer_controls(conds):
    """Shallow copies of the conds whose controls defer; one stand-in per control, so ComfyUI batches
    conds that share a ControlNet exactly as before."""
    standins = {}

    def defer(cond):
        control = cond.get("control")
        if control is None:
            return cond
        return {**cond, "control": standins.setdefault(id(control), _Deferring(control))}

    return [None if c is None else [defer(cond) for cond in c] for c in conds]


def controlnet_chain(control) -> list:
    """Every ControlNet in a chain, refusing kinds whose hint this tiling cannot crop."""
    import comfy.controlnet

    chain = []
    while control is not None:
        if not isinstance(control, comfy.controlnet.ControlNet) or \
                type(control).get_control is not comfy.controlnet.ControlNet.get_control:
            raise InputError(f"Tiled Diffusion crops the hints of ControlNets; a {type(control).__name__} in the "
                             f"conditioning computes its control its own way and cannot be tiled (remove it, or "
                             f"use the model without Tiled Diffusion)")
        chain.append(control)
        control = control.previous_controlnet
    return chain


class _HintOnly:
    """Stands in for a ControlNet's network while ComfyUI prepares its hint."""

    def __init__(self, dtype):
        self.dtype = dtype

    def __call__(self, **kwargs):
        return {}


def prepare_whole_hint(cn, deferred: DeferredControl) -> torch.Tensor:
    """The ControlNet's hint for the whole latent, prepared (and cached on it) by ComfyUI's own code."""
    import comfy.controlnet

    saved = cn.control_model, cn.previous_controlnet, cn.timestep_range, cn.vae
    cn.control_model = _HintOnly(cn.control_model.dtype)
    cn.previous_controlnet, cn.timestep_range = None, None
    cn.vae = None if cn.vae is None else TiledHintEncoder(cn.vae)
    try:
        comfy.controlnet.ControlNet.get_control(cn, deferred.x, deferred.t, deferred.cond, deferred.batched_number,
                                                deferred.transformer_options)
    finally:
        cn.control_model, cn.previous_controlnet, cn.timestep_range, cn.vae = saved
    return cn.cond_hint  # may have batch 1, left to broadcast: the tile layout repeats it


def hint_ratio(hint: torch.Tensor, latent_size) -> int:
    ratio = hint.shape[-1] // latent_size[-1]
    if tuple(hint.shape[-2:]) != (latent_size[0] * ratio, latent_size[1] * ratio):
        raise InputError(f"Tiled Diffusion (TimeAwareSR): a ControlNet hint of size {tuple(hint.shape[-2:])} is not a "
                         f"whole multiple of the latent size {tuple(latent_size)}, so it cannot be cropped per tile")
    return ratio


class TiledControls:
    """The control chain of one model call, run per tile batch with cropped hints."""

    def __init__(self, deferred: DeferredControl):
        self.deferred = deferred
        self.chain = controlnet_chain(deferred.control)
        self.whole_hints = [prepare_whole_hint(cn, deferred) for cn in self.chain]

    def for_tiles(self, x, t, cond, transformer_options, crop_batch):
        """get_control on a tile batch; crop_batch(tensor, ratio) lays out a whole-latent tensor like x."""
        latent_size = self.deferred.x.shape[-2:]
        for cn, hint in zip(self.chain, self.whole_hints):
            cn.cond_hint = crop_batch(hint, hint_ratio(hint, latent_size))
        try:
            return self.deferred.control.get_control(x, t, cond, self.deferred.batched_number, transformer_options)
        finally:
            self.restore()

    def restore(self):
        for cn, hint in zip(self.chain, self.whole_hints):
            cn.cond_hint = hint
