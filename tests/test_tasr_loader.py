"""Load TASR (SPEC §4): the official tasr_v1.pth layout in every accepted container, the real-size
layout with no missing or unexpected keys, the SD VAE hint, and clear errors for wrong files."""
import pytest
import torch

from support import ckpt_factory as cf
from support import tasr_factory as tf
from timeaware_sr.clear_errors import CheckpointError
from timeaware_sr.model_patches.checkpoint_io import check_keys
from timeaware_sr.model_patches.latent_hint_controlnet import LatentConcatControlNet
from timeaware_sr.model_patches.sd_components import build_vae
from timeaware_sr.model_patches.tasr.checkpoint import build_adapters, load_tasr, split_tasr_state_dict


@pytest.fixture(scope="module")
def official():
    return tf.tasr_state_dict("tiny", seed=3)


def weights_of(parts):
    control = parts.control_net.control_model.state_dict()
    return control, parts.adapters.model.state_dict()


def assert_loaded(parts, sd):
    control, adapters = weights_of(parts)
    assert control.keys() == sd[tf.CONTROLNET].keys() and adapters.keys() == sd[tf.ADAPTERS].keys()
    assert all(torch.equal(control[k], v) for k, v in sd[tf.CONTROLNET].items())
    assert all(torch.equal(adapters[k], v) for k, v in sd[tf.ADAPTERS].items())


@pytest.mark.parametrize("container", ["official", "safetensors", "state_dict", "module"])
def test_every_container_loads_the_same_weights(tmp_path, official, container):
    if container == "official":
        path = tf.write_tasr(tmp_path / "tasr_v1.pth", official)
    elif container == "safetensors":
        path = tf.write_tasr(tmp_path / "tasr_v1.safetensors", official)
    elif container == "state_dict":
        path = tmp_path / "tasr_v1.ckpt"
        torch.save({"state_dict": official}, str(path))
    else:  # saved from a DataParallel model: every part's keys start with module.
        path = tmp_path / "tasr_v1.pth"
        torch.save({part: {"module." + k: v for k, v in w.items()} for part, w in official.items()}, str(path))
    assert_loaded(load_tasr(str(path)), official)


