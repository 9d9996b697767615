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


def pixelwise_config(in_channels: int = 4, out_channels: int = 4) -> dict:
    """One level, one ResBlock, no attention: nothing mixes pixels once convs are 1x1."""
    return dict(cf.unet_config("sd15"), channel_mult=[1], num_res_blocks=[1], transformer_depth=[0],
                transformer_depth_output=[0, 0], transformer_depth_middle=-1, context_dim=None,
                use_spatial_transformer=False, num_heads=-1, num_head_channels=32, in_channels=in_channels,
                out_channels=out_channels)


def pixelwise_unet_model(seed: int = 3):
    """An SD1.5-style ModelPatcher whose every op is per pixel (1x1 convs, no GroupNorm, no attention),
    so a pixel's output depends only on that pixel's input and timestep."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    import comfy.ops

    unet = cf.randomize_(UNetModel(**pixelwise_config(), operations=comfy.ops.disable_weight_init), seed)
    model = build_unet(unet.state_dict())
    make_pixelwise_(model.model.diffusion_model, seed)
    return model
