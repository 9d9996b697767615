"""ResShift / SinSR / TAD-SR network files and `autoencoder_vq_f4.pth` with random weights, in the
official key layouts, tiny and real size.

The layouts are written out here from ResShift's `models/unet.py`, `models/swin_transformer.py` and
`ldm/modules/diffusionmodules/model.py` (key names and shapes), independently of the pack's modules,
so the loader tests compare two separate readings of the official code. The Swin buffers are filled
with the values the official code registers (its relative position index and its shifted-window
mask, reproduced literally below).
"""
import pathlib

import torch

REAL_UNET = dict(image_size=64, model_channels=160, num_res_blocks=[2, 2, 2, 2], attention_resolutions=[64, 32, 16, 8],
                 channel_mult=[1, 2, 2, 4], num_head_channels=32, swin_depth=2, swin_embed_dim=192, window_size=8,
                 mlp_ratio=4)
TINY_UNET = dict(image_size=16, model_channels=32, num_res_blocks=[1, 1], attention_resolutions=[16, 8],
                 channel_mult=[1, 2], num_head_channels=16, swin_depth=2, swin_embed_dim=32, window_size=8, mlp_ratio=2)
REAL_VQ = dict(ch=128, ch_mult=[1, 2, 4], num_res_blocks=2, z_channels=3, embed_dim=3, n_embed=8192)
TINY_VQ = dict(ch=32, ch_mult=[1, 1, 2], num_res_blocks=1, z_channels=3, embed_dim=3, n_embed=64)
SHIPPED = {"resshift_realsrx4_s15_v1.pth": "unet", "resshift_realsrx4_s4_v3.pth": "unet", "SinSR_v1.pth": "unet",
           "autoencoder_vq_f4.pth": "vq"}


def official_relative_position_index(w: int) -> torch.Tensor:
    index = torch.zeros(w * w, w * w, dtype=torch.long)
    for i in range(w * w):
        for j in range(w * w):
            dy, dx = i // w - j // w + w - 1, i % w - j % w + w - 1
            index[i, j] = dy * (2 * w - 1) + dx
    return index


