"""Every shipped workflow file, queued as it is (UI format) on the live server, and `make demo`."""
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from support import comfy_live

WORKFLOWS = sorted((comfy_live.PACK_DIR / "workflows").glob("*.json"))
SAMPLE = comfy_live.PACK_DIR / "workflows" / "assets" / "chelsea_lr.png"


def check_upscaled(path: pathlib.Path, scale: int = 4):
    out = np.asarray(Image.open(path).convert("RGB")).astype(np.float32)
    lr = Image.open(SAMPLE)
    assert out.shape[:2] == (lr.height * scale, lr.width * scale)
    assert out.std() > 10, "output is blank"
    return out


def test_there_are_shipped_workflows():
    assert WORKFLOWS


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_shipped_workflow_runs_on_the_live_server(comfy, shipped_models, workflow):
    shutil.copy(SAMPLE, comfy.input_dir / SAMPLE.name)
    wf = comfy_live.load_workflow(workflow)
    overrides = {(n["id"], "image"): SAMPLE.name for n in wf["nodes"] if n["type"] == "LoadImage"}
    outputs = comfy.run(comfy_live.workflow_to_prompt(wf, comfy.object_info(), overrides))
    saved = [p for node_id in outputs for p in comfy.output_images(outputs, node_id)]
    assert saved
    for path in saved:
        check_upscaled(path)


def test_make_demo_writes_an_upscaled_image(tmp_path):
    out = subprocess.run([sys.executable, str(comfy_live.PACK_DIR / "tests" / "tools" / "demo.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "wrote " in out.stdout and "time: " in out.stdout
    [png] = list(tmp_path.glob("*.png"))
    out = check_upscaled(png)
    lr = Image.open(SAMPLE)
    bicubic = np.asarray(lr.resize((lr.width * 4, lr.height * 4), Image.BICUBIC)).astype(np.float32)
    assert np.abs(out - bicubic).mean() > 1.0, "the demo's model did nothing beyond bicubic"
