"""DoSSR nodes and KSampler entries inside a real ComfyUI server, with a tiny DoSSR-layout checkpoint."""
import io
import shutil

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image

from support import comfy_live
from support.comfy_live import ExecutionFailed, PromptRejected

SAMPLE = comfy_live.PACK_DIR / "workflows" / "assets" / "chelsea_lr.png"


@pytest.fixture(scope="module")
def lr_image(comfy, shipped_models):
    shutil.copy(SAMPLE, comfy.input_dir / SAMPLE.name)
    return SAMPLE.name


def lr_latent_graph(image):
    """Loader, LR image -> ESRGAN x4 -> VAE encode, and the two prompts."""
    return {
        "1": {"class_type": "TimeAwareSR_DoSSRCheckpointLoader", "inputs": {"ckpt_name": "dossr_default.ckpt"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": image}},
        "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["1", 4], "image": ["2", 0]}},
        "5": {"class_type": "VAEEncode", "inputs": {"pixels": ["3", 0], "vae": ["1", 2]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "clean, high-resolution, 8k", "clip": ["1", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
    }


def ksampler_prompt(image, sampler="dossr", scheduler="dossr", steps=5, latent=("5", 0)):
    p = lr_latent_graph(image)
    p["8"] = {"class_type": "KSampler", "inputs": {
        "model": ["1", 0], "seed": 7, "steps": steps, "cfg": 1.0, "sampler_name": sampler, "scheduler": scheduler,
        "positive": ["6", 0], "negative": ["7", 0], "latent_image": list(latent), "denoise": 1.0}}
    p["9"] = {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}}
    p["10"] = {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "dossr_ks"}}
    return p


def custom_prompt(image, order=3, steps=5, t1=500, latent=("5", 0)):
    p = lr_latent_graph(image)
    p.update({
        "8": {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": ["6", 0], "negative": ["7", 0], "control_net": ["1", 3], "image": ["3", 0],
            "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
        "9": {"class_type": "CFGGuider", "inputs": {"model": ["1", 0], "positive": ["8", 0], "negative": ["8", 1], "cfg": 1.0}},
        "10": {"class_type": "TimeAwareSR_DoSSRScheduler", "inputs": {"model": ["1", 0], "steps": steps, "t1": t1}},
        "11": {"class_type": "TimeAwareSR_DoSSRSampler", "inputs": {"order": order, "t1": t1}},
        "12": {"class_type": "RandomNoise", "inputs": {"noise_seed": 3}},
        "13": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": ["12", 0], "guider": ["9", 0], "sampler": ["11", 0], "sigmas": ["10", 0], "latent_image": list(latent)}},
        "14": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["1", 2]}},
        "15": {"class_type": "SaveImage", "inputs": {"images": ["14", 0], "filename_prefix": "dossr_custom"}},
    })
    return p


def saved_image(comfy, outputs, node_id):
    [im] = outputs[node_id]["images"]
    return np.asarray(Image.open(io.BytesIO(comfy.fetch_image_bytes(im)))).astype(np.float32) / 255


def test_dossr_is_in_ksamplers_sampler_and_scheduler_lists(comfy):
    ks = comfy.object_info()["KSampler"]["input"]["required"]
    sampler_options, scheduler_options = ks["sampler_name"][0], ks["scheduler"][0]
    assert sampler_options.count("dossr") == 1 and scheduler_options.count("dossr") == 1
    assert "euler" in sampler_options and "karras" in scheduler_options  # appended, nothing replaced


def test_ksampler_dossr_entries_equal_the_dossr_node_graph(comfy, lr_image):
    """KSampler with dossr / dossr (its defaults: order 3, t1 500) and the Scheduler + Sampler nodes
    with the same seed, CFG 1 and conditioning compute the same thing: the saved PNGs are identical."""
    ks = saved_image(comfy, comfy.run(ksampler_prompt(lr_image)), "10")
    p = lr_latent_graph(lr_image)
    p.update({
        "9": {"class_type": "CFGGuider", "inputs": {"model": ["1", 0], "positive": ["6", 0], "negative": ["7", 0], "cfg": 1.0}},
        "10": {"class_type": "TimeAwareSR_DoSSRScheduler", "inputs": {"model": ["1", 0], "steps": 5, "t1": 500}},
        "11": {"class_type": "TimeAwareSR_DoSSRSampler", "inputs": {"order": 3, "t1": 500}},
        "12": {"class_type": "RandomNoise", "inputs": {"noise_seed": 7}},
        "13": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": ["12", 0], "guider": ["9", 0], "sampler": ["11", 0], "sigmas": ["10", 0], "latent_image": ["5", 0]}},
        "14": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["1", 2]}},
        "15": {"class_type": "SaveImage", "inputs": {"images": ["14", 0], "filename_prefix": "dossr_nodes"}},
    })
    nodes = saved_image(comfy, comfy.run(p), "15")
    assert ks.shape == (256, 384, 3) and np.array_equal(ks, nodes)
    p["12"]["inputs"]["noise_seed"] = 8
    assert not np.array_equal(saved_image(comfy, comfy.run(p), "15"), ks)  # the comparison can fail


