"""TSS (SPEC §1-2) graphs: per-pixel schedules. The spec format is in make_workflows.py."""
from .common import DOSSR_FILES_NOTE, FIT_TITLE, RESTORE_TITLE, SAMPLE, SPLIT_TITLE, TSS_CONTROLNET_FRONT

TSS_STARTER_NOTE = """
# TSS x4: per-pixel timestep schedules, on the bundled starter model
Bicubic x4, then img2img from t = 400 in 8 Euler steps where every pixel follows its own schedule: the
SDS Variance Map finds the textured pixels of the low-resolution image and the TSS Sampler gives them
more small steps near the end (TDS power n up to n_max). The TSS Spatial Timestep Patch lets the model
take one timestep per pixel. Swap the loader for any SD1.x/2.x/XL checkpoint loader to use TSS with SD.

## Model files
None to download: **starter_sr.safetensors** ships with the pack (`model_patches/weights/`).

## Knobs
- **TDS Scheduler**: steps (8), start (400: how much is re-drawn), a and n of the shared schedule.
- **TSS Sampler**: base update (euler or dpmpp_2m), a_min/a_max and n_min/n_max for the smoothest and the
  most textured pixels.
- The preview shows where the image counts as textured.
"""

TSS_CONTROLNET_NOTE = """
# TSS x4 on SD 2.1 with a ControlNet (DoSSR's checkpoint)
ESRGAN x4 from the checkpoint, then 10 dpmpp_2m steps from t = 499 where every pixel follows its own
schedule (TSS); the ControlNet also gets per-pixel timesteps. Wavelet colour fix at the end. Any SD 2.1
model with an SR ControlNet works the same way; here all parts come from one DoSSR checkpoint.
""" + DOSSR_FILES_NOTE + """
## Knobs
- **TDS Scheduler**: steps (10), start (499), a and n of the shared schedule.
- **TSS Sampler**: base (dpmpp_2m), a_min/a_max (200/350), n_min/n_max (1/2.5).
- **ControlNet strength** (1.0): lower lets the SD prior invent more.
"""

WORKFLOWS = {
    # TSS (SPEC §1-2): per-pixel schedules from the LR's texture map, img2img start from the bicubic
    # upscale. Swap the loader for any SD1.x/2.x/XL checkpoint loader to use it with SD.
    "tss_starter_x4": (
        {
            1: ("TimeAwareSR_StarterModelLoader", {"model_name": "starter_sr.safetensors"}),
            2: ("LoadImage", {"image": SAMPLE}),
            3: ("ImageScaleBy", {"image": (2, 0), "upscale_method": "bicubic", "scale_by": 4.0}),
            4: ("VAEEncode", {"pixels": (3, 0), "vae": (1, 1)}),
            5: ("TimeAwareSR_TSSSpatialTimestepPatch", {"model": (1, 0)}),
            6: ("TimeAwareSR_SDSVarianceMap", {"image": (2, 0)}),
            7: ("TimeAwareSR_TDSScheduler", {"model": (5, 0), "steps": 8, "a": 200.0, "n": 1.0, "start": 400.0,
                                            "end": 0.0}),
            8: ("TimeAwareSR_TSSSampler", {"variance_map": (6, 1), "base": "euler", "a_min": 150.0, "a_max": 300.0,
                                          "n_min": 1.0, "n_max": 2.5}),
            9: ("CFGGuider", {"model": (5, 0), "positive": (1, 2), "negative": (1, 2), "cfg": 1.0}),
            10: ("RandomNoise", {"noise_seed": 0}),
            11: ("SamplerCustomAdvanced", {"noise": (10, 0), "guider": (9, 0), "sampler": (8, 0), "sigmas": (7, 0),
                                           "latent_image": (4, 0)}),
            12: ("VAEDecode", {"samples": (11, 0), "vae": (1, 1)}),
            13: ("TimeAwareSR_ColorFix", {"image": (12, 0), "reference": (3, 0), "method": "wavelet"}),
            14: ("SaveImage", {"images": (13, 0), "filename_prefix": "TSS_x4"}),
            15: ("PreviewImage", {"images": (6, 0)}),
        },
        {2: "Low-resolution input", 3: "Bicubic x4", 6: "Where the image is textured",
         7: "Even steps from t=400 (img2img start)"},
        TSS_STARTER_NOTE,
    ),
    # TSS on an SD 2.1 model with a ControlNet (here DoSSR's checkpoint: SD 2.1 + an SR ControlNet):
    # ESRGAN upscale -> encode -> per-pixel schedules, the ControlNet also per pixel -> colour fix.
    "tss_controlnet_x4": (
        {
            **TSS_CONTROLNET_FRONT,
            10: ("TimeAwareSR_TDSScheduler", {"model": (5, 0), "steps": 10, "a": 250.0, "n": 1.0, "start": 499.0,
                                             "end": 0.0}),
            11: ("TimeAwareSR_TSSSampler", {"variance_map": (6, 1), "base": "dpmpp_2m", "a_min": 200.0,
                                           "a_max": 350.0, "n_min": 1.0, "n_max": 2.5}),
            12: ("CFGGuider", {"model": (5, 0), "positive": (9, 0), "negative": (9, 1), "cfg": 1.0}),
            13: ("RandomNoise", {"noise_seed": 0}),
            14: ("SamplerCustomAdvanced", {"noise": (13, 0), "guider": (12, 0), "sampler": (11, 0),
                                           "sigmas": (10, 0), "latent_image": (4, 0)}),
            15: ("VAEDecode", {"samples": (14, 0), "vae": (1, 2)}),
            31: ("TimeAwareSR_RestoreSize", {"image": (15, 0), "size": (30, 1), "mask": (2, 1)}),
            16: ("TimeAwareSR_ColorFix", {"image": (31, 0), "reference": (3, 0), "method": "wavelet"}),
            17: ("SaveImage", {"images": (16, 0), "filename_prefix": "TSS_ControlNet_x4"}),
        },
        {2: "Low-resolution input", 3: "ESRGAN x4", 33: SPLIT_TITLE, 6: "Where the image is textured",
         10: "Even steps from t=499 (SR start)", 30: FIT_TITLE, 31: RESTORE_TITLE},
        TSS_CONTROLNET_NOTE,
    ),
}
