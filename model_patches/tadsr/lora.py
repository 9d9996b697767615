"""TADSR's peft LoRA (docs/tadsr.md §5): parsing peft keys, the UNet LoRA as ModelPatcher weight patches,
and the VAE-encoder LoRA merged into the weights at load.

peft stores a LoRA on module M for adapter a as `M.lora_A.a.weight` (down, r x in[, k, k]) and
`M.lora_B.a.weight` (up, out x r[, 1, 1]); the layer computes W + (alpha / r) * B @ A. The file
stores r (`rank_unet`, `rank_vae`) but no alpha, so alpha is peft's default, 8 (scale 2 at r = 4).
"""
import re
from typing import NamedTuple

import torch

from ...clear_errors import CheckpointError

PEFT_DEFAULT_ALPHA = 8.0  # peft LoraConfig.lora_alpha default; the official configs set none
PEFT_DEFAULT_RANK = 8  # peft LoraConfig.r default, used only if the file has no rank
UNET_ADAPTERS = ("default_encoder", "default_decoder", "default_others")
VAE_ADAPTERS = ("default_encoder",)
PEFT_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<half>[AB])\.(?P<adapter>[^.]+)\.weight$")


class LoRALayer(NamedTuple):
    down: torch.Tensor  # lora_A
    up: torch.Tensor  # lora_B
    adapter: str


def peft_layers(sd: dict, adapters, what: str) -> tuple[dict[str, LoRALayer], dict]:
    """{module: LoRALayer} for the peft LoRA keys in sd, and the keys that are not LoRA keys."""
    halves, rest = {}, {}
    for key, value in sd.items():
        m = PEFT_KEY.match(key)
        if m is None:
            rest[key] = value
            continue
        if m["adapter"] not in adapters:
            raise CheckpointError(f"{what} has a LoRA for an unknown adapter {m['adapter']!r} ({key}); "
                                  f"TADSR's adapters are {list(adapters)}")
        halves.setdefault((m["module"], m["adapter"]), {})[m["half"]] = value
    layers = {}
    for (module, adapter), pair in sorted(halves.items()):
        if set(pair) != {"A", "B"}:
            raise CheckpointError(f"{what} has lora_{'A' if 'A' in pair else 'B'} but no lora_{'B' if 'A' in pair else 'A'} "
                                  f"for {module} ({adapter}); the file is incomplete")
        if module in layers:
            raise CheckpointError(f"{what} has two LoRAs on {module} ({layers[module].adapter} and {adapter})")
        layers[module] = LoRALayer(pair["A"], pair["B"], adapter)
    return layers, rest


def lora_scale(rank) -> float:
    return PEFT_DEFAULT_ALPHA / (PEFT_DEFAULT_RANK if rank is None else rank)


def check_rank(layers: dict[str, LoRALayer], rank, what: str):
    r = PEFT_DEFAULT_RANK if rank is None else rank
    bad = [m for m, layer in layers.items() if layer.down.shape[0] != r or layer.up.shape[1] != r]
    if bad:
        layer = layers[bad[0]]
        raise CheckpointError(f"{what}: the file says rank {r} but {bad[0]} has lora_A {tuple(layer.down.shape)} and "
                              f"lora_B {tuple(layer.up.shape)}")


def lora_delta(layer: LoRALayer, scale: float, shape) -> torch.Tensor:
    """scale * B @ A as a weight of `shape` (float32); a conv's A carries the kernel, its B is 1x1."""
    return scale * (layer.up.float().flatten(1) @ layer.down.float().flatten(1)).reshape(shape)


def merge_lora_(weights: dict, layers: dict[str, LoRALayer], scale: float, what: str):
    """weights[M.weight] += scale * B @ A for every layer (in place, in the weight's dtype)."""
    for module, layer in layers.items():
        key = module + ".weight"
        if key not in weights:
            raise CheckpointError(f"{what} has a LoRA for {module}, which the model does not have")
        w = weights[key]
        if layer.down.shape[1] != w.shape[1] or layer.up.shape[0] != w.shape[0]:
            raise CheckpointError(f"{what}: the LoRA on {module} ({tuple(layer.up.shape)} @ {tuple(layer.down.shape)}) "
                                  f"does not fit its weight {tuple(w.shape)}")
        weights[key] = (w.float() + lora_delta(layer, scale, w.shape)).to(w.dtype)


def unet_weight_patches(layers: dict[str, LoRALayer], rank, full_weights: dict, model_keys: dict[str, str],
                        model_sd: dict, family_hint: str) -> tuple[dict, dict]:
    """ModelPatcher patches (full, lora): a `diff` patch (trained - base) per fully trained weight and
    a LoRAAdapter per LoRA layer, with alpha chosen so that ComfyUI's alpha / r is peft's scale.
    Two dicts because conv_in has both. model_keys maps diffusers keys to the MODEL's keys."""
    from comfy.weight_adapter.lora import LoRAAdapter

    full_patches, lora_patches = {}, {}
    for module, layer in layers.items():
        key = model_keys.get(module + ".weight")
        if key is None or key not in model_sd:
            raise CheckpointError(f"the UNet LoRA targets {module}, which this MODEL does not have{family_hint}")
        w = model_sd[key]
        if layer.down.shape[1] != w.shape[1] or layer.up.shape[0] != w.shape[0]:
            raise CheckpointError(f"the UNet LoRA on {module} expects a {layer.up.shape[0]}x{layer.down.shape[1]} weight, "
                                  f"this MODEL's is {tuple(w.shape)}{family_hint}")
        alpha = lora_scale(rank) * layer.down.shape[0]  # ComfyUI scales by alpha / r
        lora_patches[key] = LoRAAdapter(set(), (layer.up, layer.down, alpha, None, None, None))
    for name, trained in full_weights.items():
        key = model_keys.get(name)
        if key is None or key not in model_sd:
            raise CheckpointError(f"the UNet weights include {name}, which this MODEL does not have{family_hint}")
        base = model_sd[key]
        if tuple(trained.shape) != tuple(base.shape):
            raise CheckpointError(f"the trained {name} has shape {tuple(trained.shape)}, this MODEL's is "
                                  f"{tuple(base.shape)}{family_hint}")
        full_patches[key] = ("diff", (trained.float() - base.float(),))
    return full_patches, lora_patches
