"""The pack's own small SR diffusion model, so the main job runs offline (issue: starter model).

A pixel-space UNet (ComfyUI's own `openaimodel.UNetModel`, so every UNet patch applies unchanged)
on 3-channel "latents" in [-1, 1] through ComfyUI's pass-through pixel VAE. It is conditioned on
the bicubic-upscaled LR image by channel concatenation: ComfyUI concatenates the sampler's input
latent (x̂0, the upscaled LR) to the UNet input by itself (`concat_keys`). It is trained with the
DoSSR forward process (docs/dossr.md §3), so the DoSSR sampler and scheduler apply as they are.

It predicts x0 as a residual from the LR, x0 = x̂0 - UNet(x_t, x̂0, t), rather than eps: with its
head zero-initialised it starts exactly at bicubic and only has to learn the correction, which a
1.4 M-parameter net trained for half an hour on two CPU cores can do; an eps net first has to learn
the exact t-dependent map (x_t - alpha_t x̂0) / sigma_t just to match bicubic, and did not get there.
"""
import json

import torch

import comfy.latent_formats
import comfy.model_base
import comfy.supported_models_base

from ...clear_errors import CheckpointError
from ..checkpoint_io import about_file, check_keys, describe, read_weights, with_prefix

PREFIX = "timeaware_sr.starter."  # every tensor key; tells this file apart from any other layout
HOLDS = f"the pack's starter model (starter_sr.safetensors, bundled with the pack): tensors named under {PREFIX}"
UNET_CONFIG = dict(
    image_size=64, in_channels=6, out_channels=3, model_channels=32, num_res_blocks=[2, 2, 2], channel_mult=[1, 2, 2],
    transformer_depth=[0] * 6, transformer_depth_output=[0] * 9, transformer_depth_middle=-1, num_head_channels=32,
    use_spatial_transformer=False, context_dim=None, legacy=False, use_checkpoint=False,
    use_temporal_resblock=False, use_temporal_attention=False,
)


class PixelRGB(comfy.latent_formats.LatentFormat):
    """RGB in [-1, 1] as the "latent": previews are the image itself."""
    latent_channels = 3
    latent_rgb_factors = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    latent_rgb_factors_bias = [0.0, 0.0, 0.0]


class StarterSRConfig(comfy.supported_models_base.BASE):
    unet_config = UNET_CONFIG
    unet_extra_config = {}
    latent_format = PixelRGB
    # ComfyUI picks among these as for any UNet (--fp16-unet, --bf16-unet, the GPU); the file itself is fp16
    supported_inference_dtypes = [torch.float16, torch.bfloat16, torch.float32]


class StarterSRModel(comfy.model_base.BaseModel):
    """Residual x0-predictor on cat(x_VP, upscaled LR); the LR is the sampler's input latent."""

    predicts_x0 = True  # its output is x0 itself (model_patches/tss/spatial_timestep.py reads this)

    def __init__(self, model_config, device=None):
        # EPS sampling gives the discrete VP schedule and input scaling; the output is re-formed below.
        super().__init__(model_config, comfy.model_base.ModelType.EPS, device=device)
        self.concat_keys = ("concat_image",)  # ComfyUI falls back to the input latent for it

    def _apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        # ComfyUI forms x - sigma * out; take the UNet's raw output back out and use it as the residual.
        d = super()._apply_model(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        sigma = t.reshape(-1, *([1] * (x.ndim - 1)))
        return residual_x0(c_concat.to(d), (x - d) / sigma)


def residual_x0(lr: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """The starter's x0 estimate: the (upscaled) LR minus the network's residual."""
    return lr - residual


def build_unet(dtype=torch.float32, device=None):
    """The bare network (for training and tests)."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    return UNetModel(**UNET_CONFIG, dtype=dtype, device=device, operations=comfy.ops.disable_weight_init)


def save_starter(path: str, unet: torch.nn.Module, info: dict):
    import safetensors.torch

    sd = {PREFIX + "diffusion_model." + k: v.detach().to(torch.float16).contiguous() for k, v in unet.state_dict().items()}
    safetensors.torch.save_file(sd, path, metadata={"timeaware_sr": json.dumps(info)})


def load_starter(path: str):
    """(MODEL patcher, pixel VAE, neutral CONDITIONING) from a starter-model file."""
    import os

    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.sd
    import comfy.utils

    from ..sd_components import set_comfy_inference_dtype

    sd = read_weights(path, HOLDS)
    unet_sd = with_prefix(sd, PREFIX + "diffusion_model.")
    if not unet_sd:
        raise CheckpointError(f"{os.path.basename(path)} is the wrong model type for the starter SR loader: "
                              f"{describe(sd)}. It should hold {HOLDS}", file=path)
    config = StarterSRConfig(dict(UNET_CONFIG))
    load_device = mm.get_torch_device()
    set_comfy_inference_dtype(config, comfy.utils.calculate_parameters(unet_sd), load_device)
    model = StarterSRModel(config, device=mm.unet_offload_device())
    with about_file(path):
        check_keys("starter UNet", model.diffusion_model, unet_sd)
    model.diffusion_model.load_state_dict(unet_sd)  # cast to the weights' dtype on copy
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=mm.unet_offload_device())
    vae = comfy.sd.VAE(sd={"pixel_space_vae": torch.tensor(1.0)})
    conditioning = [[torch.zeros(1, 1, 1), {}]]  # no text: the LR image is the only condition
    return patcher, vae, conditioning
