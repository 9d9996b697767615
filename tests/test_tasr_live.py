"""TASR inside a real ComfyUI server: stock Load Checkpoint (tiny SD 2.1-base), stock Load Upscale
Model (BSRNet), Load TASR, Apply TASR Adapters, KSampler's ddpm + tasr_spaced entries."""
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from support import ckpt_factory, comfy_live
from support.comfy_live import ExecutionFailed

SAMPLE = comfy_live.PACK_DIR / "workflows" / "assets" / "chelsea_lr.png"
NEGATIVE = "low quality, blurry, low-resolution, noisy, unsharp, weird textures"


@pytest.fixture(scope="module")
def lr_image(comfy, shipped_models):
    shutil.copy(SAMPLE, comfy.input_dir / SAMPLE.name)
    return SAMPLE.name


def front(image, tasr=True):
    """SD 2.1 + BSRNet x4 of a 32 px crop (the test SD 2.1 has a real-size VAE: small images keep CPU runs
    short) + the ControlNet applied with the SD VAE; a zero latent of the image's size."""
    p = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt_factory.SD21_BASE_FILE}},
        "2": {"class_type": "TimeAwareSR_TASRLoader", "inputs": {"tasr_name": "tasr_v1.pth"}},
        "3": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "BSRNet.pth"}},
        "4": {"class_type": "LoadImage", "inputs": {"image": image}},
        "6": {"class_type": "ImageCrop", "inputs": {"image": ["4", 0], "width": 32, "height": 32, "x": 24, "y": 16}},
        "5": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["3", 0], "image": ["6", 0]}},
        "8": {"class_type": "CLIPTextEncode", "inputs": {"text": "high quality, clear text", "clip": ["1", 1]}},
        "9": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["1", 1]}},
        "10": {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": ["8", 0], "negative": ["9", 0], "control_net": ["2", 0], "image": ["5", 0], "strength": 1.0,
            "start_percent": 0.0, "end_percent": 1.0, "vae": ["1", 2]}},
        "11": {"class_type": "VAEEncode", "inputs": {"pixels": ["5", 0], "vae": ["1", 2]}},
        "12": {"class_type": "LatentMultiply", "inputs": {"samples": ["11", 0], "multiplier": 0.0}},
    }
    if tasr:
        p["7"] = {"class_type": "TimeAwareSR_ApplyTASRAdapters", "inputs": {"model": ["1", 0], "tasr_adapters": ["2", 1]}}
    return p


def ksampler_prompt(image, tasr=True, steps=8, latent=("12", 0), seed=231):
    p = front(image, tasr)
    p["13"] = {"class_type": "KSampler", "inputs": {
        "model": ["7", 0] if tasr else ["1", 0], "seed": seed, "steps": steps, "cfg": 4.0, "sampler_name": "ddpm", "scheduler": "tasr_spaced",
        "positive": ["10", 0], "negative": ["10", 1], "latent_image": list(latent), "denoise": 1.0}}
    p["14"] = {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["1", 2]}}
    p["15"] = {"class_type": "SaveImage", "inputs": {"images": ["14", 0], "filename_prefix": "tasr_live"}}
    return p


def custom_prompt(image, steps=8, seed=231):
    p = front(image)
    p.update({
        "13": {"class_type": "CFGGuider", "inputs": {"model": ["7", 0], "positive": ["10", 0], "negative": ["10", 1],
                                                     "cfg": 4.0}},
        "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "ddpm"}},
        "17": {"class_type": "BasicScheduler", "inputs": {"model": ["7", 0], "scheduler": "tasr_spaced", "steps": steps,
                                                          "denoise": 1.0}},
        "18": {"class_type": "RandomNoise", "inputs": {"noise_seed": seed}},
        "19": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": ["18", 0], "guider": ["13", 0], "sampler": ["16", 0], "sigmas": ["17", 0], "latent_image": ["12", 0]}},
        "14": {"class_type": "VAEDecode", "inputs": {"samples": ["19", 0], "vae": ["1", 2]}},
        "15": {"class_type": "SaveImage", "inputs": {"images": ["14", 0], "filename_prefix": "tasr_custom"}},
    })
    return p


