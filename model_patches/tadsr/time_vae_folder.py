"""TADSR's `time_vae/` folder (docs/tadsr.md §5) -> a ComfyUI VAE whose encoder is the time-aware one.

The folder has the diffusers layout: config.json + diffusion_pytorch_model.safetensors (or .bin) with
the whole TimeAwareAutoencoderKL: SD VAE keys plus `encoder.time_embedding.*` and
`encoder.*.resnets.*.time_emb_proj.*`. tadsr.pkl's time layers override the folder's, and its
encoder LoRA is merged in.
"""
import json
import os

from ...clear_errors import CheckpointError
from ..checkpoint_io import read_checkpoint
from .lora import lora_scale, merge_lora_

VAE_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
# the SD VAE structure ComfyUI's diffusers key table (4 levels x 2 blocks) and its Encoder cover
SD_VAE_CONFIG = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
                 "norm_num_groups": 32}


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


def time_aware_vae_weights(diffusers_sd: dict, ckpt: "TADSRCheckpoint") -> dict:
    """The final LDM-named VAE weights: time_vae/ overridden by state_dict_vae_time, the encoder
    LoRA merged in (as the official merge_and_unload)."""
    sd = dict(diffusers_sd)
    sd.update(ckpt.vae_time)
    merge_lora_(sd, ckpt.vae_lora, lora_scale(ckpt.rank_vae), "tadsr.pkl state_dict_vae")
    return ldm_vae_state_dict(sd)


def build_time_aware_vae(folder: str, ckpt: "TADSRCheckpoint"):
    _config, diffusers_sd = read_time_vae_folder(folder)
    try:
        return time_aware_vae(diffusers_sd, ckpt)
    except CheckpointError as e:
        raise CheckpointError(f"{folder}: {e}") from None


def time_aware_vae(diffusers_sd: dict, ckpt: "TADSRCheckpoint"):
    """A ComfyUI VAE (stock decoder) with the TAE as its encoder, from time_vae/ weights + tadsr.pkl."""
    from ..sd_components import build_vae
    from .time_aware_vae import install_time_aware_encoder, time_keys

    sd = time_aware_vae_weights(diffusers_sd, ckpt)
    encoder = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
    stock = {k: v for k, v in sd.items() if not (k.startswith("encoder.") and k[len("encoder."):] in time_keys(encoder))}
    return install_time_aware_encoder(build_vae(stock, "time_vae"), encoder)
