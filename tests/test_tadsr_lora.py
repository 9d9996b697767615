"""TADSR's UNet LoRA (SPEC §5) as ModelPatcher weight patches: W + strength * (alpha/r) * B @ A per
adapter, the trained conv_in, bitwise restore, the real-size layout, and clear errors."""
import pytest
import torch

from support import ckpt_factory as cf
from support import tadsr_factory as tf
from timeaware_sr.clear_errors import CheckpointError
from timeaware_sr.model_patches.sd_components import build_unet
from timeaware_sr.model_patches.tadsr import checkpoint as ck
from timeaware_sr.model_patches.tadsr import lora as tadsr_lora
from timeaware_sr.model_patches.tadsr import one_step_model as osm

SCALE = 8.0 / 4.0  # peft default lora_alpha 8 (the file has none) over rank_unet 4

# (adapter, diffusers module, ComfyUI key) written out by hand: a conv and a linear per adapter
CASES = [
    ("default_encoder", "down_blocks.1.resnets.0.conv1", "input_blocks.4.0.in_layers.2.weight"),
    ("default_encoder", "down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k",
     "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"),
    ("default_decoder", "up_blocks.2.resnets.1.conv_shortcut", "output_blocks.7.0.skip_connection.weight"),
    ("default_decoder", "up_blocks.3.attentions.2.proj_out", "output_blocks.11.1.proj_out.weight"),
    ("default_others", "mid_block.resnets.1.conv2", "middle_block.2.out_layers.3.weight"),
    ("default_others", "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj",
     "middle_block.1.transformer_blocks.0.ff.net.0.proj.weight"),
]


def tiny_model(arch="sd21", prediction="eps"):
    import comfy.model_base

    sd = {k[len(cf.UNET_PREFIX):]: v for k, v in cf.unet_state_dict(arch, "tiny", prediction).items()}
    model_type = comfy.model_base.ModelType.EPS if prediction == "eps" else comfy.model_base.ModelType.V_PREDICTION
    return build_unet(sd, model_type)


@pytest.fixture(scope="module")
def base():
    return tiny_model()


@pytest.fixture(scope="module")
def pkl():
    return tf.tadsr_pkl_dict("tiny", seed=5)


def patched_weights(m) -> dict:
    import comfy.model_management as mm

    mm.load_models_gpu([m])
    try:
        return {k: v.clone() for k, v in m.model.state_dict().items()}
    finally:
        m.unpatch_model()
        mm.unload_all_models()


def lora_delta(pkl, adapter, module, shape):
    a = pkl["state_dict_unet"][f"{module}.lora_A.{adapter}.weight"]
    b = pkl["state_dict_unet"][f"{module}.lora_B.{adapter}.weight"]
    delta = torch.einsum("or,rikl->oikl", b[:, :, 0, 0], a) if a.ndim == 4 else b @ a  # sum over the rank
    return delta.reshape(shape)


@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_each_adapter_patches_w_plus_strength_scale_b_a(base, pkl, strength):
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    after = patched_weights(osm.tadsr_model(base, ck.parse_tadsr_checkpoint(pkl), strength))
    for adapter, module, key in CASES:
        key = "diffusion_model." + key
        expected = before[key] + strength * SCALE * lora_delta(pkl, adapter, module, before[key].shape)
        assert torch.allclose(after[key], expected, atol=1e-6, rtol=1e-5), module  # float32 matmul order
    key = "diffusion_model.input_blocks.0.0.weight"  # conv_in: the trained weight replaces the base one, then its LoRA
    trained = pkl["state_dict_unet"]["conv_in.base_layer.weight"]
    expected = before[key] + strength * (trained - before[key]) + strength * SCALE * lora_delta(pkl, "default_encoder", "conv_in", trained.shape)
    assert torch.allclose(after[key], expected, atol=1e-6, rtol=1e-5)
    bias = "diffusion_model.input_blocks.0.0.bias"
    assert torch.allclose(after[bias], before[bias] + strength * (pkl["state_dict_unet"]["conv_in.base_layer.bias"] - before[bias]), atol=1e-7)
    untouched = "diffusion_model.input_blocks.1.0.emb_layers.1.weight"  # time_emb_proj: no LoRA in TADSR
    assert torch.equal(after[untouched], before[untouched])