def official_shift_mask(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    """ResShift's SwinTransformerBlock.calculate_mask, step by step as the official code runs it."""
    img_mask = torch.zeros((1, 1, h, w))  # the official code indexes it as if it were 1 x H x W x 1
    slices = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    cnt = 0
    for hs in slices:
        for wsl in slices:
            img_mask[:, hs, wsl, :] = cnt
            cnt += 1
    windows = img_mask.view(1, 1, h // ws, ws, w // ws, ws).permute(0, 2, 4, 3, 5, 1).reshape(-1, ws, ws, 1)
    windows = windows.permute(0, 2, 3, 1).contiguous().view(-1, ws * ws)
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


def _res(p, cin, cout, emb):
    keys = {p + "in_layers.0.weight": (cin,), p + "in_layers.0.bias": (cin,),
            p + "in_layers.2.weight": (cout, cin, 3, 3), p + "in_layers.2.bias": (cout,),
            p + "emb_layers.1.weight": (2 * cout, emb), p + "emb_layers.1.bias": (2 * cout,),  # scale-shift norm
            p + "out_layers.0.weight": (cout,), p + "out_layers.0.bias": (cout,),
            p + "out_layers.3.weight": (cout, cout, 3, 3), p + "out_layers.3.bias": (cout,)}
    if cin != cout:
        keys.update({p + "skip_connection.weight": (cout, cin, 1, 1), p + "skip_connection.bias": (cout,)})
    return keys


def _swin(p, ch, c, ds):
    e, heads, hidden = c["swin_embed_dim"], c["swin_embed_dim"] // c["num_head_channels"], int(c["swin_embed_dim"] * c["mlp_ratio"])
    window, shift = (ds, 0) if ds <= c["window_size"] else (c["window_size"], c["window_size"] // 2)
    keys = {p + "patch_embed.proj.weight": (e, ch, 1, 1), p + "patch_embed.proj.bias": (e,),
            p + "patch_unembed.proj.weight": (ch, e, 1, 1), p + "patch_unembed.proj.bias": (ch,)}
    for i in range(c["swin_depth"]):
        b = f"{p}blocks.{i}."
        keys.update({b + "norm1.weight": (e,), b + "norm1.bias": (e,), b + "norm2.weight": (e,), b + "norm2.bias": (e,),
                     b + "attn.relative_position_bias_table": ((2 * window - 1) ** 2, heads),
                     b + "attn.relative_position_index": ("index", window),
                     b + "attn.qkv.weight": (3 * e, e), b + "attn.qkv.bias": (3 * e,),
                     b + "attn.proj.weight": (e, e), b + "attn.proj.bias": (e,),
                     b + "mlp.fc1.weight": (hidden, e, 1, 1), b + "mlp.fc1.bias": (hidden,),
                     b + "mlp.fc2.weight": (e, hidden, 1, 1), b + "mlp.fc2.bias": (e,)})
        if i % 2 and shift:
            keys[b + "attn_mask"] = ("mask", ds, window, shift)
    return keys


def unet_layout(c: dict) -> dict:
    """{key: shape or buffer spec} of the official UNetModelSwin (in 3 + lq 3 channels, out 3)."""
    mc, emb = c["model_channels"], 4 * c["model_channels"]
    keys = {"time_embed.0.weight": (emb, mc), "time_embed.0.bias": (emb,), "time_embed.2.weight": (emb, emb),
            "time_embed.2.bias": (emb,)}
    ch = mc * c["channel_mult"][0]
    keys.update({"input_blocks.0.0.weight": (ch, 6, 3, 3), "input_blocks.0.0.bias": (ch,)})
    chans, ds, n = [ch], c["image_size"], 1
    for level, mult in enumerate(c["channel_mult"]):
        for j in range(c["num_res_blocks"][level]):
            keys.update(_res(f"input_blocks.{n}.0.", ch, mc * mult, emb))
            ch = mc * mult
            if ds in c["attention_resolutions"] and j == 0:
                keys.update(_swin(f"input_blocks.{n}.1.", ch, c, ds))
            chans.append(ch)
            n += 1
        if level != len(c["channel_mult"]) - 1:
            keys.update({f"input_blocks.{n}.0.op.weight": (ch, ch, 3, 3), f"input_blocks.{n}.0.op.bias": (ch,)})
            chans.append(ch)
            n += 1
            ds //= 2
    keys.update(_res("middle_block.0.", ch, ch, emb))
    keys.update(_swin("middle_block.1.", ch, c, ds))
    keys.update(_res("middle_block.2.", ch, ch, emb))
    n = 0
    for level, mult in reversed(list(enumerate(c["channel_mult"]))):
        for i in range(c["num_res_blocks"][level] + 1):
            keys.update(_res(f"output_blocks.{n}.0.", ch + chans.pop(), mc * mult, emb))
            ch, k = mc * mult, 1
            if ds in c["attention_resolutions"] and i == 0:
                keys.update(_swin(f"output_blocks.{n}.1.", ch, c, ds))
                k = 2
            if level and i == c["num_res_blocks"][level]:
                keys.update({f"output_blocks.{n}.{k}.conv.weight": (ch, ch, 3, 3), f"output_blocks.{n}.{k}.conv.bias": (ch,)})
                ds *= 2
            n += 1
    keys.update({"out.0.weight": (ch,), "out.0.bias": (ch,), "out.2.weight": (3, ch, 3, 3), "out.2.bias": (3,)})
    return keys


def _resnet(p, cin, cout):
    keys = {p + "norm1.weight": (cin,), p + "norm1.bias": (cin,), p + "conv1.weight": (cout, cin, 3, 3),
            p + "conv1.bias": (cout,), p + "norm2.weight": (cout,), p + "norm2.bias": (cout,),
            p + "conv2.weight": (cout, cout, 3, 3), p + "conv2.bias": (cout,)}
    if cin != cout:
        keys.update({p + "nin_shortcut.weight": (cout, cin, 1, 1), p + "nin_shortcut.bias": (cout,)})
    return keys


def _mid(p, c):
    keys = {**_resnet(p + "block_1.", c, c), **_resnet(p + "block_2.", c, c)}
    for name in ("q", "k", "v", "proj_out"):
        keys.update({f"{p}attn_1.{name}.weight": (c, c, 1, 1), f"{p}attn_1.{name}.bias": (c,)})
    keys.update({p + "attn_1.norm.weight": (c,), p + "attn_1.norm.bias": (c,)})
    return keys


def vq_layout(c: dict) -> dict:
    """{key: shape} of the official VQModelTorch (double_z False, no attention outside the middle)."""
    ch, mult, nrb, z = c["ch"], c["ch_mult"], c["num_res_blocks"], c["z_channels"]
    keys = {"encoder.conv_in.weight": (ch, 3, 3, 3), "encoder.conv_in.bias": (ch,)}
    block_in = ch
    for i, m in enumerate(mult):
        for j in range(nrb):
            keys.update(_resnet(f"encoder.down.{i}.block.{j}.", block_in, ch * m))
            block_in = ch * m
        if i != len(mult) - 1:
            keys.update({f"encoder.down.{i}.downsample.conv.weight": (block_in, block_in, 3, 3),
                         f"encoder.down.{i}.downsample.conv.bias": (block_in,)})
    keys.update(_mid("encoder.mid.", block_in))
    keys.update({"encoder.norm_out.weight": (block_in,), "encoder.norm_out.bias": (block_in,),
                 "encoder.conv_out.weight": (z, block_in, 3, 3), "encoder.conv_out.bias": (z,)})
    block_in = ch * mult[-1]
    keys.update({"decoder.conv_in.weight": (block_in, z, 3, 3), "decoder.conv_in.bias": (block_in,)})
    keys.update(_mid("decoder.mid.", block_in))
    for i in reversed(range(len(mult))):
        for j in range(nrb + 1):
            keys.update(_resnet(f"decoder.up.{i}.block.{j}.", block_in, ch * mult[i]))
            block_in = ch * mult[i]
        if i != 0:
            keys.update({f"decoder.up.{i}.upsample.conv.weight": (block_in, block_in, 3, 3),
                         f"decoder.up.{i}.upsample.conv.bias": (block_in,)})
    keys.update({"decoder.norm_out.weight": (block_in,), "decoder.norm_out.bias": (block_in,),
                 "decoder.conv_out.weight": (3, block_in, 3, 3), "decoder.conv_out.bias": (3,),
                 "quant_conv.weight": (c["embed_dim"], z, 1, 1), "quant_conv.bias": (c["embed_dim"],),
                 "post_quant_conv.weight": (z, c["embed_dim"], 1, 1), "post_quant_conv.bias": (z,),
                 "quantize.embedding.weight": (c["n_embed"], c["embed_dim"])})
    return keys


def random_weights(layout: dict, seed: int = 0) -> dict:
    """Random tensors for a layout: fan-in scaled weights, unit norms, small biases; official buffers."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in layout.items():
        if shape[0] == "index":
            sd[key] = official_relative_position_index(shape[1])
        elif shape[0] == "mask":
            _, ds, window, shift = shape
            sd[key] = official_shift_mask(ds, ds, window, shift)
        elif key.endswith("quantize.embedding.weight"):
            sd[key] = torch.randn(shape, generator=g)
        elif len(shape) == 1:
            norm = any(s in key for s in ("norm", "in_layers.0.", "out_layers.0.", "out.0.")) and key.endswith("weight")
            sd[key] = torch.ones(shape) if norm else 0.02 * torch.randn(shape, generator=g)
        else:
            fan_in = torch.tensor(shape[1:]).prod().item()
            sd[key] = torch.randn(shape, generator=g) / fan_in ** 0.5
    return sd


def unet_state_dict(size: str = "tiny", seed: int = 0) -> dict:
    return random_weights(unet_layout(TINY_UNET if size == "tiny" else REAL_UNET), seed)


def vq_state_dict(size: str = "tiny", seed: int = 1) -> dict:
    return random_weights(vq_layout(TINY_VQ if size == "tiny" else REAL_VQ), seed)


def write_pth(path: pathlib.Path, sd: dict, wrap: str | None = None, prefix: str = ""):
    sd = {prefix + k: v for k, v in sd.items()}
    torch.save({wrap: sd} if wrap else sd, path)
    return path


def write_shipped_models(model_dirs):
    """The files the ResShift / SinSR workflows name, tiny, in models/resshift/."""
    folder = pathlib.Path(model_dirs["resshift"])
    for name, kind in SHIPPED.items():
        if not (folder / name).exists():
            write_pth(folder / name, unet_state_dict("tiny") if kind == "unet" else vq_state_dict("tiny"))
