"""TADSR's released files (docs/tadsr.md §5) -> a patched SD 2.1-base MODEL and a time-aware VAE.

`tadsr.pkl` (torch.save dict): state_dict_unet (peft LoRA keys of the default_encoder / _decoder /
_others adapters + the fully trained conv_in as `conv_in.base_layer.*`), state_dict_vae (encoder
LoRA), state_dict_vae_time (time path), the module-name lists and rank_unet / rank_vae.
`time_vae/` (diffusers layout): config.json + diffusion_pytorch_model.safetensors (or .bin) with
the whole TimeAwareAutoencoderKL: SD VAE keys plus `encoder.time_embedding.*` and
`encoder.*.resnets.*.time_emb_proj.*`.
"""
import json
import os
from typing import NamedTuple

from ..checkpoint_io import CheckpointError, describe, read_checkpoint
from .lora import UNET_ADAPTERS, VAE_ADAPTERS, check_rank, lora_scale, merge_lora_, peft_layers, unet_weight_patches

PKL_PARTS = ("state_dict_unet", "state_dict_vae", "state_dict_vae_time")
MODULE_LISTS = {"default_encoder": "unet_lora_encoder_modules", "default_decoder": "unet_lora_decoder_modules",
                "default_others": "unet_lora_others_modules"}
VAE_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
FULL_UNET_WEIGHTS = ("conv_in.base_layer.weight", "conv_in.base_layer.bias")  # trained fully, not LoRA
# the SD VAE structure ComfyUI's diffusers key table (4 levels x 2 blocks) and its Encoder cover
SD_VAE_CONFIG = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
                 "norm_num_groups": 32}


class TADSRCheckpoint(NamedTuple):
    unet_lora: dict  # module -> LoRALayer (diffusers UNet names)
    unet_full: dict  # diffusers weight key -> trained tensor (conv_in)
    rank_unet: int | None
    vae_lora: dict  # module -> LoRALayer (diffusers VAE names)
    vae_time: dict  # diffusers key -> tensor
    rank_vae: int | None


def read_tadsr_checkpoint(path: str) -> TADSRCheckpoint:
    return parse_tadsr_checkpoint(read_checkpoint(path), os.path.basename(path))


def parse_tadsr_checkpoint(sd: dict, name: str = "tadsr.pkl") -> TADSRCheckpoint:
    """The parts of a tadsr.pkl dict, every key accounted for, or a clear error."""
    missing = [p for p in PKL_PARTS if not isinstance(sd.get(p), dict)]
    if len(missing) == len(PKL_PARTS):
        raise CheckpointError(f"{name} is not a TADSR checkpoint: {describe(sd)}. tadsr.pkl is a dict holding "
                              f"{', '.join(PKL_PARTS)}, rank_unet and rank_vae")
    if missing:
        raise CheckpointError(f"{name} is missing {', '.join(missing)}; it may be truncated or a partial export")
    unet_lora, rest = peft_layers(sd["state_dict_unet"], UNET_ADAPTERS, f"{name} state_dict_unet")
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
    vae_lora, vae_rest = peft_layers(sd["state_dict_vae"], VAE_ADAPTERS, f"{name} state_dict_vae")
    if vae_rest:
        raise CheckpointError(f"{name} state_dict_vae holds non-LoRA keys, e.g. {sorted(vae_rest)[:3]}")
    listed = sd.get("vae_lora_encoder_modules")
    if listed is not None and set(listed) != set(vae_lora):
        raise CheckpointError(f"{name} lists {len(set(listed))} VAE encoder LoRA modules but has weights for {len(vae_lora)}")
    not_time = [k for k in sd["state_dict_vae_time"] if "time" not in k]
    if not_time:
        raise CheckpointError(f"{name} state_dict_vae_time holds non-time keys, e.g. {not_time[:3]}")
    rank_unet, rank_vae = sd.get("rank_unet"), sd.get("rank_vae")
    check_rank(unet_lora, rank_unet, f"{name} UNet LoRA")
    check_rank(vae_lora, rank_vae, f"{name} VAE LoRA")
    unet_full = {k.replace(".base_layer", ""): sd["state_dict_unet"][k] for k in FULL_UNET_WEIGHTS}
    return TADSRCheckpoint(unet_lora, unet_full, rank_unet, vae_lora, sd["state_dict_vae_time"], rank_vae)


# --- the time-aware VAE ----------------------------------------------------------------------

def ldm_vae_key(name: str) -> str:
    """A diffusers AutoencoderKL key (or module name) in ComfyUI's LDM naming, by ComfyUI's own
    tables; the time keys follow the same block prefixes (resnets.j -> block.j / block_{j+1})."""
    import comfy.diffusers_convert as dc

    out = name
    for ldm_part, hf_part in dc.vae_conversion_map:
        out = out.replace(hf_part, ldm_part)
    if "attentions" in name:
        for ldm_part, hf_part in dc.vae_conversion_map_attn:
            out = out.replace(hf_part, ldm_part)
    return out


def ldm_vae_state_dict(sd: dict) -> dict:
    """diffusers VAE weights -> LDM names; the mid attention's Linear weights become 1x1 convs."""
    out = {}
    for k, v in sd.items():
        key = ldm_vae_key(k)
        if ".attn_1." in key and key.endswith(".weight") and v.ndim == 2:
            v = v[:, :, None, None]
        out[key] = v
    return out


