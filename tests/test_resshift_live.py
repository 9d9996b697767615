"""ResShift / SinSR nodes inside a real ComfyUI server, with tiny official-layout files."""
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from support import comfy_live
from support.comfy_live import ExecutionFailed
from support.comfy_live import load_workflow, workflow_to_prompt

SAMPLE = comfy_live.PACK_DIR / "workflows" / "assets" / "chelsea_lr.png"  # 96 x 64: padded to 128 x 64


@pytest.fixture(scope="module")
def lr_image(comfy, shipped_models):
    shutil.copy(SAMPLE, comfy.input_dir / SAMPLE.name)
    return SAMPLE.name


def prompt(image, ckpt="resshift_realsrx4_s15_v1.pth", steps=2, seed=1, batch=1):
    p = {
        "1": {"class_type": "TimeAwareSR_ResShiftLoader", "inputs": {
            "ckpt_name": ckpt, "vae_name": "autoencoder_vq_f4.pth", "preset": "auto"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": image}},
        "20": {"class_type": "RepeatImageBatch", "inputs": {"image": ["2", 0], "amount": batch}},
        "3": {"class_type": "TimeAwareSR_ResShiftPrepareLR", "inputs": {"image": ["20", 0]}},
        "4": {"class_type": "VAEEncode", "inputs": {"pixels": ["3", 0], "vae": ["1", 1]}},
        "5": {"class_type": "BasicGuider", "inputs": {"model": ["1", 0], "conditioning": ["3", 1]}},
        "6": {"class_type": "TimeAwareSR_ResShiftScheduler", "inputs": {"model": ["1", 0], "steps": steps}},
        "7": {"class_type": "TimeAwareSR_ResShiftSampler", "inputs": {}},
        "8": {"class_type": "RandomNoise", "inputs": {"noise_seed": seed}},
        "9": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": ["8", 0], "guider": ["5", 0], "sampler": ["7", 0], "sigmas": ["6", 0], "latent_image": ["4", 0]}},
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 1]}},
        "11": {"class_type": "TimeAwareSR_ResShiftCropOutput", "inputs": {"image": ["10", 0], "lr_image": ["2", 0]}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "resshift_live"}},
    }
    return p


def saved_images(comfy, outputs, node_id="12"):
    return [np.asarray(Image.open(io.BytesIO(comfy.fetch_image_bytes(im)))).astype(np.float32) / 255
            for im in outputs[node_id]["images"]]


@pytest.mark.parametrize("name", ["resshift_x4", "sinsr_onestep_x4"])
def test_both_shipped_workflows_run_and_give_4x_pictures(comfy, lr_image, name):
    wf = load_workflow(comfy_live.PACK_DIR / "workflows" / f"{name}.json")
    outputs = comfy.run(workflow_to_prompt(wf, comfy.object_info(), {}))
    [out] = [im for node in outputs for im in saved_images(comfy, outputs, node)]
    assert out.shape == (256, 384, 3) and out.std() > 0.02


def test_same_seed_reproduces_and_another_seed_differs(comfy, lr_image):
    a = saved_images(comfy, comfy.run(prompt(lr_image, seed=1)))[0]
    b = saved_images(comfy, comfy.run(prompt(lr_image, seed=1)))[0]
    c = saved_images(comfy, comfy.run(prompt(lr_image, seed=2)))[0]
    assert np.array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-3


def test_batch_of_two_gives_two_distinct_4x_pictures(comfy, lr_image):
    a, b = saved_images(comfy, comfy.run(prompt(lr_image, batch=2)))
    assert a.shape == b.shape == (256, 384, 3)
    assert np.abs(a - b).mean() > 1e-3  # each batch item gets its own noise


def test_ksampler_runs_resshift_from_its_dropdowns_with_progress(comfy, lr_image):
    p = prompt(lr_image)
    for k in ("5", "6", "7", "8", "9"):
        del p[k]
    p["9"] = {"class_type": "KSampler", "inputs": {
        "model": ["1", 0], "seed": 3, "steps": 2, "cfg": 2.0, "sampler_name": "resshift", "scheduler": "resshift",
        "positive": ["3", 1], "negative": ["3", 1], "latent_image": ["4", 0], "denoise": 1.0}}
    watched = comfy.run_watched(p)
    assert watched.progress("9") == [(1, 2), (2, 2)]
    assert any(m["type"] == "execution_success" for m in watched.messages)


def test_one_step_model_gets_its_own_step_count_from_the_preset(comfy, lr_image):
    p = prompt(lr_image, ckpt="SinSR_v1.pth", steps=0)
    watched = comfy.run_watched(p)
    assert watched.progress("9") == [(1, 1)]


def test_a_latent_not_from_the_prepared_lr_is_refused_with_both_sizes(comfy, lr_image):
    p = prompt(lr_image)
    p["9"]["inputs"]["latent_image"] = ["30", 0]
    p["30"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    with pytest.raises(ExecutionFailed, match=r"the LR image in the conditioning is \(64, 128\) pixels but the latent"):
        comfy.run(p)


def test_the_resshift_sampler_refuses_a_model_that_is_not_resshifts_and_says_what_to_connect(comfy, lr_image):
    p = prompt(lr_image)
    p["30"] = {"class_type": "TimeAwareSR_StarterModelLoader", "inputs": {"model_name": "starter_sr.safetensors"}}
    p["5"]["inputs"]["model"] = ["30", 0]  # the schedule still comes from the ResShift loader
    with pytest.raises(ExecutionFailed, match="the ResShift Sampler needs the MODEL of 'Load ResShift / SinSR / "
                                              "TAD-SR' in its guider.*Connect the ResShift loader's MODEL"):
        comfy.run(p)


def test_crop_output_refuses_an_lr_image_that_is_not_the_one_prepared(comfy, lr_image):
    p = prompt(lr_image)
    p["31"] = {"class_type": "ImageScale", "inputs": {"image": ["2", 0], "upscale_method": "bicubic", "width": 60,
                                                      "height": 64, "crop": "disabled"}}
    p["11"]["inputs"]["lr_image"] = ["31", 0]  # 60 px wide pads to 64, not to the prepared 128
    with pytest.raises(ExecutionFailed, match="an lr_image of 60x64 px gives a decoded result of 256x256 px.*connect "
                                              "to lr_image the same image that went into 'ResShift Prepare LR'"):
        comfy.run(p)
