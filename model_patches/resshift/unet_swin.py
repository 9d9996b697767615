"""ResShift's `UNetModelSwin` (ResShift `models/unet.py`), the network of ResShift v1/v2/v3, SinSR and TAD-SR.

ComfyUI's openaimodel ResBlock / Downsample / Upsample / TimestepEmbedSequential match the official
layout key for key (scale-shift norm included); the Swin layers replace the attention blocks. The
network predicts x0. Its input is cat([x_t scaled, lq]) with x first: the LR image in [-1, 1] at
latent resolution (docs/resshift.md §6). ComfyUI's BaseModel does that concatenation (c_concat), so `forward`
receives the 6-channel tensor.
"""
import torch
from torch import nn

import comfy.ops
from comfy.ldm.modules.diffusionmodules.openaimodel import Downsample, ResBlock, TimestepEmbedSequential, Upsample
from comfy.ldm.modules.diffusionmodules.util import timestep_embedding

from ...clear_errors import InputError
from ..interrupt import check_before_every_layer
from .swin import SwinLayer

# configs/realsr_swinunet_realesrgan256*.yaml (v1, v2, v3 and SinSR share it)
REAL_CONFIG = {
    "image_size": 64, "in_channels": 3, "lq_channels": 3, "model_channels": 160, "out_channels": 3,
    "num_res_blocks": [2, 2, 2, 2], "attention_resolutions": [64, 32, 16, 8], "channel_mult": [1, 2, 2, 4],
    "num_head_channels": 32, "swin_depth": 2, "swin_embed_dim": 192, "window_size": 8, "mlp_ratio": 4.0,
}


class UNetModelSwin(nn.Module):
    network_name = "the ResShift / SinSR / TAD-SR network"  # for messages (Tiled Diffusion names it)

    def __init__(self, image_size, in_channels, lq_channels, model_channels, out_channels, num_res_blocks,
                 attention_resolutions, channel_mult, num_head_channels, swin_depth, swin_embed_dim, window_size,
                 mlp_ratio, dtype=None, device=None, operations=comfy.ops.disable_weight_init, **_ignored):
        super().__init__()
        self.dtype = dtype
        self.model_channels = model_channels
        # input sides must be multiples of this (Tiled Diffusion reads it to refuse tiles the network cannot take)
        self.side_multiple = 2 ** (len(channel_mult) - 1) * window_size
        emb_dim = model_channels * 4
        kw = {"dtype": dtype, "device": device, "operations": operations}
        self.time_embed = nn.Sequential(operations.Linear(model_channels, emb_dim, dtype=dtype, device=device), nn.SiLU(),
                                        operations.Linear(emb_dim, emb_dim, dtype=dtype, device=device))

        def res(ch_in, ch_out=None):
            return ResBlock(ch_in, emb_dim, 0.0, out_channels=ch_out, use_scale_shift_norm=True, **kw)

        def swin(ch, resolution):
            return SwinLayer(ch, swin_embed_dim, swin_embed_dim // num_head_channels, window_size, swin_depth,
                             resolution, mlp_ratio, **kw)

        ch = model_channels * channel_mult[0]
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(
            operations.conv_nd(2, in_channels + lq_channels, ch, 3, padding=1, dtype=dtype, device=device))])
        skips, ds = [ch], image_size
        for level, mult in enumerate(channel_mult):
            for j in range(num_res_blocks[level]):
                layers = [res(ch, model_channels * mult)]
                ch = model_channels * mult
                if ds in attention_resolutions and j == 0:  # one Swin layer per level, after the first ResBlock
                    layers.append(swin(ch, ds))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skips.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch, True, out_channels=ch, **kw)))
                skips.append(ch)
                ds //= 2
        self.middle_block = TimestepEmbedSequential(res(ch), swin(ch, ds), res(ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks[level] + 1):
                layers = [res(ch + skips.pop(), model_channels * mult)]
                ch = model_channels * mult
                if ds in attention_resolutions and i == 0:
                    layers.append(swin(ch, ds))
                if level and i == num_res_blocks[level]:
                    layers.append(Upsample(ch, True, out_channels=ch, **kw))
                    ds *= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(operations.GroupNorm(32, ch, dtype=dtype, device=device), nn.SiLU(),
                                 operations.conv_nd(2, ch, out_channels, 3, padding=1, dtype=dtype, device=device))
        # Cancel within seconds on a large or long-strip latent, where one step is long: a check before every
        # layer, also on a ComfyUI without its own per-layer check
        check_before_every_layer(self)

    def forward(self, x, timesteps, context=None, control=None, transformer_options={}, **kwargs):
        """x: cat([x_t / sqrt(kappa^2 eta_t + 1), lq]); timesteps: the raw integer index t (no x1000)."""
        side = self.side_multiple
        if x.shape[-2] % side or x.shape[-1] % side:
            raise InputError(f"ResShift's network needs latent sides that are multiples of {side}, got "
                             f"{tuple(x.shape[-2:])}; pad the LR image with 'ResShift Prepare LR'")
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).to(x.dtype))
        h, hs = x, []
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)
