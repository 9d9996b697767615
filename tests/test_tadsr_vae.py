"""TADSR's time-aware VAE encoder (SPEC §5) against ComfyUI's stock encoder and a hand-written
diffusers-style reference, and the time_vae/ loader's conversions and errors."""
import math

import pytest
import torch

from support import tadsr_factory as tf
from timeaware_sr.clear_errors import CheckpointError
from timeaware_sr.model_patches.tadsr import checkpoint as ck
from timeaware_sr.model_patches.tadsr import time_vae_folder as tvf
from timeaware_sr.model_patches.tadsr.encode import encode_moments, latent_from_moments
from timeaware_sr.model_patches.tadsr.time_aware_vae import TimeAwareEncoder

SCALE = 8.0 / 4.0  # peft default lora_alpha 8 over the file's rank 4


def no_lora() -> ck.TADSRCheckpoint:
    """A checkpoint with no VAE LoRA and no time override: the TAE is the time_vae/ folder alone."""
    return ck.TADSRCheckpoint({}, {}, 4, {}, {}, 4)


@pytest.fixture(scope="module")
def image():
    return torch.rand(2, 48, 64, 3, generator=torch.Generator().manual_seed(1))


def write_folder(tmp_path, time="random", fmt="safetensors", seed=0):
    sd = tf.time_vae_state_dict("tiny", seed, time=time)
    return tf.write_time_vae(tmp_path / "time_vae", sd=sd, fmt=fmt), sd


def test_zero_time_layers_and_no_lora_give_comfyuis_stock_vae_encoder(tmp_path, image):
    import comfy.diffusers_convert

    from timeaware_sr.model_patches.sd_components import build_vae

    folder, sd = write_folder(tmp_path, time="zero")
    tae = tvf.build_time_aware_vae(str(folder), no_lora())
    # reference: ComfyUI's own diffusers conversion and stock VAE (sized from the weights)
    stock = build_vae(comfy.diffusers_convert.convert_vae_state_dict({k: v for k, v in sd.items() if "time" not in k}))
    expected = stock.encode(image)  # the posterior mean
    for t_s in (1, 500, 999):
        got = latent_from_moments(encode_moments(tae, image, t_s), seed=None)
        assert (got - expected).abs().max() <= 1e-5  # same float32 ops in the same order; 1e-5 is headroom
    assert torch.equal(tae.decode(expected), stock.decode(expected))  # decoder: the stock one, same weights


def reference_tae(enc: TimeAwareEncoder, x, t_s):
    """diffusers TimeAwareEncoder written out: sinusoid(128, cos first), MLP, and in every resnet
    norm2(h) * (1 + scale) + shift from Linear(SiLU(temb))."""
    silu = torch.nn.functional.silu
    half = 64
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = torch.tensor([float(t_s)] * x.shape[0])[:, None] * freqs[None]
    temb = enc.time_embedding.linear_2(silu(enc.time_embedding.linear_1(torch.cat([args.cos(), args.sin()], 1))))

    def resnet(block, h):
        out = block.conv1(silu(block.norm1(h)))
        scale, shift = block.time_emb_proj(silu(temb))[:, :, None, None].chunk(2, dim=1)
        out = block.conv2(silu(torch.nn.functional.group_norm(out, 32, block.norm2.weight, block.norm2.bias, 1e-6) * (1 + scale) + shift))
        skip = block.nin_shortcut(h) if block.in_channels != block.out_channels else h
        return skip + out

    def attention(a, h):
        q, k, v = a.q(a.norm(h)), a.k(a.norm(h)), a.v(a.norm(h))
        b, c, hh, ww = q.shape
        w = torch.softmax(q.flatten(2).transpose(1, 2) @ k.flatten(2) / c ** 0.5, dim=-1)
        return h + a.proj_out((v.flatten(2) @ w.transpose(1, 2)).reshape(b, c, hh, ww))

    with torch.no_grad():
        h = enc.conv_in(x)
        for level in enc.down:
            for block in level.block:
                h = resnet(block, h)
            if hasattr(level, "downsample"):
                h = level.downsample.conv(torch.nn.functional.pad(h, (0, 1, 0, 1)))
        h = resnet(enc.mid.block_2, attention(enc.mid.attn_1, resnet(enc.mid.block_1, h)))
        return enc.conv_out(silu(enc.norm_out(h)))


