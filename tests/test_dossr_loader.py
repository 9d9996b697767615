"""The DoSSR checkpoint loader on files in the official layout (SPEC §3), tiny and real-size."""
import pickle

import pytest
import safetensors.torch
import torch

from support import ckpt_factory as cf
from timeaware_sr.clear_errors import CheckpointError
from timeaware_sr.model_patches.dossr.checkpoint import COMPONENTS, load_dossr


@pytest.fixture(scope="module")
def tiny_sd():
    return cf.dossr_state_dict("tiny")


@pytest.mark.parametrize("suffix, wrap", [(".safetensors", None), (".ckpt", "state_dict"), (".pth", "module")])
def test_every_component_loads_from_each_released_format(tmp_path, tiny_sd, suffix, wrap):
    path = tmp_path / f"dossr_default{suffix}"
    if wrap is None:
        safetensors.torch.save_file(tiny_sd, str(path))
    else:
        cf.write_torch_checkpoint(path, tiny_sd, wrap)
    parts = load_dossr(str(path))
    assert parts.control_net.control_model.input_blocks[0][0].weight.shape[1] == 8
    assert parts.upscale_model.scale == 4
    # the loaded weights are the file's, bit for bit
    unet = parts.model.model.diffusion_model.state_dict()
    assert torch.equal(unet["input_blocks.0.0.weight"], tiny_sd["model.diffusion_model.input_blocks.0.0.weight"])
    control = parts.control_net.control_model.state_dict()
    assert torch.equal(control["zero_convs.3.0.weight"], tiny_sd["control_model.zero_convs.3.0.weight"])


def test_the_controlnet_hint_is_encoded_by_the_checkpoints_own_condition_encoder(tmp_path, tiny_sd):
    path = tmp_path / "d.safetensors"
    safetensors.torch.save_file(tiny_sd, str(path))
    parts = load_dossr(str(path))
    encoder = parts.control_net.hint_encoder.first_stage_model
    assert torch.equal(encoder.encoder.conv_in.weight, tiny_sd["cond_encoder.encoder.conv_in.weight"])
    assert not torch.equal(encoder.encoder.conv_in.weight, tiny_sd["first_stage_model.encoder.conv_in.weight"])
    # whatever VAE the apply node passes, the ControlNet keeps its own encoder
    applied = parts.control_net.copy().set_cond_hint(torch.rand(1, 3, 64, 64), vae=parts.vae)
    assert applied.vae is parts.control_net.hint_encoder
    image = torch.rand(1, 64, 64, 3)
    assert torch.allclose(applied.vae.encode(image), parts.control_net.hint_encoder.encode(image))


@pytest.mark.parametrize("component", list(COMPONENTS))
def test_a_missing_component_is_named(tmp_path, tiny_sd, component):
    prefix = COMPONENTS[component]
    sd = {k: v for k, v in tiny_sd.items() if not k.startswith(prefix)}
    path = tmp_path / "partial.safetensors"
    safetensors.torch.save_file(sd, str(path))
    with pytest.raises(CheckpointError, match=f"missing the DoSSR {component}|not a DoSSR checkpoint"):
        load_dossr(str(path))


def test_missing_keys_inside_a_component_are_listed(tmp_path, tiny_sd):
    sd = {k: v for k, v in tiny_sd.items() if "control_model.middle_block_out" not in k}
    path = tmp_path / "partial.safetensors"
    safetensors.torch.save_file(sd, str(path))
    with pytest.raises(CheckpointError, match=r"ControlNet weights do not match: 2 missing \(e.g. \['middle_block_out.0.bias'"):
        load_dossr(str(path))


def test_a_plain_sd_checkpoint_is_refused_and_described(tmp_path, tiny_sd):
    sd = {k: v for k, v in tiny_sd.items() if k.startswith(("model.", "first_stage_model.", "cond_stage_model."))}
    path = tmp_path / "v2-1_512.safetensors"
    safetensors.torch.save_file(sd, str(path))
    with pytest.raises(CheckpointError, match="not a DoSSR checkpoint: it looks like a Stable Diffusion checkpoint"):
        load_dossr(str(path))


def test_a_standard_controlnet_with_a_hint_encoder_is_refused(tmp_path, tiny_sd):
    sd = dict(tiny_sd)
    sd["control_model.input_blocks.0.0.weight"] = torch.zeros(32, 4, 3, 3)
    path = tmp_path / "x.safetensors"
    safetensors.torch.save_file(sd, str(path))
    with pytest.raises(CheckpointError, match="first conv takes 4 channels; a DiffBIR/DoSSR ControlNet takes 8"):
        load_dossr(str(path))


def test_truncated_corrupt_empty_and_pickled_files_give_clear_errors(tmp_path, tiny_sd):
    full = tmp_path / "full.ckpt"
    cf.write_torch_checkpoint(full, tiny_sd)
    data = full.read_bytes()
    (tmp_path / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.ckpt is a truncated PyTorch checkpoint"):
        load_dossr(str(tmp_path / "truncated.ckpt"))
    st = tmp_path / "cut.safetensors"
    safetensors.torch.save_file({k: v for k, v in list(tiny_sd.items())[:50]}, str(st))
    st.write_bytes(st.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="cut.safetensors is a truncated safetensors file"):
        load_dossr(str(st))
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_dossr(str(tmp_path / "empty.ckpt"))
    evil = tmp_path / "evil.ckpt"
    with open(evil, "wb") as f:
        pickle.dump({"state_dict": tiny_sd, "hook": Exploding()}, f)
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        load_dossr(str(evil))
    assert not Exploding.ran
    with pytest.raises(CheckpointError, match="not found"):
        load_dossr(str(tmp_path / "nope.ckpt"))


class Exploding:
    ran = False

    def __reduce__(self):
        return (Exploding._run, ())

    @staticmethod
    def _run():
        Exploding.ran = True


@pytest.mark.slow
def test_real_size_dossr_checkpoint_loads_with_no_missing_or_unexpected_keys(tmp_path):
    """Full SD 2.1 dimensions and every official prefix; fp16 on disk like the released files' weights.
    Zeros: only the layout is under test here (random weights: the tiny checkpoints' tests)."""
    sd = cf.zeros_like_layout(cf.dossr_state_dict("real", dtype=torch.float16, device="meta"))
    counts = {c: sum(v.numel() for k, v in sd.items() if k.startswith(p)) for c, p in COMPONENTS.items()}
    assert counts["UNet"] == 865_910_724 and counts["ESRGAN preprocessor"] == 16_697_987
    path = tmp_path / "dossr_default.ckpt"
    cf.write_torch_checkpoint(path, sd)
    del sd
    parts = load_dossr(str(path))  # check_keys inside raises on any missing/unexpected key or shape
    assert type(parts.model.model.model_config).__name__ == "SD20"
    assert parts.model.model.model_type.name == "EPS"
    assert parts.control_net.control_model.input_blocks[0][0].weight.shape == (320, 8, 3, 3)
    assert parts.clip.cond_stage_model.clip_h.transformer.text_model.encoder.layers.__len__() == 24
    assert parts.upscale_model.scale == 4
