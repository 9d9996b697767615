"""Small models for exact per-pixel checks."""
import torch

from . import ckpt_factory as cf
from timeaware_sr.model_patches.sd_components import build_unet


def make_pixelwise_(network: torch.nn.Module, seed: int) -> torch.nn.Module:
    """In place: every spatial conv becomes a random 1x1 conv and every GroupNorm an identity, so a
    pixel's output depends only on that pixel's inputs (downsampling convs keep their stride)."""
    g = torch.Generator().manual_seed(seed)
    for module in list(network.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Conv2d) and child.kernel_size != (1, 1):
                conv = torch.nn.Conv2d(child.in_channels, child.out_channels, 1, stride=child.stride)
                with torch.no_grad():
                    conv.weight.normal_(std=child.in_channels ** -0.5, generator=g)
                setattr(module, name, conv)
            elif isinstance(child, torch.nn.GroupNorm):
                setattr(module, name, torch.nn.Identity())
    return network


def pixelwise_config(in_channels: int = 4, out_channels: int = 4, resolutions: int = 1) -> dict:
    """One ResBlock per level, no attention: nothing mixes pixels once convs are 1x1 (beyond the
    block-aligned down/upsampling between levels)."""
    return dict(cf.unet_config("sd15"), channel_mult=[1] * resolutions, num_res_blocks=[1] * resolutions,
                transformer_depth=[0] * resolutions, transformer_depth_output=[0] * (2 * resolutions),
                transformer_depth_middle=-1, context_dim=None, use_spatial_transformer=False, num_heads=-1,
                num_head_channels=32, in_channels=in_channels, out_channels=out_channels)


def pixelwise_unet_model(seed: int = 3, resolutions: int = 1, prediction: str = "eps"):
    """An SD1.5-style ModelPatcher with no GroupNorm and no attention, whose convolutions are 1×1.

    With one resolution every op is per pixel, so a pixel's output depends only on that pixel's input
    and timestep. With more, each Downsample keeps the top-left pixel of every 2×2 block (a 1×1 conv
    with stride 2) and each Upsample repeats it (nearest), so a pixel depends only on its aligned
    2^(resolutions-1) block: a map constant on those blocks must act block by block."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    import comfy.model_base
    import comfy.ops

    config = pixelwise_config(resolutions=resolutions)
    unet = cf.randomize_(UNetModel(**config, operations=comfy.ops.disable_weight_init), seed)
    model_type = comfy.model_base.ModelType.V_PREDICTION if prediction == "v" else comfy.model_base.ModelType.EPS
    model = build_unet(unet.state_dict(), model_type=model_type)
    make_pixelwise_(model.model.diffusion_model, seed)
    return model