def test_time_enters_only_as_scale_and_shift_after_norm2(tmp_path, image):
    folder, _ = write_folder(tmp_path, time="random")
    vae = tvf.build_time_aware_vae(str(folder), no_lora())
    enc = vae.first_stage_model.encoder
    x = image.movedim(-1, 1) * 2 - 1
    outs = {}
    for t_s in (1, 500, 999):
        with torch.no_grad():
            outs[t_s] = enc(x, t_s)
        ref = reference_tae(enc, x, t_s)
        assert (outs[t_s] - ref).abs().max() <= 1e-4 * ref.abs().max()  # float32, different op order (attention)
    assert (outs[1] - outs[999]).abs().max() > 1e-2 * outs[1].abs().max()  # t_s matters
    with torch.no_grad():  # without time_emb_proj the time embedding reaches nothing
        for block in enc.time_blocks():
            block.time_emb_proj.weight.zero_(), block.time_emb_proj.bias.zero_()
        assert torch.equal(enc(x, 1), enc(x, 999))


def test_the_encoder_lora_is_merged_as_w_plus_scale_b_a(tmp_path):
    folder, sd = write_folder(tmp_path)
    pkl = tf.tadsr_pkl_dict("tiny", seed=3)
    ckpt = ck.parse_tadsr_checkpoint(pkl)
    enc = tvf.build_time_aware_vae(str(folder), ckpt).first_stage_model.encoder.state_dict()
    lora = pkl["state_dict_vae"]
    cases = {  # diffusers module -> the TAE's key (LDM names), written out by hand
        "encoder.down_blocks.1.resnets.0.conv1": "down.1.block.0.conv1.weight",
        "encoder.down_blocks.1.resnets.0.conv_shortcut": "down.1.block.0.nin_shortcut.weight",
        "encoder.down_blocks.0.downsamplers.0.conv": "down.0.downsample.conv.weight",
        "encoder.mid_block.attentions.0.to_q": "mid.attn_1.q.weight",
        "encoder.mid_block.attentions.0.to_out.0": "mid.attn_1.proj_out.weight",
    }
    for module, key in cases.items():
        a, b = lora[f"{module}.lora_A.default_encoder.weight"], lora[f"{module}.lora_B.default_encoder.weight"]
        w = sd[module + ".weight"]
        delta = torch.einsum("or,rikl->oikl", b[:, :, 0, 0], a) if a.ndim == 4 else b @ a  # sum over rank r
        expected = (w + SCALE * delta).reshape(enc[key].shape)
        assert torch.allclose(enc[key], expected, atol=1e-6, rtol=1e-6), module  # one fused float32 add
    time_key = "encoder.down_blocks.2.resnets.1.time_emb_proj.weight"  # state_dict_vae_time overrides the folder
    assert torch.equal(enc["down.2.block.1.time_emb_proj.weight"], pkl["state_dict_vae_time"][time_key])
    qc = pkl["state_dict_vae"]
    quant = tvf.build_time_aware_vae(str(folder), ckpt).first_stage_model.quant_conv.weight
    expected = sd["quant_conv.weight"] + SCALE * (qc["quant_conv.lora_B.default_encoder.weight"].flatten(1)
                                                  @ qc["quant_conv.lora_A.default_encoder.weight"].flatten(1))[:, :, None, None]
    assert torch.allclose(quant, expected, atol=1e-6)


def test_bin_and_safetensors_folders_load_the_same(tmp_path, image):
    a, _ = write_folder(tmp_path / "a", fmt="safetensors", seed=4)
    b, _ = write_folder(tmp_path / "b", fmt="bin", seed=4)
    ma = encode_moments(tvf.build_time_aware_vae(str(a), no_lora()), image, 300)
    mb = encode_moments(tvf.build_time_aware_vae(str(b), no_lora()), image, 300)
    assert torch.equal(ma, mb)


