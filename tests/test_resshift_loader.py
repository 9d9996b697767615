"""Loading ResShift / SinSR / TAD-SR files and the VQ-f4 autoencoder; clear errors for wrong files."""
import pytest
import torch

from support import ckpt_factory
from support import resshift_factory as factory
from timeaware_sr.clear_errors import CheckpointError
from timeaware_sr.model_patches.resshift.checkpoint import load_resshift, preset_from_filename


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("resshift")
    unet, vq = factory.unet_state_dict("tiny"), factory.vq_state_dict("tiny")
    return {
        "raw": factory.write_pth(d / "resshift_realsrx4_s4_v3.pth", unet),
        "wrapped": factory.write_pth(d / "SinSR_v1.pth", unet, wrap="state_dict", prefix="module._orig_mod."),
        "vq": factory.write_pth(d / "autoencoder_vq_f4.pth", vq),
        "dir": d, "unet": unet,
    }


@pytest.mark.parametrize("key, preset", [("raw", "resshift_v3"), ("wrapped", "sinsr")])
def test_official_files_load_with_the_preset_read_from_the_file_name(files, key, preset):
    model, vae, used = load_resshift(str(files[key]), str(files["vq"]))
    assert used == preset
    ms = model.get_model_object("model_sampling")
    assert ms.preset_name == preset and len(ms.sigmas) == (4 if preset == "resshift_v3" else 15)
    loaded = model.model.diffusion_model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in files["unet"].items())  # every tensor, buffers included
    assert vae.latent_channels == 3 and vae.downscale_ratio == 4


def test_an_explicit_preset_overrides_the_file_name(files):
    model, _, used = load_resshift(str(files["raw"]), str(files["vq"]), "tad_sr")
    assert used == "tad_sr" and model.get_model_object("model_sampling").preset_steps == 1


def test_file_names_of_the_releases_map_to_their_presets():
    assert preset_from_filename("resshift_realsrx4_s15_v1.pth") == "resshift_v1"
    assert preset_from_filename("resshift_realsrx4_s15_v2.pth") == "resshift_v1"
    assert preset_from_filename("resshift_realsrx4_s4_v3.pth") == "resshift_v3"
    assert preset_from_filename("SinSR_v1.pth") == "sinsr"
    assert preset_from_filename("TAD-SR_x4.pth") == "tad_sr"
    assert preset_from_filename("model.pth") is None


def test_an_unknown_file_name_with_auto_asks_for_a_preset(files):
    path = factory.write_pth(files["dir"] / "my_model.pth", files["unet"])
    with pytest.raises(CheckpointError, match="cannot tell the schedule from the file name 'my_model.pth'"):
        load_resshift(str(path), str(files["vq"]))


def test_an_sd_checkpoint_is_refused_as_a_network(files):
    path = files["dir"] / "sd15.pth"
    torch.save({"state_dict": {"model.diffusion_model." + k: v for k, v in
                               ckpt_factory.unet_state_dict("sd15", "tiny").items()}}, path)
    with pytest.raises(CheckpointError, match=r"sd15.pth is not a ResShift / SinSR / TAD-SR network: it looks like a "
                                              r"Stable Diffusion checkpoint"):
        load_resshift(str(path), str(files["vq"]), "resshift_v1")


def test_a_dossr_checkpoint_is_refused(files):
    path = files["dir"] / "dossr_default.ckpt"
    ckpt_factory.write_torch_checkpoint(path, ckpt_factory.dossr_state_dict("tiny"))
    with pytest.raises(CheckpointError, match=r"dossr_default.ckpt is not a ResShift .* ControlNet"):
        load_resshift(str(path), str(files["vq"]), "resshift_v1")


def test_a_truncated_file_is_refused(files):
    path = files["dir"] / "resshift_truncated.pth"
    data = files["raw"].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="resshift_truncated.pth is a truncated PyTorch checkpoint"):
        load_resshift(str(path), str(files["vq"]))


def test_weights_that_disagree_with_the_network_read_off_the_file_are_refused(files):
    sd = dict(files["unet"])
    sd["output_blocks.0.0.in_layers.2.weight"] = torch.zeros(64, 96, 3, 3)  # one conv of another width
    path = factory.write_pth(files["dir"] / "resshift_bad.pth", sd)
    with pytest.raises(CheckpointError, match=r"resshift_bad.pth: the ResShift network weights have wrong shapes, e.g. "
                                              r"output_blocks.0.0.in_layers.2.weight: \(64, 96, 3, 3\) in the file"):
        load_resshift(str(path), str(files["vq"]))
    del sd["output_blocks.0.0.in_layers.2.weight"]
    path = factory.write_pth(files["dir"] / "resshift_missing.pth", sd)
    with pytest.raises(CheckpointError, match=r"1 missing \(e.g. \['output_blocks.0.0.in_layers.2.weight'\]\)"):
        load_resshift(str(path), str(files["vq"]))


def test_a_network_without_the_lr_concat_is_refused(files):
    sd = dict(files["unet"])
    sd["input_blocks.0.0.weight"] = sd["input_blocks.0.0.weight"][:, :3]
    path = factory.write_pth(files["dir"] / "resshift_nolq.pth", sd)
    with pytest.raises(CheckpointError, match="first convolution takes 3 channels; a ResShift x4 network takes 6"):
        load_resshift(str(path), str(files["vq"]))


def test_swapped_network_and_autoencoder_files_say_which_is_which(files):
    with pytest.raises(CheckpointError, match="that is the VQ-f4 autoencoder: choose it as vae_name"):
        load_resshift(str(files["vq"]), str(files["vq"]), "resshift_v1")
    with pytest.raises(CheckpointError, match="resshift_realsrx4_s4_v3.pth is not the VQGAN f4 autoencoder"):
        load_resshift(str(files["raw"]), str(files["raw"]))
