"""ResShift / SinSR / TAD-SR network files and `autoencoder_vq_f4.pth` -> ComfyUI MODEL and VAE.

Network files (docs/resshift.md §6): a raw state dict of UNetModelSwin, or one wrapped in 'state_dict', with
'module.' / '_orig_mod.' prefixes from DataParallel / torch.compile; the Swin buffers are in the file.
The network's size is read off the weights (the released files and the test suite's tiny ones share
the structure). The schedule is not in the file: it comes from the preset, or from the file name.
"""
import os

import torch

from ...clear_errors import CheckpointError
from ...samplers.resshift_schedule import PRESETS
from ..checkpoint_io import about_file, check_keys, describe, read_weights, sizes_from_weights
from .unet_swin import REAL_CONFIG

NETWORK_KEYS = ("time_embed.0.weight", "input_blocks.0.0.weight", "out.2.weight")
VQ_KEYS = ("encoder.conv_in.weight", "decoder.conv_out.weight", "quantize.embedding.weight", "quant_conv.weight")
LQ_CHANNELS = 3  # the LR image (RGB) concatenated inside the network
NETWORK_HOLDS = ("a ResShift / SinSR / TAD-SR network: UNetModelSwin weights (time_embed.*, input_blocks.* with Swin "
                 "layers, out.*), e.g. resshift_realsrx4_s15_v1.pth or SinSR_v1.pth")
VQ_HOLDS = ("the VQGAN f4 autoencoder: autoencoder_vq_f4.pth from the ResShift release (encoder.*, decoder.*, "
            "quantize.embedding.*)")


def preset_from_filename(name: str) -> str | None:
    """The released files' names: resshift_realsrx4_s15_v1 / _s4_v3, SinSR_v1, (future) TAD-SR."""
    n = name.lower().replace("-", "_")
    if "sinsr" in n:
        return "sinsr"
    if "tad_sr" in n or "tadsr" in n:
        return "tad_sr"
    if "resshift" in n:
        return "resshift_v3" if ("_v3" in n or "_s4" in n) else "resshift_v1"
    return None