def test_strength_zero_is_the_base_model_and_unpatching_restores_it_bitwise(base, pkl):
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    zero = patched_weights(osm.tadsr_model(base, ck.parse_tadsr_checkpoint(pkl), 0.0))
    assert all(torch.equal(zero[k], before[k]) for k in before)
    one = patched_weights(osm.tadsr_model(base, ck.parse_tadsr_checkpoint(pkl), 1.0))
    assert not torch.equal(one["diffusion_model.input_blocks.0.0.weight"], before["diffusion_model.input_blocks.0.0.weight"])
    after = base.model.state_dict()  # the shared module, after unpatch
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert not base.patches  # the input MODEL itself was never patched


def test_real_size_unet_layout_round_trips_every_key():
    pkl = tf.tadsr_pkl_dict("real", device="meta")
    ckpt = ck.parse_tadsr_checkpoint(pkl)
    adapters = [layer.adapter for layer in ckpt.unet_lora.values()]
    assert [adapters.count(a) for a in ("default_encoder", "default_decoder", "default_others")] == [94, 148, 16]  # SPEC §5
    import comfy.utils

    with torch.device("meta"):
        unet = cf.build_unet("sd21", "real", device="meta")
    model_sd = {"diffusion_model." + k: v for k, v in unet.state_dict().items()}
    keys = {k: "diffusion_model." + v for k, v in comfy.utils.unet_to_diffusers(cf.unet_config("sd21", "real")).items()}
    full, lora = tadsr_lora.unet_weight_patches(ckpt.unet_lora, ckpt.rank_unet, ckpt.unet_full, keys, model_sd, "")
    assert len(lora) == 258 and set(full) == {"diffusion_model.input_blocks.0.0.weight", "diffusion_model.input_blocks.0.0.bias"}
    used = 2 * len(lora) + len(full)  # lora_A + lora_B per layer, conv_in weight + bias
    assert used == len(pkl["state_dict_unet"])


def test_an_sd15_model_is_refused_naming_the_family(pkl):
    with pytest.raises(CheckpointError, match="needs an SD 2.1-base MODEL.*looks like SD 1.x"):
        osm.tadsr_model(tiny_model("sd15"), ck.parse_tadsr_checkpoint(pkl))


def test_a_v_prediction_model_is_refused(pkl):
    with pytest.raises(CheckpointError, match="predicts V_PREDICTION, but SD 2.1-base predicts eps"):
        osm.tadsr_model(tiny_model("sd21", "v"), ck.parse_tadsr_checkpoint(pkl))


def test_a_lora_for_another_width_is_refused(base):
    real = tf.tadsr_pkl_dict("real", device="meta")
    with pytest.raises(CheckpointError, match="expects a .* weight, this MODEL's is"):
        osm.tadsr_model(base, ck.parse_tadsr_checkpoint(real))


def test_a_wrong_pickle_a_truncated_file_and_an_incomplete_dict_are_named(tmp_path, pkl):
    wrong = tmp_path / "wrong.pkl"
    torch.save({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)}, str(wrong))
    with pytest.raises(CheckpointError, match="wrong.pkl is not a TADSR checkpoint: it looks like a Stable Diffusion"):
        ck.read_tadsr_checkpoint(str(wrong))
    good = tf.write_tadsr_pkl(tmp_path / "tadsr.pkl", sd=pkl)
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.pkl is a truncated PyTorch checkpoint"):
        ck.read_tadsr_checkpoint(str(cut))
    partial = dict(pkl)
    del partial["state_dict_vae_time"]
    with pytest.raises(CheckpointError, match="is missing state_dict_vae_time"):
        ck.parse_tadsr_checkpoint(partial)
    lost_b = dict(pkl, state_dict_unet=dict(pkl["state_dict_unet"]))
    del lost_b["state_dict_unet"]["mid_block.resnets.0.conv1.lora_B.default_others.weight"]
    with pytest.raises(CheckpointError, match="lora_A but no lora_B for mid_block.resnets.0.conv1"):
        ck.parse_tadsr_checkpoint(lost_b)


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    evil = tmp_path / "evil.pkl"
    torch.save({"state_dict_unet": {}, "hook": torch.nn.Identity()}, str(evil))
    with pytest.raises(CheckpointError, match="contains pickled Python objects"):
        ck.read_tadsr_checkpoint(str(evil))
