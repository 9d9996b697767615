"""TADSR's `time_vae/` folder (docs/tadsr.md §5) -> a ComfyUI VAE whose encoder is the time-aware one.

The folder has the diffusers layout: config.json + diffusion_pytorch_model.safetensors (or .bin) with
the whole TimeAwareAutoencoderKL: SD VAE keys plus `encoder.time_embedding.*` and
`encoder.*.resnets.*.time_emb_proj.*`. tadsr.pkl's time layers override the folder's, and its
encoder LoRA is merged in.
"""
import json
import os

from ...clear_errors import CheckpointError
from ..checkpoint_io import describe, read_weights, sizes_from_weights, what_it_is
from .lora import lora_scale, merge_lora_

VAE_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
# the SD VAE structure ComfyUI's diffusers key table (4 levels x 2 blocks) and its Encoder cover
SD_VAE_CONFIG = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
                 "norm_num_groups": 32}
VAE_PARTS = ("encoder.", "decoder.")  # a VAE's weights are under both; a missing key is check_keys' to name
WEIGHTS_HOLD = ("the time-aware VAE: a diffusers AutoencoderKL's tensors (encoder.*, decoder.*, quant_conv.*, "
                "post_quant_conv.*) with the encoder's time layers, as in TADSR's released time_vae/ folder")


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
    """(config, diffusers state dict) of a `time_vae/` folder, with clear errors. Messages name the
    folder by its name only (the loader node names its input and shows no local path)."""
    name = os.path.basename(os.path.normpath(folder))
    if not os.path.isdir(folder):
        raise CheckpointError(f"{name} does not exist: the time_vae folder is not there; download TADSR's time_vae/ "
                              f"folder (config.json + diffusion_pytorch_model.*) into models/tadsr/", file=folder)
    config_path = os.path.join(folder, "config.json")
    try:
        with open(config_path) as f:
            config = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{name} has no config.json; a diffusers time_vae/ folder holds config.json "
                              f"and {' or '.join(VAE_WEIGHT_FILES)}", file=folder) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{name}: its config.json is not valid JSON ({e})", file=folder) from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{name}: its config.json holds {what_it_is(config)}, not a diffusers config",
                              file=folder)
    wrong = {k: config.get(k) for k, v in SD_VAE_CONFIG.items() if config.get(k, v) != v}
    blocks = config.get("block_out_channels", [])
    if not isinstance(blocks, (list, tuple)) or len(blocks) != 4:
        wrong["block_out_channels"] = blocks
    if wrong:
        raise CheckpointError(f"{name}: its config.json does not describe an SD VAE: {wrong} (expected "
                              f"{SD_VAE_CONFIG} and 4 block_out_channels)", file=folder)
    weights = next((os.path.join(folder, f) for f in VAE_WEIGHT_FILES if os.path.isfile(os.path.join(folder, f))), None)
    if weights is None:
        raise CheckpointError(f"{name} has no weights file; expected {' or '.join(VAE_WEIGHT_FILES)}", file=folder)
    sd = read_weights(weights, WEIGHTS_HOLD)
    if not all(any(k.startswith(part) for k in sd) for part in VAE_PARTS):
        raise CheckpointError(f"{os.path.basename(weights)} is not a diffusers VAE: {describe(sd)}. It should hold "
                              f"{WEIGHTS_HOLD}", file=weights)
    return config, sd


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
        with sizes_from_weights("the time-aware VAE weights"):
            return time_aware_vae(diffusers_sd, ckpt)
    except CheckpointError as e:
        e.args, e.file = (f"{os.path.basename(os.path.normpath(folder))}: {e}",), folder
        raise


def time_aware_vae(diffusers_sd: dict, ckpt: "TADSRCheckpoint"):
    """A ComfyUI VAE (stock decoder) with the TAE as its encoder, from time_vae/ weights + tadsr.pkl."""
    from ..sd_components import build_vae
    from .time_aware_vae import install_time_aware_encoder, time_keys

    sd = time_aware_vae_weights(diffusers_sd, ckpt)
    encoder = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
    stock = {k: v for k, v in sd.items() if not (k.startswith("encoder.") and k[len("encoder."):] in time_keys(encoder))}
    return install_time_aware_encoder(build_vae(stock, "time_vae"), encoder)
