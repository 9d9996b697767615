"""TSS nodes in a live ComfyUI server: the patch, the sampler with a ControlNet and CFG, bad parameters."""
import json
import shutil

import pytest

import comfy_live
from comfy_live import PromptRejected

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
