"""The Swin transformer layer inside ResShift's UNet (ResShift `models/swin_transformer.py`), key for key.

Channels-first throughout: GroupNorm(32) instead of LayerNorm, 1x1 convolutions as the MLP, a 1x1
patch embedding in and out (patch_norm off in every released config).
"""
import torch
import torch.nn.functional as F
from torch import nn

import comfy.ops

ops = comfy.ops.disable_weight_init


def relative_position_index(window: int) -> torch.Tensor:
    """(window^2, window^2) index into the (2w-1)^2 relative-position bias table (Swin's layout)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def shifted_window_mask(height: int, width: int, window: int, shift: int, device=None) -> torch.Tensor:
    """(windows, w^2, w^2) additive mask (0 / -100) for the shifted windows, exactly as ResShift computes it.

    ResShift's `calculate_mask` fills a 1x1xHxW tensor as if it were 1xHxWx1 and transposes each window
    when flattening it. The effect, which the released weights were trained with: a token's region label
    depends only on the image row given by its column inside the window. That mask is reproduced here.
    """
    label = torch.zeros(height, device=device)  # made where the attention runs: no copy per input size
    label[height - window:height - shift] = 1
    label[height - shift:] = 2
    rows = label.view(height // window, 1, window)  # (row of windows, 1, position inside the window)
    per_token = rows.expand(-1, width // window, -1).reshape(-1, 1, window).expand(-1, window, -1).reshape(-1, window * window)
    return (per_token[:, None, :] != per_token[:, :, None]).float() * -100.0


class WindowAttention(nn.Module):
    def __init__(self, dim, window, heads, dtype=None, device=None, operations=ops):
        super().__init__()
        self.window, self.heads = window, heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads, dtype=dtype, device=device))
        self.register_buffer("relative_position_index", relative_position_index(window).to(device))
        self.qkv = operations.Linear(dim, dim * 3, dtype=dtype, device=device)
        self.proj = operations.Linear(dim, dim, dtype=dtype, device=device)

    def forward(self, x, mask=None):  # x: (windows * B, N, C); mask: (windows, N, N) or None
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        table = comfy.ops.cast_to_input(self.relative_position_bias_table, x)
        bias = table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)  # (heads, N, N)
        if mask is None:
            bias = bias.unsqueeze(0)
        else:  # windows are batch-major: (B, windows, heads, N, N)
            bias = (bias.unsqueeze(0) + mask.to(bias).unsqueeze(1)).repeat(b // mask.shape[0], 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # scale head_dim^-0.5, as Swin's
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class SwinBlock(nn.Module):
    def __init__(self, dim, heads, window, shift, mlp_ratio, resolution, dtype=None, device=None, operations=ops):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = operations.GroupNorm(32, dim, dtype=dtype, device=device)
        self.attn = WindowAttention(dim, window, heads, dtype=dtype, device=device, operations=operations)
        self.norm2 = operations.GroupNorm(32, dim, dtype=dtype, device=device)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential()  # keys mlp.fc1 / mlp.fc2
        self.mlp.add_module("fc1", operations.Conv2d(dim, hidden, 1, dtype=dtype, device=device))
        self.mlp.add_module("act", nn.GELU())
        self.mlp.add_module("fc2", operations.Conv2d(hidden, dim, 1, dtype=dtype, device=device))
        if shift > 0:  # stored in the released files; the mask is recomputed for each input size as ResShift does
            windows = (resolution // window) ** 2
            self.register_buffer("attn_mask", torch.zeros(windows, window * window, window * window, device=device))
        self._masks = {}

    def mask(self, h, w, device):
        key = (h, w, str(device))
        if key not in self._masks:
            self._masks = {key: shifted_window_mask(h, w, self.window, self.shift, device)}
        return self._masks[key]

    def forward(self, x):
        b, c, h, w = x.shape
        ws = self.window
        y = self.norm1(x)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(2, 3))
        windows = y.view(b, c, h // ws, ws, w // ws, ws).permute(0, 2, 4, 3, 5, 1).reshape(-1, ws * ws, c)
        windows = self.attn(windows, self.mask(h, w, x.device) if self.shift else None)
        y = windows.view(b, h // ws, w // ws, ws, ws, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(2, 3))
        x = x + y
        return x + self.mlp(self.norm2(x))


class SwinLayer(nn.Module):
    """ResShift's `BasicLayer`: 1x1 embed to `embed_dim`, `depth` blocks (every second one shifted), 1x1 back."""

    def __init__(self, channels, embed_dim, heads, window, depth, resolution, mlp_ratio, dtype=None, device=None,
                 operations=ops):
        super().__init__()
        if resolution <= window:  # as Swin: a window as large as the whole (training-size) map, never shifted
            window, shift = resolution, 0
        else:
            shift = window // 2
        self.patch_embed = nn.Module()
        self.patch_embed.proj = operations.Conv2d(channels, embed_dim, 1, dtype=dtype, device=device)
        self.blocks = nn.ModuleList(
            SwinBlock(embed_dim, heads, window, 0 if i % 2 == 0 else shift, mlp_ratio, resolution, dtype, device,
                      operations)
            for i in range(depth))
        self.patch_unembed = nn.Module()
        self.patch_unembed.proj = operations.Conv2d(embed_dim, channels, 1, dtype=dtype, device=device)

    def forward(self, x):
        x = self.patch_embed.proj(x)
        for block in self.blocks:
            x = block(x)
        return self.patch_unembed.proj(x)