def test_the_real_size_layout_has_no_missing_or_unexpected_keys():
    """SD 2.1-base's shapes, checked on the meta device (the real file is 4.5 GB)."""
    sd = tf.tasr_state_dict("real", device="meta")
    control_sd, adapter_sd = split_tasr_state_dict(sd, "tasr_v1.pth")
    config = tf.sd21_config("real")
    for key in ("out_channels", "transformer_depth_output", "use_temporal_resblock", "use_temporal_attention"):
        config.pop(key)
    config["in_channels"] = 8
    import comfy.ops

    control = LatentConcatControlNet(**config, device="meta", operations=comfy.ops.disable_weight_init)
    check_keys("ControlNet", control, control_sd)
    adapters = build_adapters(adapter_sd, control, device="meta")
    # the official c_13_list / c_skip_list: c_init = c + c_skip + c_skip // 2 (middle: c + 2 c_skip)
    c13 = [1280, 2560, 2560, 2560, 2560, 2560, 2560, 2560, 1280, 1280, 1280, 640, 640]
    skip = [1280, 2560, 2560, 2560, 2560, 2560, 1280, 1280, 1280, 640, 640, 640, 640]
    assert adapters.channels == [c13[0] + 2 * skip[0]] + [c + s + s // 2 for c, s in zip(c13[1:], skip[1:])]
    assert adapters.emb_channels == 1280
    assert adapter_sd["0.0.in_layers.0.weight"].shape == (3840,)
    assert adapter_sd["1.0.in_layers.2.weight"].shape == (1600, 6400, 3, 3)
    assert adapter_sd["12.0.out_layers.4.weight"].shape == (1, 200, 3, 3)
    for pair in adapters:  # the official GroupNorm(32, C) and GroupNorm(16, C/4) at every released width
        assert (pair[0].in_layers[0].num_groups, pair[0].out_layers[0].num_groups) == (32, 16)


def test_the_hint_is_encoded_by_the_vae_the_apply_node_passes(tmp_path, official):
    parts = load_tasr(str(tf.write_tasr(tmp_path / "tasr_v1.pth", official)))
    vae = build_vae(cf.vae_state_dict("tiny", seed=9))
    applied = parts.control_net.copy().set_cond_hint(torch.rand(1, 3, 64, 64), vae=vae)
    assert applied.vae is vae and type(applied) is type(parts.control_net)
    assert applied.latent_format.scale_factor == 0.18215
    with pytest.raises(ValueError, match="vae: the TASR ControlNet encodes its hint image with the SD 2.1 VAE"):
        parts.control_net.copy().set_cond_hint(torch.rand(1, 3, 64, 64))


def test_a_dossr_checkpoint_is_refused(tmp_path):
    path = cf.write_torch_checkpoint(tmp_path / "dossr_default.ckpt", cf.dossr_state_dict("tiny"))
    with pytest.raises(CheckpointError, match="dossr_default.ckpt is not a TASR checkpoint: it looks like a ControlNet"):
        load_tasr(str(path))


def test_a_controlnet_without_adapters_is_refused(tmp_path, official):
    path = tmp_path / "tasr_v1.pth"
    torch.save({tf.CONTROLNET: official[tf.CONTROLNET]}, str(path))  # torch's loader unwraps a one-key dict
    with pytest.raises(CheckpointError, match="holds a ControlNet but no TASR adapters"):
        load_tasr(str(path))
    bare = tmp_path / "diffbir_controlnet.safetensors"
    import safetensors.torch

    safetensors.torch.save_file(official[tf.CONTROLNET], str(bare))
    with pytest.raises(CheckpointError, match="diffbir_controlnet.safetensors holds a ControlNet but no TASR adapters"):
        load_tasr(str(bare))


def test_adapters_for_another_channel_layout_are_refused(tmp_path, official):
    wider = tf.tasr_state_dict("tiny")[tf.ADAPTERS]
    sd = {tf.CONTROLNET: official[tf.CONTROLNET], tf.ADAPTERS: {k: v for k, v in wider.items() if not k.startswith("12.")}}
    path = tf.write_tasr(tmp_path / "tasr_v1.pth", sd)
    with pytest.raises(CheckpointError, match=r"tasr_v1.pth: the TASR adapters have another channel layout .* 12 adapters"):
        load_tasr(str(path))
    tiny_control = load_tasr(str(tf.write_tasr(tmp_path / "ok.pth", official))).control_net.control_model
    real_adapters = tf.adapters_module("real", device="meta").state_dict()  # SD 2.1-size adapters, tiny ControlNet
    with pytest.raises(CheckpointError, match=r"input channels \[3840, 6400.*needs 13 with \[768, 1280"):
        build_adapters(real_adapters, tiny_control)


def test_a_truncated_file_is_refused(tmp_path, official):
    path = tf.write_tasr(tmp_path / "tasr_v1.pth", official)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="tasr_v1.pth is a truncated PyTorch checkpoint"):
        load_tasr(str(path))


def test_adapters_with_missing_keys_are_refused_not_silently_skipped(tmp_path, official):
    """The official loader only prints a message and runs with alpha = 1; the pack refuses."""
    adapters = {k: v for k, v in official[tf.ADAPTERS].items() if not k.startswith("3.0.emb_layers")}
    path = tf.write_tasr(tmp_path / "tasr_v1.pth", {tf.CONTROLNET: official[tf.CONTROLNET], tf.ADAPTERS: adapters})
    with pytest.raises(CheckpointError, match=r"TASR adapters weights do not match: 2 missing \(e.g. \['3.0.emb_layers.1.bias'"):
        load_tasr(str(path))
