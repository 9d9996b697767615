"""TADSR nodes inside a real ComfyUI server: stock Load Checkpoint (tiny SD 2.1-base layout), the
official tadsr.pkl / time_vae/ layouts (tiny), stock VAE Decode (Tiled)."""
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from support import comfy_live
from support.comfy_live import ExecutionFailed, PromptRejected

SAMPLE = comfy_live.PACK_DIR / "workflows" / "assets" / "chelsea_lr.png"
SD21_BASE = "v2-1_512-ema-pruned.safetensors"


@pytest.fixture(scope="module")
def lr_image(comfy, shipped_models):
    shutil.copy(SAMPLE, comfy.input_dir / SAMPLE.name)
    return SAMPLE.name


def tadsr_prompt(image, t_s=500, mode="sample", cfg=1.0, decode="VAEDecodeTiled"):
    decoder = {"samples": ["9", 0], "vae": ["2", 1]}
    if decode == "VAEDecodeTiled":
        decoder.update(tile_size=256, overlap=64, temporal_size=64, temporal_overlap=8)
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD21_BASE}},
        "2": {"class_type": "TimeAwareSR_LoadTADSR", "inputs": {"model": ["1", 0], "tadsr_name": "tadsr.pkl",
                                                               "time_vae": "time_vae", "strength": 1.0}},
        "3": {"class_type": "LoadImage", "inputs": {"image": image}},
        "4": {"class_type": "ImageScaleBy", "inputs": {"image": ["3", 0], "upscale_method": "bicubic", "scale_by": 4.0}},
        "5": {"class_type": "TimeAwareSR_TADSREncode", "inputs": {"image": ["4", 0], "vae": ["2", 1], "t_s": t_s,
                                                                 "mode": mode, "seed": 42}},
        "6": {"class_type": "TimeAwareSR_TADSROneStep", "inputs": {"model": ["2", 0], "t_s": t_s}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
        "8": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "9": {"class_type": "SamplerCustom", "inputs": {
            "model": ["2", 0], "add_noise": False, "noise_seed": 0, "cfg": cfg, "positive": ["7", 0],
            "negative": ["8", 0], "sampler": ["6", 0], "sigmas": ["6", 1], "latent_image": ["5", 0]}},
        "10": {"class_type": decode, "inputs": decoder},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "tadsr_live"}},
    }


def saved(comfy, outputs, node_id="11"):
    [im] = outputs[node_id]["images"]
    return np.asarray(Image.open(io.BytesIO(comfy.fetch_image_bytes(im)))).astype(np.float32) / 255


def test_tadsr_runs_with_stock_checkpoint_loader_and_tiled_decode(comfy, lr_image):
    lr = Image.open(SAMPLE)
    out = saved(comfy, comfy.run(tadsr_prompt(lr_image)))
    assert out.shape == (lr.height * 4, lr.width * 4, 3) and out.std() > 0


def test_t_s_changes_the_picture_and_mean_mode_is_deterministic(comfy, lr_image):
    a = saved(comfy, comfy.run(tadsr_prompt(lr_image, t_s=200, mode="mean", decode="VAEDecode")))
    b = saved(comfy, comfy.run(tadsr_prompt(lr_image, t_s=200, mode="mean", decode="VAEDecode")))
    c = saved(comfy, comfy.run(tadsr_prompt(lr_image, t_s=800, mode="mean", decode="VAEDecode")))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_cfg_above_one_with_a_negative_prompt_runs(comfy, lr_image):
    out = saved(comfy, comfy.run(tadsr_prompt(lr_image, cfg=3.0)))
    assert np.isfinite(out).all() and out.std() > 0


def test_the_step_reports_progress_and_a_preview(comfy, lr_image):
    watched = comfy.run_watched(tadsr_prompt(lr_image))
    assert watched.of_type("execution_success"), watched.messages[-3:]
    assert watched.progress("9") == [(1, 1)]
    assert watched.frames >= 1


@pytest.mark.parametrize("node, t_s", [("5", 0), ("5", 1000), ("6", 1000), ("6", -3)])
def test_t_s_out_of_range_is_rejected_at_prompt_time(comfy, lr_image, node, t_s):
    p = tadsr_prompt(lr_image)
    p[node]["inputs"]["t_s"] = t_s
    with pytest.raises(PromptRejected) as err:
        comfy.run(p)
    assert "t_s" in err.value.messages()


def test_linked_t_s_out_of_range_fails_with_the_same_message(comfy, lr_image):
    p = tadsr_prompt(lr_image)
    p["20"] = {"class_type": "PrimitiveInt", "inputs": {"value": 1200}}
    p["6"]["inputs"]["t_s"] = ["20", 0]
    with pytest.raises(ExecutionFailed, match="t_s must be at least 1 and at most 999, got 1200"):
        comfy.run(p)


