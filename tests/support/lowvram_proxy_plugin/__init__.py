"""Test-only ComfyUI plugin (tests/test_low_vram_live.py): ComfyUI's --novram / --lowvram partial loading on a CPU.

ComfyUI 0.3.75 cannot take --novram / --lowvram on a CPU: main.py refuses them with --cpu (one argparse group),
and without --cpu a machine with no GPU fails to start. Even with both, model_management.py sets vram_state to
DISABLED when cpu_state is not GPU, and load_models_gpu loads every model on a CPU device fully
(`is_device_cpu(torch_dev)` -> DISABLED -> lowvram_model_memory = 0). With TIMEAWARE_SR_VRAM_PROXY set to
"novram" or "lowvram" in the server's environment, this plugin makes every load take that flag's budget instead,
through ComfyUI's own `LoadedModel.model_load` -> ModelPatcher's partial loading, so the weights really stay
behind and comfy.ops layers cast them per layer:

- novram: 0.1 bytes for every model, exactly what load_models_gpu gives under NO_VRAM;
- lowvram: half of the model's weights (less what is loaded already), so some layers load whole and the rest
  stream, as LOW_VRAM does on a card that fits about half.

After each load it logs one line, MARK + JSON, saying what the load did to the patcher's module (the test reads
these from the server log): the network's class and the pack's classes inside it, whether ComfyUI marked it
lowvram, how many layers are cast per layer and how many were loaded whole, and the parameters neither cast nor
loaded (left on the offload device and read as they are: on a GPU they stay in CPU memory).

Without TIMEAWARE_SR_VRAM_PROXY it installs nothing: tests/test_model_management.py imports it in-process for
`partial_model_load` and `describe_load`.
"""
import json
import logging
import os

import comfy.model_management as mm
import torch

MARK = "timeaware_sr lowvram proxy:"
MODE = os.environ.get("TIMEAWARE_SR_VRAM_PROXY", "")
MODES = ("novram", "lowvram")
_model_load = mm.LoadedModel.model_load

# Parameters that no load moves or casts (not in a comfy.ops layer: in a module ComfyUI's _load_list skips, or one
# it leaves offloaded), each with why that is safe on a GPU: the code that reads it moves it to the input's device.
UNTOUCHED_AND_HANDLED = {
    "relative_position_bias_table": "resshift/swin.py: comfy.ops.cast_to_input(table, x)",
    "quantize.embedding.weight": "resshift/vq_f4.py: VQModelF4.decode moves the codebook to the latent's device",
    "clip_h.logit_scale": "ComfyUI's own SDClipModel (sd1_clip.py) in the pack's SD 2 text encoder: never read",
}


def proxy_budget(loaded, mode: str) -> float:
    if mode == "novram":
        return 0.1
    budget = loaded.model.model_size() / 2 - loaded.model_loaded_memory()
    return budget if budget > 0 else 0.1  # as load_models_gpu: never 0 (0 means a full load)


def describe_load(patcher) -> dict:
    module = patcher.model
    cast, whole, untouched = 0, 0, []
    for name, m in module.named_modules():
        own = [p for p, _ in m.named_parameters(recurse=False)]
        if getattr(m, "comfy_cast_weights", False) and own:
            cast += 1
        elif getattr(m, "comfy_patched_weights", False):
            whole += 1
        else:
            untouched += [f"{name}.{p}" if name else p for p in own]
    name = type(module).__name__
    if isinstance(getattr(module, "decoder", None), torch.nn.Identity):
        name += " (encoder only)"
    pack = sorted({type(m).__name__ for m in module.modules()
                   if not type(m).__module__.startswith(("comfy", "torch"))})
    return {"model": name, "pack_classes": pack, "lowvram": bool(getattr(module, "model_lowvram", False)),
            "cast_layers": cast, "whole_layers": whole, "untouched": untouched}


def partial_model_load(mode: str):
    """A LoadedModel.model_load that loads with `mode`'s budget where ComfyUI would load a CPU model fully."""
    def model_load(self, lowvram_model_memory=0, force_patch_weights=False):
        if mm.is_device_cpu(self.device) and lowvram_model_memory == 0:
            lowvram_model_memory = proxy_budget(self, mode)
        out = _model_load(self, lowvram_model_memory, force_patch_weights=force_patch_weights)
        logging.info(MARK + " " + json.dumps(describe_load(self.model)))
        return out
    return model_load


if MODE in MODES:
    mm.LoadedModel.model_load = partial_model_load(MODE)
    logging.warning(f"{MARK} installed: every model loads partially (the {MODE} budget)")
elif MODE:
    raise RuntimeError(f"TIMEAWARE_SR_VRAM_PROXY is {MODE!r}; this test plugin takes one of {MODES}")
else:
    logging.warning(f"{MARK} not installed (TIMEAWARE_SR_VRAM_PROXY is not set)")
NODE_CLASS_MAPPINGS = {}