@pytest.mark.parametrize("order", [1, 2, 3])
def test_dossr_sampler_and_scheduler_nodes_run_with_the_controlnet(comfy, lr_image, order):
    out = saved_image(comfy, comfy.run(custom_prompt(lr_image, order=order)), "15")
    without = custom_prompt(lr_image, order=order)
    without["9"]["inputs"].update(positive=["6", 0], negative=["7", 0])  # the ControlNet bypassed
    assert out.shape == (256, 384, 3)
    # the ControlNet reaches the result: more than PNG rounding (1/255) apart somewhere
    assert np.abs(out - saved_image(comfy, comfy.run(without), "15")).max() > 2 / 255


def test_the_controlnet_works_with_cfg_above_one(comfy, lr_image):
    """CFG > 1 batches cond and uncond together; the hint latent must follow that batch."""
    p = custom_prompt(lr_image)
    p["9"]["inputs"]["cfg"] = 4.0
    out = saved_image(comfy, comfy.run(p), "15")
    assert out.shape == (256, 384, 3) and np.isfinite(out).all()


def test_same_seed_same_result_and_orders_differ(comfy, lr_image):
    a = saved_image(comfy, comfy.run(custom_prompt(lr_image, order=3, steps=4)), "15")
    b = saved_image(comfy, comfy.run(custom_prompt(lr_image, order=3, steps=4)), "15")
    c = saved_image(comfy, comfy.run(custom_prompt(lr_image, order=1, steps=4)), "15")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_an_empty_latent_is_refused_with_a_clear_message(comfy, lr_image):
    p = custom_prompt(lr_image, latent=("20", 0))
    p["20"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 384, "height": 256, "batch_size": 1}}
    with pytest.raises(ExecutionFailed, match="needs the LR image's latent as its input latent"):
        comfy.run(p)


def test_a_latent_with_the_wrong_channel_count_is_refused(comfy, lr_image):
    latent = torch.randn(1, 16, 32, 48)
    safetensors.torch.save_file({"latent_tensor": latent, "latent_format_version_0": torch.tensor([])},
                                str(comfy.input_dir / "sd3_like.latent"))
    p = ksampler_prompt(lr_image, latent=("20", 0))
    p["20"] = {"class_type": "LoadLatent", "inputs": {"latent": "sd3_like.latent"}}
    with pytest.raises(ExecutionFailed, match="LR latent has 16 channels but this model's latents have 4"):
        comfy.run(p)


@pytest.mark.parametrize("change, names", [
    ({"10": {"steps": 500}}, "steps must be below t1 (500), got 500"),
    ({"11": {"order": 4}}, "order"),
    ({"10": {"t1": 1}}, "t1"),
])
def test_bad_parameters_are_rejected_before_running_and_named(comfy, lr_image, change, names):
    p = custom_prompt(lr_image)
    for node, values in change.items():
        p[node]["inputs"].update(values)
    with pytest.raises(PromptRejected) as err:
        comfy.run(p)
    assert names in err.value.messages()


def test_a_missing_checkpoint_is_rejected_with_its_folder(comfy, lr_image, test_model_dirs):
    p = custom_prompt(lr_image)
    p["1"]["inputs"]["ckpt_name"] = "dossr_onestep.ckpt"
    with pytest.raises(PromptRejected) as err:
        comfy.run(p)
    assert "dossr_onestep.ckpt" in err.value.messages()
    assert "is not in models/dossr/" in err.value.messages()  # where the user should put it
    assert str(test_model_dirs["dossr"]) not in err.value.messages()  # named without the local path


def test_a_wrong_file_in_the_dossr_folder_fails_saying_what_it_is(comfy, lr_image, shipped_models):
    from support import ckpt_factory

    sd = ckpt_factory.unet_state_dict("sd21", "tiny")
    safetensors.torch.save_file(sd, str(shipped_models["dossr"] / "not_dossr.safetensors"))
    p = custom_prompt(lr_image)
    p["1"]["inputs"]["ckpt_name"] = "not_dossr.safetensors"
    with pytest.raises(ExecutionFailed, match="Load DoSSR Checkpoint: ckpt_name 'not_dossr.safetensors' is not a DoSSR "
                                              "checkpoint: it looks like a Stable Diffusion"):
        comfy.run(p)