def write_image(comfy, name, size, mode):
    rng = np.random.default_rng(0)
    channels = {"L": 1, "RGBA": 4, "RGB": 3}[mode]
    arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(arr[..., 0] if channels == 1 else arr, mode).save(comfy.input_dir / name)
    return name


@pytest.mark.parametrize("mode, size", [("L", (24, 16)), ("RGBA", (24, 16)), ("RGB", (37, 53))])
def test_grayscale_alpha_and_odd_sizes_work(comfy, shipped_models, mode, size):
    name = write_image(comfy, f"tadsr_{mode}_{size[0]}x{size[1]}.png", size, mode)
    out = saved(comfy, comfy.run(tadsr_prompt(name, decode="VAEDecode")))
    # the x4 image is cropped to a multiple of 8 before encoding, as stock VAE Encode does
    assert out.shape == ((size[1] * 4) // 8 * 8, (size[0] * 4) // 8 * 8, 3) and out.std() > 0


def test_a_stock_vae_into_tadsr_encode_is_refused(comfy, lr_image):
    p = tadsr_prompt(lr_image)
    p["5"]["inputs"]["vae"] = ["1", 2]
    with pytest.raises(ExecutionFailed, match="the vae input is not TADSR's time-aware VAE"):
        comfy.run(p)


def test_a_missing_time_vae_folder_and_pkl_are_rejected_by_name(comfy, lr_image):
    p = tadsr_prompt(lr_image)
    p["2"]["inputs"]["time_vae"] = "no_such_vae"
    with pytest.raises(PromptRejected) as err:
        comfy.run(p)
    assert "no_such_vae" in err.value.messages()
    p = tadsr_prompt(lr_image)
    p["2"]["inputs"]["tadsr_name"] = "missing.pkl"
    with pytest.raises(PromptRejected) as err:
        comfy.run(p)
    assert "missing.pkl" in err.value.messages()


def test_a_wrong_pickle_and_a_broken_time_vae_fail_saying_what_they_are(comfy, lr_image, shipped_models):
    import torch

    from support import tadsr_factory

    torch.save({"model.diffusion_model.x": torch.zeros(1)}, str(shipped_models["tadsr"] / "not_tadsr.pkl"))
    p = tadsr_prompt(lr_image)
    p["2"]["inputs"]["tadsr_name"] = "not_tadsr.pkl"
    with pytest.raises(ExecutionFailed, match="Load TADSR: tadsr_name 'not_tadsr.pkl' is not a TADSR checkpoint"):
        comfy.run(p)
    broken = shipped_models["tadsr"] / "broken_vae"
    broken.mkdir(exist_ok=True)
    (broken / "config.json").write_text(json.dumps(tadsr_factory.time_vae_config("tiny")))  # no weights file
    p = tadsr_prompt(lr_image)
    p["2"]["inputs"]["time_vae"] = "broken_vae"
    with pytest.raises(ExecutionFailed, match="Load TADSR: time_vae 'broken_vae' has no weights file"):
        comfy.run(p)


def test_t_s_set_on_the_encoder_alone_drives_the_step(comfy, lr_image):
    """The shipped wiring: TADSR Encode's t_s output into TADSR One-Step. Changing the encoder's widget alone
    moves both the encode and the step: the result equals a run with both set to that value by hand, and
    differs from one whose step kept the old value."""
    def run(encode_t_s, step_t_s):
        prompt = tadsr_prompt(lr_image, t_s=encode_t_s, mode="mean", decode="VAEDecode")
        prompt["6"]["inputs"]["t_s"] = step_t_s
        return saved(comfy, comfy.run(prompt))

    linked = run(300, ["5", 1])
    assert np.array_equal(linked, run(300, 300))
    assert not np.array_equal(linked, run(300, 500))
    assert not np.array_equal(linked, run(500, ["5", 1]))


def test_tadsr_one_step_refuses_a_model_without_tadsrs_weights_and_says_what_to_connect(comfy, lr_image):
    """Plain SD 2.1 (the checkpoint loader's MODEL) in SamplerCustom: its one step would subtract SD's noise
    estimate from a clean latent and return a meaningless picture, so the sampler refuses it."""
    p = tadsr_prompt(lr_image)
    p["9"]["inputs"]["model"] = ["1", 0]
    with pytest.raises(ExecutionFailed, match="TADSR One-Step needs the MODEL from 'Load TADSR'.*Connect Load TADSR's "
                                              "MODEL output there instead"):
        comfy.run(p)
