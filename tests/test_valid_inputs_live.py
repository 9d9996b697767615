"""Valid inputs that used to be refused now run, and a silent mistake is now refused (issue 11 item 4)."""
import shutil

import numpy as np
import pytest
from PIL import Image

from support import comfy_live
from support.comfy_live import ExecutionFailed
from support.starter_prompt import starter_dossr_prompt

SAMPLE = comfy_live.PACK_DIR / "workflows" / "assets" / "chelsea_lr.png"


def load_sample(comfy) -> dict:
    shutil.copy(SAMPLE, comfy.input_dir / SAMPLE.name)
    return {"class_type": "LoadImage", "inputs": {"image": SAMPLE.name}}


def saved(comfy, outputs) -> np.ndarray:
    return np.asarray(Image.open(comfy.output_images(outputs, "s9")[-1])).astype(np.float64)


def test_a_flat_50_percent_gray_lr_image_runs(comfy):
    """It encodes to an all-zero latent through the starter's pixel VAE; that was refused as "empty"."""
    p = starter_dossr_prompt({"class_type": "SolidMask", "inputs": {"value": 0.5, "width": 16, "height": 12}})
    p["s10"] = {"class_type": "MaskToImage", "inputs": {"mask": ["s2", 0]}}
    p["s3"]["inputs"]["image"] = ["s10", 0]
    out = saved(comfy, comfy.run(p))
    assert out.shape == (24, 32, 3)
    assert abs(out.mean() - 127.5) < 40  # a gray input gives a grayish picture, not black or white


def test_dossr_with_t1_300_and_no_variance_map_runs(comfy):
    """The default a-range (225-325) reaches past t1 = 300, but it only matters with a variance map."""
    p = starter_dossr_prompt(load_sample(comfy), t1=300)
    p["s6"]["inputs"].update(a_min=225.0, a_max=325.0)
    out = saved(comfy, comfy.run(p))
    assert out.shape == (24, 32, 3) and 20 < out.mean() < 235


def test_a_sampler_t1_that_differs_from_the_schedulers_is_refused(comfy):
    """It used to run silently from the wrong start; t1 = 600 here is above where the sigmas start."""
    p = starter_dossr_prompt(load_sample(comfy), t1=500, sampler_t1=600)
    with pytest.raises(ExecutionFailed, match=r"the sigmas start at timestep 499, but t1 = 600 needs a start at "
                                              r"t1 - 1 = 599: set the same t1 on the DoSSR Scheduler and the DoSSR Sampler"):
        comfy.run(p)
