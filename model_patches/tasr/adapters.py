"""TASR's 13 timestep-aware adapters (docs/tasr.md §4; official model/unet.py TimeAdapter, model/cldm.py).

Adapter k looks at the UNet feature, its skip and the ControlNet residual for one block, and at the
time embedding, and returns a per-pixel gate alpha = 2 sigmoid(A_k(...)) in (0, 2) (B x 1 x H x W)
that scales that residual. Adapter 0 serves the middle block, adapter i + 1 output block i.
"""
import math

import torch

import comfy.ops

ADAPTER_COUNT = 13  # the middle block and the 12 output blocks of an SD 1.x/2.x UNet


class TimeAdapter(torch.nn.Module):
    """One adapter for C input channels, m = C // 4:
    GroupNorm(32, C), SiLU, conv3x3 C->m; AdaLN: GroupNorm(16, m) * (1 + scale) + shift, with
    (scale, shift) = Linear(SiLU(emb)); SiLU, conv3x3 m->m/2, SiLU, conv3x3 m/2->1 (zero-initialised
    in training, so an untrained adapter gives alpha = 1). Group counts: norm_groups."""

    def __init__(self, channels: int, emb_channels: int, dtype=None, device=None, operations=comfy.ops.disable_weight_init):
        super().__init__()
        mid = channels // 4
        kw = dict(dtype=dtype, device=device)
        self.in_layers = torch.nn.Sequential(operations.GroupNorm(norm_groups(32, channels), channels, **kw), torch.nn.SiLU(),
                                             operations.Conv2d(channels, mid, 3, padding=1, **kw))
        self.emb_layers = torch.nn.Sequential(torch.nn.SiLU(), operations.Linear(emb_channels, 2 * mid, **kw))
        self.out_layers = torch.nn.Sequential(
            operations.GroupNorm(norm_groups(16, mid), mid, **kw), torch.nn.SiLU(),
            operations.Conv2d(mid, mid // 2, 3, padding=1, **kw), torch.nn.SiLU(), operations.Conv2d(mid // 2, 1, 3, padding=1, **kw))

    def forward(self, x, emb):
        """emb: B x E (one timestep per image), or B x H x W x E channel-last (TSS per-pixel timesteps,
        already at x's resolution). Returns the adapter's logit, B x 1 x H x W."""
        h = self.in_layers(x)
        e = self.emb_layers(emb).to(h.dtype)
        e = e.movedim(-1, 1) if e.ndim == 4 else e[:, :, None, None]
        scale, shift = e.chunk(2, dim=1)
        return self.out_layers[1:](self.out_layers[0](h) * (1 + scale) + shift)


def norm_groups(official: int, channels: int) -> int:
    """The official group count (32 for the input norm, 16 for the AdaLN norm). Every released SD 2.1
    adapter width is a multiple of it; a narrower UNet's adapter (group counts carry no weights) gets
    the largest count dividing its width, gcd(official, channels)."""
    return math.gcd(official, channels)


class TASRAdapters(torch.nn.ModuleList):
    """The 13 adapters under the official keys `{k}.0.<layer>` (each official adapter sits alone in a
    TimestepEmbedSequential, hence the `.0`)."""

    def __init__(self, channels: list[int], emb_channels: int, dtype=None, device=None,
                 operations=comfy.ops.disable_weight_init):
        super().__init__([torch.nn.ModuleList([TimeAdapter(c, emb_channels, dtype, device, operations)]) for c in channels])
        self.channels = list(channels)
        self.emb_channels = emb_channels

    def alpha(self, k: int, features: list, emb) -> torch.Tensor:
        """alpha_k = 2 sigmoid(A_k(cat(features), emb)), in the features' dtype."""
        dtype = self.get_dtype()
        x = torch.cat(features, dim=1)
        return (2 * torch.sigmoid(self[k][0](x.to(dtype), emb.to(dtype)))).to(features[0].dtype)

    def get_dtype(self):
        return self[0][0].in_layers[2].weight.dtype


def adapter_channels(model_channels: int, channel_mult, num_res_blocks) -> list[int]:
    """Input channels of the 13 adapters for an SD-style UNet (official c_13_list / c_skip_list):
    middle: 3 C_mid (cat[h + c, h, c]); output block i: 2 (C_h + C_s) + C_s (cat[cat(h, s + c), cat(h, s), c])."""
    if isinstance(num_res_blocks, int):
        num_res_blocks = [num_res_blocks] * len(channel_mult)
    skips, ch = [model_channels], model_channels
    for level, mult in enumerate(channel_mult):
        for _ in range(num_res_blocks[level]):
            ch = mult * model_channels
            skips.append(ch)
        if level != len(channel_mult) - 1:
            skips.append(ch)  # the downsample's output
    channels = [3 * ch]
    for level, mult in reversed(list(enumerate(channel_mult))):
        for _ in range(num_res_blocks[level] + 1):
            skip = skips.pop()
            channels.append(2 * (ch + skip) + skip)
            ch = mult * model_channels
    return channels


def adapter_layout(adapter_sd: dict) -> tuple[list[int], int]:
    """(input channels of each adapter, time-embedding width) read off official adapter weights."""
    count = 1 + max(int(k.split(".")[0]) for k in adapter_sd if k.split(".")[0].isdigit())
    channels = [adapter_sd[f"{k}.0.in_layers.0.weight"].shape[0] for k in range(count)]
    return channels, adapter_sd["0.0.emb_layers.1.weight"].shape[1]
