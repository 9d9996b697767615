"""TADSR's `tadsr.pkl` (docs/tadsr.md §5), and both released files -> a patched SD 2.1-base MODEL and a
time-aware VAE (load_tadsr).

`tadsr.pkl` (torch.save dict): state_dict_unet (peft LoRA keys of the default_encoder / _decoder /
_others adapters + the fully trained conv_in as `conv_in.base_layer.*`), state_dict_vae (encoder
LoRA), state_dict_vae_time (time path), the module-name lists and rank_unet / rank_vae. The
`time_vae/` folder is time_vae_folder.py's; the UNet's weight patches are one_step_model.py's.
"""
import os
from typing import NamedTuple

import torch

from ...clear_errors import CheckpointError
from ..checkpoint_io import about_file, describe, named_tensors, read_checkpoint, sizes_from_weights, what_it_is
from .lora import UNET_ADAPTERS, VAE_ADAPTERS, check_rank, peft_layers
from .one_step_model import tadsr_model
from .time_vae_folder import build_time_aware_vae

PKL_PARTS = ("state_dict_unet", "state_dict_vae", "state_dict_vae_time")
MODULE_LISTS = {"default_encoder": "unet_lora_encoder_modules", "default_decoder": "unet_lora_decoder_modules",
                "default_others": "unet_lora_others_modules"}
FULL_UNET_WEIGHTS = ("conv_in.base_layer.weight", "conv_in.base_layer.bias")  # trained fully, not LoRA
HOLDS = (f"TADSR's tadsr.pkl: a dictionary holding {', '.join(PKL_PARTS)} (each a dictionary of named tensors), "
         f"the LoRA module lists, rank_unet and rank_vae")
PART_HOLDS = {"state_dict_unet": "the UNet LoRA (peft lora_A / lora_B tensors) and conv_in's trained tensors",
              "state_dict_vae": "the VAE encoder LoRA (peft lora_A / lora_B tensors)",
              "state_dict_vae_time": "the time-aware VAE encoder's time layers (tensors)"}


class TADSRCheckpoint(NamedTuple):
    unet_lora: dict  # module -> LoRALayer (diffusers UNet names)
    unet_full: dict  # diffusers weight key -> trained tensor (conv_in)
    rank_unet: int | None
    vae_lora: dict  # module -> LoRALayer (diffusers VAE names)
    vae_time: dict  # diffusers key -> tensor
    rank_vae: int | None


def read_tadsr_checkpoint(path: str) -> TADSRCheckpoint:
    with about_file(path):
        return parse_tadsr_checkpoint(read_checkpoint(path, HOLDS), os.path.basename(path))


def parse_tadsr_checkpoint(sd: dict, name: str = "tadsr.pkl") -> TADSRCheckpoint:
    """The parts of a tadsr.pkl dict, every key accounted for, or a clear error."""
    missing = [p for p in PKL_PARTS if sd.get(p) is None]
    if len(missing) == len(PKL_PARTS):
        raise CheckpointError(f"{name} is not a TADSR checkpoint: {describe(sd)}. It should hold {HOLDS}")
    if missing:
        raise CheckpointError(f"{name} is missing {', '.join(missing)}; it may be truncated or a partial export")
    parts = {p: named_tensors(sd[p], f"{name}: its {p}", PART_HOLDS[p]) for p in PKL_PARTS}
    for list_name in (*MODULE_LISTS.values(), "vae_lora_encoder_modules"):
        listed = sd.get(list_name)
        if listed is None or (isinstance(listed, (list, tuple)) and all(isinstance(m, str) for m in listed)):
            continue
        held = (what_it_is(listed) if not isinstance(listed, (list, tuple)) else f"{what_it_is(listed)}, among them "
                + what_it_is(next(m for m in listed if not isinstance(m, str))))
        raise CheckpointError(f"{name}: its {list_name} holds {held}; it should be a list of module names")
    rank_unet, rank_vae = (_rank(sd.get(r), f"{name}: its {r}") for r in ("rank_unet", "rank_vae"))
    with sizes_from_weights(f"{name}: the LoRA weights"):
        return _parse_parts(sd, parts, rank_unet, rank_vae, name)


def _parse_parts(sd: dict, parts: dict, rank_unet, rank_vae, name: str) -> TADSRCheckpoint:
    unet_lora, rest = peft_layers(parts["state_dict_unet"], UNET_ADAPTERS, f"{name} state_dict_unet")
    unexpected = sorted(set(rest) - set(FULL_UNET_WEIGHTS))
    absent = sorted(set(FULL_UNET_WEIGHTS) - set(rest))
    if unexpected or absent:
        raise CheckpointError(f"{name} state_dict_unet: " + "; ".join(
            ([f"unexpected keys {unexpected[:3]}"] if unexpected else []) + ([f"missing {absent}"] if absent else [])))
    for adapter, list_name in MODULE_LISTS.items():
        listed = sd.get(list_name)
        have = {m for m, layer in unet_lora.items() if layer.adapter == adapter}
        if listed is not None and set(listed) != have:
            gone = sorted(set(listed) - have)
            raise CheckpointError(f"{name} lists {len(set(listed))} {adapter} modules but has LoRA weights for {len(have)}"
                                  + (f" (none for {gone[:3]})" if gone else ""))
    vae_lora, vae_rest = peft_layers(parts["state_dict_vae"], VAE_ADAPTERS, f"{name} state_dict_vae")
    if vae_rest:
        raise CheckpointError(f"{name} state_dict_vae holds non-LoRA keys, e.g. {sorted(vae_rest)[:3]}")
    listed = sd.get("vae_lora_encoder_modules")
    if listed is not None and set(listed) != set(vae_lora):
        raise CheckpointError(f"{name} lists {len(set(listed))} VAE encoder LoRA modules but has weights for {len(vae_lora)}")
    not_time = [k for k in parts["state_dict_vae_time"] if "time" not in k]
    if not_time:
        raise CheckpointError(f"{name} state_dict_vae_time holds non-time keys, e.g. {not_time[:3]}")
    check_rank(unet_lora, rank_unet, f"{name} UNet LoRA")
    check_rank(vae_lora, rank_vae, f"{name} VAE LoRA")
    unet_full = {k.replace(".base_layer", ""): parts["state_dict_unet"][k] for k in FULL_UNET_WEIGHTS}
    return TADSRCheckpoint(unet_lora, unet_full, rank_unet, vae_lora, parts["state_dict_vae_time"], rank_vae)


def _rank(value, subject: str) -> int | None:
    """A LoRA rank as the file stores it (a whole number, or a one-value integer tensor), or None if absent."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value)
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value
    raise CheckpointError(f"{subject} holds {what_it_is(value)}; it should be the LoRA rank, a whole number above 0 "
                          f"(4 in the released file)")


def load_tadsr(model, pkl_path: str, time_vae_folder: str, strength: float = 1.0):
    """(patched MODEL, time-aware VAE)."""
    ckpt = read_tadsr_checkpoint(pkl_path)
    with about_file(time_vae_folder):  # the folder's errors, and tadsr.pkl's VAE LoRA not fitting its weights
        vae = build_time_aware_vae(time_vae_folder, ckpt)
    return tadsr_model(model, ckpt, strength), vae