def tss_dossr_prompt(image, patched=True, **schedule):
    """DoSSR with TSS per-pixel schedules: SDS map of the LR image, model through the patch."""
    p = custom_prompt(image)
    p["16"] = {"class_type": "TimeAwareSR_SDSVarianceMap", "inputs": {"image": ["2", 0]}}
    p["17"] = {"class_type": "TimeAwareSR_TSSSpatialTimestepPatch", "inputs": {"model": ["1", 0]}}
    p["9"]["inputs"]["model"] = ["17", 0] if patched else ["1", 0]
    p["11"]["inputs"].update({"variance_map": ["16", 1], **schedule})
    return p


def test_dossr_with_tss_per_pixel_schedules_runs_and_differs_from_plain_dossr(comfy, lr_image):
    plain = saved_image(comfy, comfy.run(custom_prompt(lr_image)), "15")
    p = tss_dossr_prompt(lr_image, n_min=1.0, n_max=4.0)
    p["9"]["inputs"]["cfg"] = 2.0
    tss = saved_image(comfy, comfy.run(p), "15")
    assert tss.shape == plain.shape and np.isfinite(tss).all()
    p["9"]["inputs"]["cfg"] = 1.0
    assert not np.array_equal(saved_image(comfy, comfy.run(p), "15"), plain)


def test_dossr_with_a_variance_map_needs_the_patched_model(comfy, lr_image):
    with pytest.raises(ExecutionFailed, match="DoSSR sampler needs its model patched for per-pixel timesteps"):
        comfy.run(tss_dossr_prompt(lr_image, patched=False))


@pytest.mark.parametrize("change, message", [
    ({"a_min": 200.0, "a_max": 600.0}, "a_min and a_max must satisfy 0 < a_min <= a_max < 500"),
    ({"n_min": 2.0, "n_max": 1.5}, "n_min and n_max must satisfy 1 <= n_min <= n_max <= 10"),
    ({"n_max": 11.0}, "n_max must be at least 1 and at most 10, got 11"),
])
def test_bad_dossr_tss_parameters_are_rejected_by_name(comfy, lr_image, change, message):
    with pytest.raises(PromptRejected) as err:
        comfy.run(tss_dossr_prompt(lr_image, **change))
    assert message in err.value.messages()


@pytest.mark.parametrize("per_pixel", [False, True], ids=["dossr", "dossr_tss"])
def test_progress_and_latent_previews_reach_the_browser(comfy, lr_image, per_pixel):
    p = tss_dossr_prompt(lr_image) if per_pixel else custom_prompt(lr_image)
    p["10"]["inputs"]["steps"] = 4
    watched = comfy.run_watched(p)
    assert watched.of_type("execution_success"), watched.messages[-3:]
    assert watched.progress("13") == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert watched.frames >= 4  # one latent2rgb preview per step


def test_an_interrupted_run_stops_early_and_leaves_nothing_behind(comfy, lr_image):
    """Interrupt TSS-DoSSR mid-run; the same graph then gives exactly the image of an uninterrupted run."""
    reference = saved_image(comfy, comfy.run(tss_dossr_prompt(lr_image)), "15")
    comfy.drop_cached_results()  # else a cache that keeps earlier prompts serves `again` without running it
    long_run = tss_dossr_prompt(lr_image)
    long_run["10"]["inputs"]["steps"] = 300
    watched = comfy.run_watched(long_run, interrupt_at_step=2)
    assert watched.of_type("execution_interrupted")
    assert max(v for v, _ in watched.progress("13")) < 300
    again = comfy.run_watched(tss_dossr_prompt(lr_image))
    assert again.progress("13")  # the sampler really ran again
    outputs = comfy.get(f"/history/{again.prompt_id}")[again.prompt_id]["outputs"]
    assert np.array_equal(saved_image(comfy, outputs, "15"), reference)


def test_inputs_fed_by_links_are_checked_when_the_graph_runs(comfy, lr_image):
    """Widgets converted to inputs (here PrimitiveInt / PrimitiveFloat nodes) reach validate_inputs
    without a value; a good value runs, a bad one fails at run time with the same message."""
    p = tss_dossr_prompt(lr_image)
    p["30"] = {"class_type": "PrimitiveInt", "inputs": {"value": 3}}
    p["31"] = {"class_type": "PrimitiveFloat", "inputs": {"value": 2.0}}
    p["10"]["inputs"]["steps"] = ["30", 0]
    p["11"]["inputs"]["n_max"] = ["31", 0]
    assert saved_image(comfy, comfy.run(p), "15").shape == (256, 384, 3)
    p["31"]["inputs"]["value"] = 0.5
    with pytest.raises(ExecutionFailed, match="n_max must be at least 1 and at most 10, got 0.5"):
        comfy.run(p)