def test_sample_mode_is_mean_plus_std_times_seeded_noise(tmp_path, image):
    folder, _ = write_folder(tmp_path)
    moments = encode_moments(tvf.build_time_aware_vae(str(folder), no_lora()), image, 500)
    mean, logvar = moments.chunk(2, dim=1)
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(11))
    expected = mean + torch.exp(0.5 * logvar.clamp(-30, 20)) * eps
    assert torch.allclose(latent_from_moments(moments, 11), expected, atol=1e-6)
    assert torch.equal(latent_from_moments(moments, None), mean)
    assert not torch.equal(latent_from_moments(moments, 11), latent_from_moments(moments, 12))


def test_real_size_time_vae_layout_round_trips_every_key():
    import comfy.ldm.models.autoencoder
    from comfy.ldm.modules.diffusionmodules.model import Encoder

    sd = tf.time_vae_state_dict("real", device="meta")
    pkl = tf.tadsr_pkl_dict("real", device="meta")
    ckpt = ck.parse_tadsr_checkpoint(pkl)
    assert len(ckpt.vae_lora) == 32 and len(ckpt.vae_time) == 24  # SPEC §5: 32 encoder LoRA modules
    ldm = tvf.time_aware_vae_weights(sd, ckpt)
    with torch.device("meta"):
        stock = comfy.ldm.models.autoencoder.AutoencoderKL(ddconfig=dict(
            double_z=True, z_channels=4, resolution=256, in_channels=3, out_ch=3, ch=128, ch_mult=[1, 2, 4, 4],
            num_res_blocks=2, attn_resolutions=[], dropout=0.0), embed_dim=4)
        tae = TimeAwareEncoder(ch=128, out_ch=3, ch_mult=[1, 2, 4, 4], num_res_blocks=2, attn_resolutions=[],
                               in_channels=3, resolution=256, z_channels=4)
    assert isinstance(tae, Encoder)
    expected = set(stock.state_dict()) | {"encoder." + k for k in tae.state_dict()}
    assert set(ldm) == expected
    shapes = {**{k: v.shape for k, v in stock.state_dict().items()}, **{"encoder." + k: v.shape for k, v in tae.state_dict().items()}}
    assert all(ldm[k].shape == shapes[k] for k in expected)


@pytest.mark.parametrize("break_it, message", [
    (lambda f: __import__("shutil").rmtree(f), "does not exist"),
    (lambda f: (f / "config.json").unlink(), "has no config.json"),
    (lambda f: (f / "config.json").write_text("{not json"), "is not valid JSON"),
    (lambda f: (f / "diffusion_pytorch_model.safetensors").unlink(), "has no weights file"),
    (lambda f: (f / "config.json").write_text('{"latent_channels": 16, "block_out_channels": [1, 2, 3, 4]}'),
     "does not describe an SD VAE"),
])
def test_a_broken_time_vae_folder_gives_a_clear_error(tmp_path, break_it, message):
    folder, _ = write_folder(tmp_path)
    break_it(folder)
    with pytest.raises(CheckpointError, match=message):
        tvf.build_time_aware_vae(str(folder), no_lora())


def test_truncated_or_incomplete_time_vae_weights_are_named(tmp_path):
    folder, sd = write_folder(tmp_path)
    weights = folder / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="diffusion_pytorch_model.safetensors is a truncated safetensors file"):
        tvf.build_time_aware_vae(str(folder), no_lora())
    del sd["decoder.conv_out.weight"]
    tf.write_time_vae(folder, sd=sd)
    with pytest.raises(CheckpointError, match="missing.*decoder.conv_out.weight"):
        tvf.build_time_aware_vae(str(folder), no_lora())
    sd = tf.time_vae_state_dict("tiny", time="random")
    del sd["encoder.mid_block.resnets.1.time_emb_proj.weight"]
    tf.write_time_vae(folder, sd=sd)
    with pytest.raises(CheckpointError, match="time-aware VAE encoder weights do not match.*mid.block_2.time_emb_proj"):
        tvf.build_time_aware_vae(str(folder), no_lora())