def saved_images(comfy, outputs, node_id="15"):
    return [np.asarray(Image.open(io.BytesIO(comfy.fetch_image_bytes(im)))).astype(np.float32) / 255
            for im in outputs[node_id]["images"]]


def test_tasr_runs_from_ksampler_and_sampler_custom_advanced_alike(comfy, lr_image):
    [ks] = saved_images(comfy, comfy.run(ksampler_prompt(lr_image)))
    [custom] = saved_images(comfy, comfy.run(custom_prompt(lr_image)))
    assert ks.shape == (128, 128, 3) and ks.std() > 0.01
    assert np.array_equal(ks, custom)  # same noise, same ddpm steps on the tasr_spaced sigmas


def test_a_graph_without_tasr_gives_the_unpatched_result_before_and_after(comfy, lr_image):
    [plain] = saved_images(comfy, comfy.run(ksampler_prompt(lr_image, tasr=False, steps=4, seed=5)))
    [gated] = saved_images(comfy, comfy.run(ksampler_prompt(lr_image, steps=4, seed=5)))
    again = comfy.run_watched(ksampler_prompt(lr_image, tasr=False, steps=4, seed=5))
    assert again.progress("13")  # sampled again, not taken from ComfyUI's cache
    outputs = comfy.wait(again.prompt_id)["outputs"]  # history is written just after the websocket's success message
    assert np.abs(gated - plain).max() > 1 / 255  # the adapters change the picture
    assert np.array_equal(saved_images(comfy, outputs)[0], plain)  # and leave nothing behind in MODEL / CONTROL_NET


def test_cfg_with_a_batch_of_two(comfy, lr_image):
    p = ksampler_prompt(lr_image, steps=3, latent=("20", 0))
    p["20"] = {"class_type": "RepeatLatentBatch", "inputs": {"samples": ["12", 0], "amount": 2}}
    first, second = saved_images(comfy, comfy.run(p))
    assert first.shape == second.shape == (128, 128, 3)
    assert np.abs(first - second).max() > 1 / 255  # two noises, two pictures


def test_an_interrupted_run_then_the_same_graph_gives_the_uninterrupted_result(comfy, lr_image):
    reference = saved_images(comfy, comfy.run(ksampler_prompt(lr_image, steps=4, seed=9)))[0]
    comfy.drop_cached_results()  # else a cache that keeps earlier prompts serves `again` without running it
    watched = comfy.run_watched(ksampler_prompt(lr_image, steps=300, seed=9), interrupt_at_step=2)
    assert watched.of_type("execution_interrupted")
    assert max(v for v, _ in watched.progress("13")) < 300
    again = comfy.run_watched(ksampler_prompt(lr_image, steps=4, seed=9))
    assert again.progress("13")  # it really ran again
    outputs = comfy.wait(again.prompt_id)["outputs"]  # history is written just after the websocket's success message
    assert np.array_equal(saved_images(comfy, outputs)[0], reference)


def test_apply_controlnet_without_the_vae_fails_naming_it(comfy, lr_image):
    p = ksampler_prompt(lr_image, steps=2)
    del p["10"]["inputs"]["vae"]
    with pytest.raises(ExecutionFailed, match="vae: the TASR ControlNet encodes its hint image with the SD 2.1 VAE"):
        comfy.run(p)


def test_a_dossr_checkpoint_in_the_tasr_folder_fails_saying_what_it_is(comfy, lr_image, shipped_models):
    link = shipped_models["tasr"] / "not_tasr.ckpt"
    if not link.exists():
        shutil.copy(shipped_models["dossr"] / "dossr_default.ckpt", link)
    p = ksampler_prompt(lr_image, steps=2)
    p["2"]["inputs"]["tasr_name"] = "not_tasr.ckpt"
    with pytest.raises(ExecutionFailed, match="Load TASR: tasr_name 'not_tasr.ckpt' is not a TASR checkpoint: it looks "
                                              "like a ControlNet"):
        comfy.run(p)
