"""TSS nodes in a live ComfyUI server: the patch, the sampler with a ControlNet and CFG, bad parameters."""
import json
import shutil

import pytest

from support import comfy_live
from support.comfy_live import ExecutionFailed, PromptRejected

SAMPLE = comfy_live.PACK_DIR / "workflows" / "assets" / "chelsea_lr.png"


@pytest.fixture(scope="module")
def tss_prompt(comfy, shipped_models):
    shutil.copy(SAMPLE, comfy.input_dir / SAMPLE.name)
    wf = comfy_live.load_workflow(comfy_live.PACK_DIR / "workflows" / "tss_controlnet_x4.json")
    return comfy_live.workflow_to_prompt(wf, comfy.object_info(), {(2, "image"): SAMPLE.name})


def test_tss_with_a_controlnet_and_cfg_runs(comfy, tss_prompt):
    prompt = json.loads(json.dumps(tss_prompt))
    prompt["12"]["inputs"]["cfg"] = 3.0
    assert comfy.output_images(comfy.run(prompt), "17")


@pytest.mark.parametrize("change, message", [
    ({"n_min": 3.0, "n_max": 2.0}, "n_min and n_max must satisfy 1 <= n_min <= n_max"),
    ({"a_min": 700.0, "a_max": 300.0}, "a_min and a_max must satisfy"),
    ({"base": "heun"}, "base must be one of"),
])
def test_bad_tss_sampler_parameters_are_rejected_by_name(comfy, tss_prompt, change, message):
    prompt = json.loads(json.dumps(tss_prompt))
    prompt["11"]["inputs"].update(change)
    with pytest.raises(PromptRejected) as err:
        comfy.run(prompt)
    assert message in err.value.messages()


@pytest.fixture(scope="module")
def sd3_unet(comfy, test_model_dirs):
    """A tiny SD3 (MMDiT, flow-matching) diffusion model file that stock UNETLoader loads."""
    from support import ckpt_factory

    source = ckpt_factory.cached_checkpoint("tiny_sd3_mmdit", ckpt_factory.sd3_mmdit_state_dict, seed=0)
    shutil.copy(source, test_model_dirs["diffusion_models"] / "tiny_sd3.safetensors")
    return "tiny_sd3.safetensors"


def test_a_non_unet_model_is_refused_by_the_patch_node(comfy, sd3_unet):
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": sd3_unet, "weight_dtype": "default"}},
        "2": {"class_type": "TimeAwareSR_TSSSpatialTimestepPatch", "inputs": {"model": ["1", 0]}},
        "3": {"class_type": "TimeAwareSR_TDSScheduler", "inputs": {"model": ["2", 0], "steps": 4, "a": 550.0, "n": 2.0,
                                                                "start": 999.0, "end": 0.0}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
    }
    with pytest.raises(ExecutionFailed) as err:
        comfy.run(prompt)
    assert err.value.node_type == "TimeAwareSR_TSSSpatialTimestepPatch"
    assert "model: per-pixel timesteps need an SD1.x/SD2.x/SDXL UNet model; this MODEL is SD3" in err.value.exception_message


def test_the_dossr_scheduler_refuses_a_flow_matching_model(comfy, sd3_unet):
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": sd3_unet, "weight_dtype": "default"}},
        "2": {"class_type": "TimeAwareSR_DoSSRScheduler", "inputs": {"model": ["1", 0], "steps": 5, "t1": 500}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }
    with pytest.raises(ExecutionFailed) as err:
        comfy.run(prompt)
    assert "DoSSR needs a discrete-time (DDPM) diffusion model" in err.value.exception_message


def test_tss_sampler_reports_progress_and_previews(comfy, tss_prompt):
    prompt = json.loads(json.dumps(tss_prompt))
    prompt["10"]["inputs"]["steps"] = 3
    watched = comfy.run_watched(prompt)
    assert watched.of_type("execution_success"), watched.messages[-3:]
    assert watched.progress("14") == [(1, 3), (2, 3), (3, 3)]
    assert watched.frames >= 3


def test_linked_tss_parameters_are_checked_when_the_graph_runs(comfy, tss_prompt):
    prompt = json.loads(json.dumps(tss_prompt))
    prompt["930"] = {"class_type": "PrimitiveFloat", "inputs": {"value": 300.0}}
    prompt["10"]["inputs"]["steps"] = 2
    prompt["11"]["inputs"]["a_max"] = ["930", 0]
    assert comfy.output_images(comfy.run(prompt), "17")
    prompt["930"]["inputs"]["value"] = 100.0  # below a_min (200)
    with pytest.raises(ExecutionFailed, match="a_min and a_max must satisfy 0 < a_min <= a_max < 999"):
        comfy.run(prompt)
    prompt["930"]["inputs"]["value"] = 700.0
    prompt["10"]["inputs"]["a"] = ["930", 0]  # TDS Scheduler: a must lie inside (end, start) = (0, 499)
    with pytest.raises(ExecutionFailed, match="a must lie strictly between the end and start timesteps"):
        comfy.run(prompt)