def read_time_vae_folder(folder: str) -> tuple[dict, dict]:
    """(config, diffusers state dict) of a `time_vae/` folder, with clear errors."""
    if not os.path.isdir(folder):
        raise CheckpointError(f"the time_vae folder {folder} does not exist; download TADSR's time_vae/ folder "
                              f"(config.json + diffusion_pytorch_model.*) into models/tadsr/")
    config_path = os.path.join(folder, "config.json")
    try:
        with open(config_path) as f:
            config = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{folder} has no config.json; a diffusers time_vae/ folder holds config.json "
                              f"and {' or '.join(VAE_WEIGHT_FILES)}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{config_path} is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path} holds a {type(config).__name__}, not a diffusers config")
    wrong = {k: config.get(k) for k, v in SD_VAE_CONFIG.items() if config.get(k, v) != v}
    if len(config.get("block_out_channels", [])) != 4:
        wrong["block_out_channels"] = config.get("block_out_channels")
    if wrong:
        raise CheckpointError(f"{config_path} does not describe an SD VAE: {wrong} (expected {SD_VAE_CONFIG} and "
                              f"4 block_out_channels)")
    weights = next((os.path.join(folder, f) for f in VAE_WEIGHT_FILES if os.path.isfile(os.path.join(folder, f))), None)
    if weights is None:
        raise CheckpointError(f"{folder} has no weights file; expected {' or '.join(VAE_WEIGHT_FILES)}")
    return config, read_checkpoint(weights)


def time_aware_vae_weights(diffusers_sd: dict, ckpt: TADSRCheckpoint) -> dict:
    """The final LDM-named VAE weights: time_vae/ overridden by state_dict_vae_time, the encoder
    LoRA merged in (as the official merge_and_unload)."""
    sd = dict(diffusers_sd)
    sd.update(ckpt.vae_time)
    merge_lora_(sd, ckpt.vae_lora, lora_scale(ckpt.rank_vae), "tadsr.pkl state_dict_vae")
    return ldm_vae_state_dict(sd)


def build_time_aware_vae(folder: str, ckpt: TADSRCheckpoint):
    _config, diffusers_sd = read_time_vae_folder(folder)
    try:
        return time_aware_vae(diffusers_sd, ckpt)
    except CheckpointError as e:
        raise CheckpointError(f"{folder}: {e}") from None


def time_aware_vae(diffusers_sd: dict, ckpt: TADSRCheckpoint):
    """A ComfyUI VAE (stock decoder) with the TAE as its encoder, from time_vae/ weights + tadsr.pkl."""
    from ..sd_components import build_vae
    from .time_aware_vae import install_time_aware_encoder, time_keys

    sd = time_aware_vae_weights(diffusers_sd, ckpt)
    encoder = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
    stock = {k: v for k, v in sd.items() if not (k.startswith("encoder.") and k[len("encoder."):] in time_keys(encoder))}
    return install_time_aware_encoder(build_vae(stock, "time_vae"), encoder)


# --- the one-step UNet --------------------------------------------------------------------------

def sd21_base_problem(model) -> str | None:
    """Why a MODEL is not an SD 2.1-base-shaped eps UNet, or None."""
    import comfy.model_base

    base = model.model
    config = getattr(base.model_config, "unet_config", {})
    if not isinstance(base, comfy.model_base.BaseModel) or "context_dim" not in config:
        return f"it is a {type(base).__name__}, not an SD UNet"
    if config.get("adm_in_channels") is not None or config.get("num_classes") is not None:
        return "it is an SDXL-family UNet"
    if not config.get("use_linear_in_transformer", False):
        return f"it looks like SD 1.x (conv attention projections, {config['context_dim']}-wide text context)"
    if base.model_type != comfy.model_base.ModelType.EPS:
        return f"it predicts {base.model_type.name}, but SD 2.1-base predicts eps (the 768-v model is not supported)"
    return None


def tadsr_model(model, ckpt: TADSRCheckpoint, strength: float = 1.0):
    """A clone of an SD 2.1-base MODEL with TADSR's UNet weights as weight patches scaled by strength
    (LoRA: W + strength * (alpha/r) * B @ A; conv_in: base + strength * (trained - base))."""
    import comfy.utils

    problem = sd21_base_problem(model)
    if problem is not None:
        raise CheckpointError(f"TADSR needs an SD 2.1-base MODEL (v2-1_512-ema-pruned); the MODEL input is not: {problem}")
    config = model.model.model_config.unet_config
    model_keys = {k: "diffusion_model." + v for k, v in comfy.utils.unet_to_diffusers(config).items()}
    hint = f" (context width {config['context_dim']})"
    full, lora = unet_weight_patches(ckpt.unet_lora, ckpt.rank_unet, ckpt.unet_full, model_keys,
                                     model.model.state_dict(), hint)
    m = model.clone()
    m.add_patches(full, strength)
    m.add_patches(lora, strength)
    return m


def load_tadsr(model, pkl_path: str, time_vae_folder: str, strength: float = 1.0):
    """(patched MODEL, time-aware VAE)."""
    ckpt = read_tadsr_checkpoint(pkl_path)
    name = os.path.basename(pkl_path)
    try:
        vae = build_time_aware_vae(time_vae_folder, ckpt)
    except CheckpointError as e:
        raise CheckpointError(f"{name} + {time_vae_folder}: {e}") from None
    return tadsr_model(model, ckpt, strength), vae
