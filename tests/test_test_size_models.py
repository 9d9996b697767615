"""The test-size SD models (tests/support/test_size_models.py): stock ComfyUI loaders accept the
factories' tiny files in the test process and in the live server, and the pack's own loader code
has no test-size path of its own."""
import comfy.model_base
import comfy.model_detection
import comfy.sd
import comfy.supported_models
import comfy.utils
import pytest
import torch

from support import ckpt_factory as cf
from support import test_size_models
from timeaware_sr.clear_errors import CheckpointError
from timeaware_sr.model_patches.sd_components import build_unet


def test_stock_load_checkpoint_reads_the_tiny_sd21_base_file():
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(cf.sd21_base_checkpoint("tiny")))
    assert type(model.model.model_config).__name__ == "TestSizeSD"
    assert model.model.model_type == comfy.model_base.ModelType.EPS
    assert model.model.diffusion_model.model_channels == 32
    cond = clip.encode_from_tokens(clip.tokenize("a photo"))
    assert cond.shape == (1, 77, test_size_models.TEST_TEXT_WIDTH)
    image = vae.decode(torch.zeros(1, 4, 4, 6))
    assert image.shape == (1, 32, 48, 3)
    # every weight in the file was used: UNet, VAE and text tower loaded without leftovers
    sd = comfy.utils.load_torch_file(str(cf.sd21_base_checkpoint("tiny")))
    unet_keys = {k for k in sd if k.startswith(cf.UNET_PREFIX)}
    assert {cf.UNET_PREFIX + k for k in model.model.diffusion_model.state_dict()} == unet_keys


def test_released_sizes_still_match_comfyuis_own_configs():
    # The test config is appended last and only takes narrower-than-released UNets.
    for arch, family in [("sd15", "SD15"), ("sd21", "SD20"), ("sdxl", "SDXL")]:
        sd = {k[len(cf.UNET_PREFIX):]: v for k, v in cf.unet_state_dict(arch, "real", device="meta").items()}
        config = comfy.model_detection.detect_unet_config(sd, "")
        first = next(c for c in comfy.supported_models.models if c.matches(config, sd))
        assert first.__name__ == family


def test_without_the_test_configs_the_pack_refuses_a_tiny_unet_by_size():
    registered = test_size_models.register()
    sd = {k[len(cf.UNET_PREFIX):]: v for k, v in cf.unet_state_dict("sd21", "tiny").items()}
    for config in registered:
        comfy.supported_models.models.remove(config)
    try:
        with pytest.raises(CheckpointError, match="not a released SD1.x/SD2.x/SDXL size"):
            build_unet(sd)
    finally:
        test_size_models.register()
    assert build_unet(sd).model.diffusion_model.model_channels == 32


def test_live_stock_graph_runs_on_the_tiny_sd21_base(comfy, shipped_models):
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": cf.SD21_BASE_FILE}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a photo", "clip": ["1", 1]}},
        "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
        "4": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["2", 0],
                                                   "latent_image": ["3", 0], "seed": 1, "steps": 1, "cfg": 1.0,
                                                   "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "tiny_sd21"}},
    }
    outputs = comfy.run(prompt)
    [path] = comfy.output_images(outputs, "6")
    from PIL import Image

    assert Image.open(path).size == (64, 48)


def test_stock_load_checkpoint_reads_the_stand_in_sd21_base_with_its_narrow_vae():
    """The shipped workflows' SD 2.1-base stand-in: no attention at the first level, a 32-wide VAE."""
    path = cf.sd21_base_checkpoint("stand-in")
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(path))
    unet = model.model.diffusion_model
    assert unet.model_channels == 32 and len(unet.input_blocks[1]) == 1 and len(unet.input_blocks[4]) == 2
    assert [len(b) for b in unet.output_blocks[9:]] == [1, 1, 1] and len(unet.output_blocks[8]) == 3  # + upsample
    assert vae.first_stage_model.encoder.conv_in.weight.shape[0] == 32
    sd = comfy.utils.load_torch_file(str(path))
    vae_sd = {k[len("first_stage_model."):]: v for k, v in sd.items() if k.startswith("first_stage_model.")}
    assert vae.first_stage_model.state_dict().keys() == vae_sd.keys()  # every VAE weight used, none missing
    image = torch.rand(1, 48, 64, 3)
    assert vae.decode(vae.encode(image)).shape == (1, 48, 64, 3)


def test_the_vae_hook_leaves_released_vaes_and_explicit_configs_alone():
    real = cf.vae_state_dict("real")
    assert test_size_models.narrow_vae_config(real) is None
    assert comfy.sd.VAE(sd=real).first_stage_model.encoder.conv_in.weight.shape[0] == 128
    assert test_size_models.narrow_vae_config(cf.vae_state_dict("tiny"))["params"]["ddconfig"]["ch"] == 32



WRITE_STAND_INS = """
import pathlib, sys
sys.path.insert(0, sys.argv[1])
from support import env, shipped_models
env.setup(cpu=True)
import timeaware_sr
root = pathlib.Path(sys.argv[2])
folders = {n: root / n for n in ["checkpoints", "diffusion_models", "upscale_models", *timeaware_sr.MODEL_FOLDERS]}
for folder in folders.values():
    folder.mkdir(parents=True)
shipped_models.write_all(folders)
print("\\n".join(shipped_models.fingerprints(folders)))
"""


def test_every_shipped_stand_in_is_the_same_in_every_process(shipped_models, tmp_path):
    """Workflow outputs are compared across processes (tools/workflow_fingerprints.py), so no stand-in may
    depend on Python's per-process string hashing (the order of a set): the session's stand-ins equal
    those a writer with another hash seed makes."""
    import os
    import subprocess
    import sys

    from support import shipped_models as shipped

    seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    run = subprocess.run([sys.executable, "-c", WRITE_STAND_INS, os.path.dirname(os.path.abspath(__file__)),
                          str(tmp_path)], env=dict(os.environ, PYTHONHASHSEED=seed), capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    there = dict(line.rsplit(" ", 1) for line in run.stdout.splitlines())
    here = dict(line.rsplit(" ", 1) for line in shipped.fingerprints(shipped_models))  # other tests add files here
    assert len(there) >= 10
    assert {name: here.get(name) for name in there} == there
