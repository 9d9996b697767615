"""The test-checkpoint factory writes the real released layouts: ComfyUI's own model detection,
which was written against the real files, is the independent judge."""
import pytest
import safetensors.torch
import torch

import comfy.model_base
import comfy.model_detection
from support import ckpt_factory as cf

STRUCTURE_KEYS = ["in_channels", "out_channels", "num_res_blocks", "channel_mult", "transformer_depth",
                  "transformer_depth_output", "transformer_depth_middle", "use_linear_in_transformer",
                  "context_dim", "adm_in_channels"]


@pytest.mark.parametrize("arch", ["sd15", "sd21", "sdxl"])
def test_tiny_layout_has_exactly_the_real_keys(arch):
    real = cf.unet_state_dict(arch, "real", device="meta")
    tiny = cf.unet_state_dict(arch, "tiny")
    assert set(tiny) == set(real)
    assert all(tiny[k].ndim == real[k].ndim for k in real)


@pytest.mark.parametrize("arch, expected", [("sd15", "SD15"), ("sd21", "SD20"), ("sdxl", "SDXL")])
def test_real_size_layout_is_recognised_by_comfyui(arch, expected):
    real = cf.unet_state_dict(arch, "real", device="meta")
    config = comfy.model_detection.detect_unet_config(real, cf.UNET_PREFIX)
    model_config = comfy.model_detection.model_config_from_unet_config(config)
    assert type(model_config).__name__ == expected
    assert config["model_channels"] == 320


@pytest.mark.parametrize("arch", ["sd15", "sd21", "sdxl"])
def test_comfyui_detects_the_tiny_structure_it_was_built_with(arch):
    path = cf.tiny_unet_checkpoint(arch)
    config = comfy.model_detection.detect_unet_config(safetensors.torch.load_file(str(path)), cf.UNET_PREFIX)
    expected = cf.unet_config(arch, "tiny")
    assert {k: config[k] for k in STRUCTURE_KEYS} == {k: expected[k] for k in STRUCTURE_KEYS}
    assert config["model_channels"] == 32


@pytest.mark.slow
@pytest.mark.parametrize("prediction, model_type", [("v", comfy.model_base.ModelType.V_PREDICTION),
                                                    ("eps", comfy.model_base.ModelType.EPS)])
def test_real_size_sd21_weights_load_and_prediction_type_is_detected(prediction, model_type):
    sd = cf.unet_state_dict("sd21", "real", prediction=prediction, dtype=torch.float16)
    assert sum(v.numel() for v in sd.values()) == 865_910_724  # SD 2.1 UNet parameter count
    model_config = comfy.model_detection.model_config_from_unet(sd, cf.UNET_PREFIX)
    assert type(model_config).__name__ == "SD20"
    assert model_config.model_type(sd, cf.UNET_PREFIX) == model_type


def test_cached_checkpoint_is_reused_and_tiny_unets_run():
    path = cf.tiny_unet_checkpoint("sd21", "v")
    assert cf.tiny_unet_checkpoint("sd21", "v") == path
    unet = cf.build_unet("sd21")
    unet.load_state_dict({k[len(cf.UNET_PREFIX):]: v for k, v in safetensors.torch.load_file(str(path)).items()})
    out = unet(torch.randn(1, 4, 16, 16), torch.tensor([500.0]), context=torch.randn(1, 3, cf.TINY_CONTEXT))
    assert out.shape == (1, 4, 16, 16) and torch.isfinite(out).all() and out.std() > 0
