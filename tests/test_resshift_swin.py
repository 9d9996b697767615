"""ResShift's Swin block against the official forward pass written out step by step."""
import torch

from support import resshift_factory as factory
from timeaware_sr.model_patches.resshift.swin import (SwinBlock, SwinLayer, WindowAttention, relative_position_index,
                                                      shifted_window_mask)


def official_attention(attn, windows, mask):
    """WindowAttention.forward of ResShift's swin_transformer.py: explicit softmax(q k^T / sqrt(d) + bias + mask) v."""
    b_, n, c = windows.shape
    heads = attn.heads
    q, k, v = attn.qkv(windows).reshape(b_, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    logits = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1)
    index = factory.official_relative_position_index(attn.window)
    logits = logits + attn.relative_position_bias_table[index.view(-1)].view(n, n, heads).permute(2, 0, 1)[None]
    if mask is not None:
        nw = mask.shape[0]
        logits = (logits.view(b_ // nw, nw, heads, n, n) + mask[None, :, None]).view(-1, heads, n, n)
    return attn.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(b_, n, c))


def official_block(block, x):
    """SwinTransformerBlock.forward: norm1, cyclic shift, windows, attention, merge, unshift, residual, MLP."""
    b, c, h, w = x.shape
    ws, shift = block.window, block.shift
    y = block.norm1(x)
    if shift:
        y = torch.roll(y, shifts=(-shift, -shift), dims=(2, 3))
    windows = y.view(b, c, h // ws, ws, w // ws, ws).permute(0, 2, 4, 3, 5, 1).contiguous().view(-1, ws * ws, c)
    out = official_attention(block.attn, windows, factory.official_shift_mask(h, w, ws, shift) if shift else None)
    out = out.view(-1, ws, ws, c)
    y = out.view(b, h // ws, w // ws, ws, ws, -1).permute(0, 5, 1, 3, 2, 4).contiguous().view(b, -1, h, w)
    if shift:
        y = torch.roll(y, shifts=(shift, shift), dims=(2, 3))
    x = x + y
    return x + block.mlp.fc2(torch.nn.functional.gelu(block.mlp.fc1(block.norm2(x))))


def randomized(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return module


def test_shifted_and_plain_swin_blocks_equal_the_official_forward_on_non_square_maps():
    torch.manual_seed(0)
    x = torch.randn(2, 32, 16, 24)
    for shift in (0, 2):
        block = randomized(SwinBlock(32, 2, 4, shift, 2.0, 16))
        with torch.no_grad():
            torch.testing.assert_close(block(x), official_block(block, x), rtol=1e-4, atol=1e-4)  # SDPA vs explicit


def test_swin_layer_shrinks_the_window_to_the_training_map_and_never_shifts_there():
    small = SwinLayer(32, 32, 2, window=8, depth=2, resolution=8, mlp_ratio=2.0)
    big = SwinLayer(32, 32, 2, window=8, depth=2, resolution=16, mlp_ratio=2.0)
    assert [(b.window, b.shift) for b in small.blocks] == [(8, 0), (8, 0)]
    assert [(b.window, b.shift) for b in big.blocks] == [(8, 0), (8, 4)]
    assert [(b.window, b.shift) for b in SwinLayer(32, 32, 2, 8, 2, 4, 2.0).blocks] == [(4, 0), (4, 0)]


def test_relative_position_index_and_shift_mask_equal_the_official_buffers():
    assert torch.equal(relative_position_index(8), factory.official_relative_position_index(8))
    for h, w in [(64, 64), (16, 32), (24, 8)]:
        assert torch.equal(shifted_window_mask(h, w, 8, 4), factory.official_shift_mask(h, w, 8, 4)), (h, w)


def test_window_attention_equals_explicit_softmax_attention_with_bias_and_mask():
    attn = randomized(WindowAttention(32, 4, 2))
    x = torch.randn(2 * 4, 16, 32, generator=torch.Generator().manual_seed(1))
    mask = shifted_window_mask(8, 8, 4, 2)
    with torch.no_grad():
        torch.testing.assert_close(attn(x, mask), official_attention(attn, x, mask), rtol=1e-4, atol=1e-4)  # SDPA
