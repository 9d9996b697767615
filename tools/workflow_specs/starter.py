"""The main job, offline: the bundled starter model. The spec format is in make_workflows.py."""
from .common import SAMPLE

STARTER_NOTE = """
# x4 super-resolution with the bundled starter model
Upscales the low-resolution image 4x: bicubic x4, then one DoSSR step of the pack's small starter
diffusion model (it starts from the bicubic image, not from noise), then a wavelet colour fix that keeps
the input's colours.

## Model files
None to download: **starter_sr.safetensors** ships with the pack (`model_patches/weights/`).

## Knobs
- **Load Image**: your low-resolution photo.
- **DoSSR Scheduler steps** (1): the starter model's best measured setting; more steps are slower, not better.
- **Color Fix method**: wavelet (default) keeps fine detail; adain only matches mean and spread.
"""

WORKFLOWS = {
    # The main job, offline: the bundled starter model, one DoSSR step to sigma 0 (its best measured
    # setting, README), wavelet colour fix.
    "starter_sr_x4": (
        {
            1: ("TimeAwareSR_StarterModelLoader", {"model_name": "starter_sr.safetensors"}),
            2: ("LoadImage", {"image": SAMPLE}),
            3: ("ImageScaleBy", {"image": (2, 0), "upscale_method": "bicubic", "scale_by": 4.0}),
            4: ("VAEEncode", {"pixels": (3, 0), "vae": (1, 1)}),
            5: ("TimeAwareSR_DoSSRScheduler", {"model": (1, 0), "steps": 1, "t1": 500, "final_clean": True}),
            6: ("TimeAwareSR_DoSSRSampler", {"order": 3, "t1": 500}),
            7: ("CFGGuider", {"model": (1, 0), "positive": (1, 2), "negative": (1, 2), "cfg": 1.0}),
            8: ("RandomNoise", {"noise_seed": 0}),
            9: ("SamplerCustomAdvanced", {"noise": (8, 0), "guider": (7, 0), "sampler": (6, 0), "sigmas": (5, 0),
                                          "latent_image": (4, 0)}),
            10: ("VAEDecode", {"samples": (9, 0), "vae": (1, 1)}),
            11: ("TimeAwareSR_ColorFix", {"image": (10, 0), "reference": (3, 0), "method": "wavelet"}),
            12: ("SaveImage", {"images": (11, 0), "filename_prefix": "TimeAwareSR_x4"}),
        },
        {2: "Low-resolution input", 3: "Bicubic x4 (the LR latent the model starts from)"},
        STARTER_NOTE,
    ),
}