def unet_config_from_weights(sd: dict) -> dict:
    """UNetModelSwin's constructor arguments read off its weights."""
    mc = sd["time_embed.0.weight"].shape[1]
    mults, blocks, swin_levels, first_swin = [], [], [], None
    i, count, level_out = 1, 0, None
    while f"input_blocks.{i}.0.op.weight" in sd or f"input_blocks.{i}.0.in_layers.0.weight" in sd:
        if f"input_blocks.{i}.0.op.weight" in sd:  # a Downsample closes the level
            mults.append(level_out // mc), blocks.append(count)
            count = 0
        else:
            count += 1
            level_out = sd[f"input_blocks.{i}.0.out_layers.3.weight"].shape[0]
            if f"input_blocks.{i}.1.patch_embed.proj.weight" in sd:
                swin_levels.append(len(mults))
                first_swin = first_swin or f"input_blocks.{i}.1."
        i += 1
    mults.append(level_out // mc), blocks.append(count)
    if first_swin is None:
        raise CheckpointError("no Swin layers found (input_blocks.*.1.patch_embed.*)")
    table = sd[first_swin + "blocks.0.attn.relative_position_bias_table"]
    window = (int(round(table.shape[0] ** 0.5)) + 1) // 2
    mask = sd.get(first_swin + "blocks.1.attn_mask")
    image_size = window * int(round(mask.shape[0] ** 0.5)) if mask is not None else window
    image_size <<= swin_levels[0]  # the size at level 0
    embed = sd[first_swin + "patch_embed.proj.weight"].shape[0]
    depth = 1 + max(int(k[len(first_swin):].split(".")[1]) for k in sd if k.startswith(first_swin + "blocks."))
    return {
        "image_size": image_size, "in_channels": sd["input_blocks.0.0.weight"].shape[1] - LQ_CHANNELS,
        "lq_channels": LQ_CHANNELS, "model_channels": mc, "out_channels": sd["out.2.weight"].shape[0],
        "num_res_blocks": blocks, "attention_resolutions": [image_size >> level for level in swin_levels],
        "channel_mult": mults, "num_head_channels": embed // table.shape[1], "swin_depth": depth,
        "swin_embed_dim": embed, "window_size": window,
        "mlp_ratio": sd[first_swin + "blocks.0.mlp.fc1.weight"].shape[0] / embed,
    }


def load_network_state_dict(path: str) -> dict:
    name = os.path.basename(path)
    sd = read_weights(path, NETWORK_HOLDS)
    if not all(k in sd for k in NETWORK_KEYS) or not any("patch_embed" in k for k in sd):
        hint = " (that is the VQ-f4 autoencoder: choose it as vae_name)" if all(k in sd for k in VQ_KEYS) else ""
        raise CheckpointError(f"{name} is not a ResShift / SinSR / TAD-SR network: {describe(sd)}{hint}. It should "
                              f"hold {NETWORK_HOLDS}")
    return sd


def build_resshift_model(sd: dict, preset_name: str, name: str = "network"):
    """A ModelPatcher around ResShiftModel, weights checked key for key and shape for shape."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.utils

    from ..sd_components import set_comfy_inference_dtype
    from .model import ResShiftConfig, ResShiftModel

    with sizes_from_weights(f"{name}: the ResShift network weights"):
        config = unet_config_from_weights(sd)
    if config["in_channels"] != REAL_CONFIG["in_channels"]:
        raise CheckpointError(f"{name}: its first convolution takes {config['in_channels'] + LQ_CHANNELS} channels; a "
                              f"ResShift x4 network takes {REAL_CONFIG['in_channels'] + LQ_CHANNELS} (latent + LR image)")
    load_device = mm.get_torch_device()
    model_config = ResShiftConfig(config)
    set_comfy_inference_dtype(model_config, comfy.utils.calculate_parameters(sd), load_device)
    model = ResShiftModel(model_config, preset_name, PRESETS[preset_name], device=mm.unet_offload_device())
    try:
        check_keys("ResShift network", model.diffusion_model, sd)
    except CheckpointError as e:
        raise CheckpointError(f"{name}: {e} (its weights disagree with the network read off the file)") from None
    model.diffusion_model.load_state_dict(sd)
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=mm.unet_offload_device())


def load_vq_f4(path: str):
    from .vq_f4 import VQModelF4, build_vq_f4_vae, vq_config_from_weights

    name = os.path.basename(path)
    sd = read_weights(path, VQ_HOLDS)
    if not all(k in sd for k in VQ_KEYS):
        raise CheckpointError(f"{name} is not the VQGAN f4 autoencoder: {describe(sd)}. It should hold {VQ_HOLDS}")
    with sizes_from_weights(f"{name}: the VQ-f4 weights"):
        config = vq_config_from_weights(sd)
    module = VQModelF4(**config)
    try:
        check_keys("VQ-f4 autoencoder", module, sd)
    except CheckpointError as e:
        raise CheckpointError(f"{name}: {e}") from None
    module.load_state_dict(sd)
    return build_vq_f4_vae(module)


def load_resshift(network_path: str, vae_path: str, preset: str = "auto"):
    """(MODEL, VAE, preset used)."""
    name = os.path.basename(network_path)
    if preset == "auto":
        preset = preset_from_filename(name)
        if preset is None:
            raise CheckpointError(f"preset 'auto' cannot tell the schedule from the file name {name!r}; choose one of "
                                  f"{', '.join(PRESETS)}")
    elif preset not in PRESETS:
        raise CheckpointError(f"preset must be 'auto' or one of {', '.join(PRESETS)}, got {preset!r}")
    with about_file(network_path):
        model = build_resshift_model(load_network_state_dict(network_path), preset, name)
    with about_file(vae_path):
        vae = load_vq_f4(vae_path)
    return model, vae, preset
