"""Every shipped workflow file, queued as it is (UI format) on the live server, and `make demo`.

The sample is chelsea_hr.png (tests/support/data, never trained on) bicubic-downscaled x4, so every
output is scored against that HR photo. Both workflows on the bundled starter model must beat bicubic
there: the demo's (1 DoSSR step) and tss_starter_x4 (8 TSS steps from t = 400). The others are reported with the reason they are not held to it: they run
tiny random-weight stand-ins of their downloads (support/shipped_models.py), whose output carries no
learnt detail. For those only the size is checked."""
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from support import comfy_live

WORKFLOWS = sorted((comfy_live.PACK_DIR / "workflows").glob("*.json"))
SAMPLE = comfy_live.PACK_DIR / "workflows" / "assets" / "chelsea_lr.png"
SAMPLE_HR = comfy_live.PACK_DIR / "tests" / "support" / "data" / "chelsea_hr.png"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """dB over the image minus a 4 px border (bicubic's edge handling is not what is being judged)."""
    err = (a[4:-4, 4:-4].astype(np.float64) - b[4:-4, 4:-4].astype(np.float64)) ** 2
    return float(10 * np.log10(255.0**2 / err.mean()))


def scores_against_hr(path: pathlib.Path) -> tuple[float, float]:
    """(output PSNR, bicubic PSNR) against the sample's HR photo; the output must be the HR's size."""
    out = np.asarray(Image.open(path).convert("RGB"))
    hr = np.asarray(Image.open(SAMPLE_HR).convert("RGB"))
    assert out.shape == hr.shape, f"{path.name} is {out.shape}, the x4 of the sample is {hr.shape}"
    bicubic = np.asarray(Image.open(SAMPLE).convert("RGB").resize((hr.shape[1], hr.shape[0]), Image.BICUBIC))
    return psnr(out, hr), psnr(bicubic, hr)


def uses_the_starter_model(wf: dict) -> bool:
    return any(n["type"] == "TimeAwareSR_StarterModelLoader" for n in wf["nodes"])


DEMO_WORKFLOW = "starter_sr_x4"  # tools/demo.py's default


def test_the_sample_is_the_hr_photo_downscaled_x4():
    hr = Image.open(SAMPLE_HR).convert("RGB")
    lr = np.asarray(Image.open(SAMPLE).convert("RGB"))
    assert np.array_equal(lr, np.asarray(hr.resize((hr.width // 4, hr.height // 4), Image.BICUBIC)))


def test_there_are_shipped_workflows():
    assert WORKFLOWS


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_shipped_workflow_runs_on_the_live_server(comfy, shipped_models, workflow, report_table):
    shutil.copy(SAMPLE, comfy.input_dir / SAMPLE.name)
    wf = comfy_live.load_workflow(workflow)
    overrides = {(n["id"], "image"): SAMPLE.name for n in wf["nodes"] if n["type"] == "LoadImage"}
    outputs = comfy.run(comfy_live.workflow_to_prompt(wf, comfy.object_info(), overrides))
    saved = [p for node_id in outputs for p in comfy.output_images(outputs, node_id)]
    assert saved
    for path in saved:
        report_table(check_upscaled(path, workflow.stem, wf))


def check_upscaled(path: pathlib.Path, stem: str, wf: dict) -> str:
    """The output is the HR photo's size; a workflow on the starter model must beat bicubic against it. Returns the
    line for the report table (also used by the browser tests)."""
    ours, bicubic = scores_against_hr(path)
    if uses_the_starter_model(wf):
        assert ours > bicubic, f"{stem}: {ours:.2f} dB against the HR photo, bicubic {bicubic:.2f} dB"
        return f"workflow {stem}{' (the demo)' if stem == DEMO_WORKFLOW else ''}: {ours:.2f} dB vs HR, bicubic {bicubic:.2f} dB"
    return (f"workflow {stem}: {ours:.2f} dB vs HR, bicubic {bicubic:.2f} dB "
            "(not scored: random-weight stand-ins of the downloaded models)")


def test_make_demo_beats_bicubic_and_says_so(tmp_path):
    out = subprocess.run([sys.executable, str(comfy_live.PACK_DIR / "tools" / "demo.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "wrote " in out.stdout and "time: " in out.stdout
    [picture] = list(tmp_path.glob("*_compare.png"))
    [png] = [p for p in tmp_path.glob("*.png") if p != picture]
    ours, bicubic = scores_against_hr(png)
    assert ours > bicubic, f"the demo's output scores {ours:.2f} dB against {SAMPLE_HR.name}, bicubic {bicubic:.2f} dB"
    printed = re.search(r"pack (\d+\.\d+) dB, bicubic (\d+\.\d+) dB", out.stdout)
    assert printed, out.stdout
    assert (float(printed[1]), float(printed[2])) == (round(ours, 2), round(bicubic, 2))
    hr = Image.open(SAMPLE_HR)
    sheet = np.asarray(Image.open(picture).convert("RGB"))
    assert sheet.shape[1] == 3 * hr.width and sheet.shape[0] > hr.height
    label = 14  # the demo's caption strip above the three frames
    panels = [sheet[label:label + hr.height, i * hr.width:(i + 1) * hr.width] for i in range(3)]
    bicubic = Image.open(SAMPLE).convert("RGB").resize(hr.size, Image.BICUBIC)
    assert np.array_equal(panels[0], np.asarray(bicubic))
    assert np.array_equal(panels[1], np.asarray(Image.open(png).convert("RGB")))
