"""The DiffBIR-style ControlNet used by DoSSR and TASR (docs/dossr.md §3, docs/tasr.md §4).

It has no hint encoder: its first conv takes cat(x_t, c_latent), 8 channels, where c_latent is the
hint image encoded by a VAE encoder (DoSSR: the checkpoint's own `cond_encoder`; TASR: the SD VAE)
and scaled by 0.18215. Its 13 zero-conv residuals use ComfyUI's own control layout, so it plugs
into the stock ControlNet apply nodes; the wrapper always encodes the hint with its own encoder,
whatever VAE the apply node was given.
"""
import torch

import comfy.cldm.cldm
import comfy.controlnet
import comfy.latent_formats

from ..clear_errors import CheckpointError
from .checkpoint_io import check_keys


class _NoHintEncoder(torch.nn.Module):
    def forward(self, hint, emb, context):
        return None


class LatentConcatControlNet(comfy.cldm.cldm.ControlNet):
    """ComfyUI's ControlNet network with the hint latent concatenated onto x instead of encoded."""

    def __init__(self, **config):
        super().__init__(hint_channels=1, **config)
        self.input_hint_block = _NoHintEncoder()  # no weights: the hint is already a latent

    def forward(self, x, hint, timesteps, context, y=None, **kwargs):
        if hint.shape[0] != x.shape[0]:  # ComfyUI leaves a batch-1 hint for others to broadcast (CFG batches)
            hint = hint.repeat(x.shape[0] // hint.shape[0], 1, 1, 1)
        return super().forward(torch.cat([x, hint.to(x.dtype)], dim=1), None, timesteps, context, y=y, **kwargs)


class LatentHintControlNet(comfy.controlnet.ControlNet):
    """CONTROL_NET whose hint image is encoded by `hint_encoder` (a ComfyUI VAE) and SD-latent-scaled."""

    def __init__(self, control_model, hint_encoder, load_device=None, manual_cast_dtype=None):
        super().__init__(control_model, compression_ratio=1, latent_format=comfy.latent_formats.SD15(),
                         load_device=load_device, manual_cast_dtype=manual_cast_dtype, extra_conds=[])
        self.hint_encoder = hint_encoder

    def set_cond_hint(self, cond_hint, strength=1.0, timestep_percent_range=(0.0, 1.0), vae=None, extra_concat=[]):
        return super().set_cond_hint(cond_hint, strength, timestep_percent_range, vae=self.hint_encoder,
                                     extra_concat=extra_concat)

    def copy(self):
        c = type(self)(None, self.hint_encoder, self.load_device, self.manual_cast_dtype)
        c.control_model = self.control_model
        c.control_model_wrapped = self.control_model_wrapped
        self.copy_to(c)
        return c


def build_latent_hint_controlnet(control_sd: dict, hint_encoder, unet_model_config, latent_channels: int = 4):
    """LatentHintControlNet from `control_model.` weights; heads follow the UNet it controls."""
    import comfy.model_detection
    import comfy.model_management as mm
    import comfy.ops

    config = comfy.model_detection.detect_unet_config(control_sd, "")
    if config is None:
        raise CheckpointError("the ControlNet weights are incomplete: no input_blocks.0.0.weight")
    if config["in_channels"] != 2 * latent_channels:
        raise CheckpointError(
            f"the ControlNet's first conv takes {config['in_channels']} channels; a DiffBIR/DoSSR ControlNet takes "
            f"{2 * latent_channels} (the latent and the hint latent concatenated)"
        )
    for key in ("num_heads", "num_head_channels"):
        config[key] = unet_model_config.unet_config[key]
    for key in ("out_channels", "transformer_depth_output", "use_temporal_resblock", "use_temporal_attention"):
        config.pop(key, None)
    load_device = mm.get_torch_device()
    dtype = mm.unet_dtype(model_params=-1)
    manual_cast = mm.unet_manual_cast(dtype, load_device)
    operations = comfy.ops.disable_weight_init if manual_cast is None else comfy.ops.manual_cast
    network = LatentConcatControlNet(**config, dtype=dtype, operations=operations)
    check_keys("ControlNet", network, control_sd)
    network.load_state_dict(control_sd)
    return LatentHintControlNet(network, hint_encoder, load_device=load_device, manual_cast_dtype=manual_cast)


def encoder_only(vae):
    """Drop a VAE's decoder: a condition encoder only ever encodes."""
    vae.first_stage_model.decoder = torch.nn.Identity()
    vae.first_stage_model.post_quant_conv = torch.nn.Identity()
    return vae
