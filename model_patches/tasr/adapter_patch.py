"""TASR's gated ControlNet residuals on a ComfyUI MODEL (docs/tasr.md §4), through ComfyUI's hooks only.

Plain ControlNet adds each residual c to the UNet (the middle block's output h, or an output
block's skip s). TASR adds alpha c instead, with alpha = 2 sigmoid(A_k(..., emb)) per pixel:

    middle:          alpha = 2 sigmoid(A0(cat[h + c, h, c], emb));            h = h + alpha c
    output block i:  alpha = 2 sigmoid(A_{i+1}(cat[cat(h, s + c), cat(h, s), c], emb));  s = s + alpha c

ComfyUI's UNet adds the residuals itself before `output_block_patch` sees the skip, so the
adapters need c apart from s. On a clone of the MODEL:

- DIFFUSION_MODEL wrapper: for each UNet call, takes the ControlNet residuals out of the `control`
  dict (the UNet gets None in their places, so it adds nothing) and keeps them for this call only
  (a context variable, so concurrent or nested calls never see each other's).
- emb_patch: records the time embedding the UNet's ResBlocks use (returned unchanged).
- output_block_patch (first in the list, so later patches see the gated features as they would
  see plain ControlNet's): at output block 0 it first gates the middle residual into h, then at
  every output block it gates that block's residual into the skip.

With the TSS per-pixel timestep patch active (model_patches/tss/spatial_timestep.py) the ResBlocks
use a per-pixel embedding map; the adapters then take the same map at their resolution, so alpha
is still B x 1 x H x W and varies with each pixel's timestep.
"""
import contextvars

import torch

from ...clear_errors import InputError
from ..tss import spatial_timestep
from .adapters import ADAPTER_COUNT, adapter_channels

WRAPPER_KEY = "timeaware_sr_tasr_adapters"
_call = contextvars.ContextVar("timeaware_sr_tasr_call", default=None)


class _Call:
    """What one UNet call's adapters need: the residuals it took from the UNet, and emb."""

    def __init__(self, middle, output):
        self.middle, self.output, self.emb = middle, output, None


class TASRGate:
    """The hooks of one patched MODEL. Holds the adapters' ModelPatcher (also registered as an
    additional model, so ComfyUI loads it with the UNet); deep copies (ModelPatcher.clone deep-copies
    model_options) return the same object, so no weights are copied."""

    def __init__(self, adapters_patcher):
        self.adapters_patcher = adapters_patcher

    def __deepcopy__(self, memo):
        return self

    @property
    def adapters(self):
        return self.adapters_patcher.model

    def diffusion_model_wrapper(self, executor, x, timesteps, context, y, control, transformer_options, **kwargs):
        if control is None or not any(c is not None for c in control.get("output", [])):
            return executor(x, timesteps, context, y, control, transformer_options, **kwargs)  # no ControlNet: nothing to gate
        middle, output = list(control.get("middle", [])), list(control["output"])
        if len(middle) != 1 or len(output) != ADAPTER_COUNT - 1:
            raise InputError(f"TASR adapters gate 1 middle and {ADAPTER_COUNT - 1} output ControlNet residuals; this "
                             f"ControlNet gives {len(middle)} middle and {len(output)} output residuals")
        held = dict(control, middle=[None] * len(middle), output=[None] * len(output))
        token = _call.set(_Call(middle, output))
        try:
            return executor(x, timesteps, context, y, held, transformer_options, **kwargs)
        finally:
            _call.reset(token)

    def emb_patch(self, emb, model_channels, transformer_options):
        call = _call.get()
        if call is not None:
            call.emb = emb
        return emb

    def output_block_patch(self, h, hsp, transformer_options):
        call = _call.get()
        if call is None:
            return h, hsp
        block = transformer_options["block"][1]
        if block == 0:
            c = call.middle.pop()
            if c is not None:
                c = c.to(h.dtype)
                alpha = self.adapters.alpha(0, [h + c, h, c], self.emb_at(call, h))
                h = h + alpha * c
        c = call.output.pop()  # the UNet pops its residuals from the end, output block 0 first
        if c is not None:
            c = c.to(hsp.dtype)
            alpha = self.adapters.alpha(block + 1, [h, hsp + c, h, hsp, c], self.emb_at(call, h))
            hsp = hsp + alpha * c
        return h, hsp

    @staticmethod
    def emb_at(call, h):
        """The time embedding the ResBlocks at h's resolution use: B x E, or TSS's per-pixel map."""
        per_pixel = spatial_timestep.active_embedding_at(h.shape[-2:])
        return call.emb if per_pixel is None else per_pixel


def apply_tasr_adapters(model, adapters_patcher):
    """MODEL -> a clone whose ControlNet residuals are gated by the TASR adapters."""
    import comfy.patcher_extension
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = model.get_model_object("diffusion_model")
    if not isinstance(unet, UNetModel) or len(unet.output_blocks) != ADAPTER_COUNT - 1:
        family = type(getattr(getattr(model, "model", None), "model_config", None)).__name__
        raise InputError(f"model: TASR adapters gate an SD 2.1 UNet's ControlNet residuals; this MODEL is {family} "
                         f"(network {type(unet).__name__})")
    adapters = adapters_patcher.model
    expected = adapter_channels(unet.model_channels, unet.channel_mult, unet.num_res_blocks)
    emb_width = unet.time_embed[-1].weight.shape[0]
    if adapters.channels != expected or adapters.emb_channels != emb_width:
        raise InputError(
            f"tasr_adapters were made for a different UNet: their input channels are {adapters.channels} with a "
            f"{adapters.emb_channels}-wide time embedding, this model needs {expected} and {emb_width} "
            f"(TASR's released adapters fit SD 2.1-base)")
    m = model.clone()
    if WRAPPER_KEY in m.wrappers.get(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, {}):
        raise InputError("model: TASR adapters are already applied to this model; apply them once")
    gate = TASRGate(adapters_patcher)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY, gate.diffusion_model_wrapper)
    m.set_model_emb_patch(gate.emb_patch)
    m.set_model_output_block_patch(gate.output_block_patch)
    patches = m.model_options["transformer_options"]["patches"]["output_block_patch"]
    patches.insert(0, patches.pop())  # gate first: later patches (FreeU...) see what plain ControlNet gives them
    m.set_additional_models(WRAPPER_KEY, [adapters_patcher])
    return m
