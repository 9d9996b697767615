"""DoSSR (SPEC §3) graphs on the DoSSR checkpoint. The spec format is in make_workflows.py."""
from .common import DOSSR_FILES_NOTE, FIT_DOSSR, FIT_TITLE, RESTORE_TITLE, SAMPLE, SPLIT_TITLE, TSS_CONTROLNET_FRONT

DOSSR_NOTE = """
# DoSSR x4 (Domain Shift SDE super-resolution)
The low-resolution image is upscaled 4x by the checkpoint's ESRGAN preprocessor, encoded, and refined in
5 DoS-SDE steps that start at t1 = 500 from the upscale itself (not from noise), guided by DoSSR's SR
ControlNet; a wavelet colour fix keeps the input's colours.
""" + DOSSR_FILES_NOTE + """
## Knobs
- **steps** (5) and **t1** (500) on the DoSSR Scheduler, **order** (3) on the DoSSR Sampler: DoSSR's
  released settings. 1 step with `dossr_onestep.ckpt`.
- **Resize to target**: 1.0 keeps x4; below 1 gives a smaller output.
- **Prompt**: a short quality prompt; cfg 1 (no negative) as DoSSR was trained.
"""

DOSSR_TSS_NOTE = """
# DoSSR x4 with TSS per-pixel schedules
The DoSSR x4 graph, but textured pixels get their own timesteps: the SDS Variance Map measures texture
on the low-resolution image, and the DoSSR Sampler spends more of its 5 steps near the end on textured
pixels (TDS power n from n_min to n_max) while smooth pixels keep DoSSR's own schedule. The model goes
through the TSS Spatial Timestep Patch so it accepts one timestep per pixel.
""" + DOSSR_FILES_NOTE + """
## Knobs
- **a_min / a_max** (225 / 325) and **n_min / n_max** (1 / 2.5) on the DoSSR Sampler: the schedule for
  the smoothest and the most textured pixels; n = 1 is DoSSR's own schedule.
- Disconnect **variance_map** to get plain DoSSR back.
- The preview shows where the image counts as textured.
"""

WORKFLOWS = {
    # DoSSR x4 (SPEC §3): ESRGAN preprocess -> encode -> 5 DoS-SDE steps with the ControlNet -> colour fix.
    "dossr_x4": (
        {
            1: ("TimeAwareSR_DoSSRCheckpointLoader", {"ckpt_name": "dossr_default.ckpt"}),
            2: ("LoadImage", {"image": SAMPLE}),
            33: ("SplitImageWithAlpha", {"image": (2, 0)}),
            3: ("ImageUpscaleWithModel", {"upscale_model": (1, 4), "image": (33, 0)}),
            4: ("ImageScaleBy", {"image": (3, 0), "upscale_method": "bicubic", "scale_by": 1.0}),
            30: ("TimeAwareSR_FitToModelSize", {**FIT_DOSSR, "image": (4, 0)}),
            5: ("VAEEncode", {"pixels": (30, 0), "vae": (1, 2)}),
            6: ("CLIPTextEncode", {"text": "clean, high-resolution, 8k", "clip": (1, 1)}),
            7: ("CLIPTextEncode", {"text": "", "clip": (1, 1)}),
            8: ("ControlNetApplyAdvanced", {"positive": (6, 0), "negative": (7, 0), "control_net": (1, 3),
                                            "image": (30, 0), "strength": 1.0, "start_percent": 0.0,
                                            "end_percent": 1.0, "vae": (1, 2)}),
            9: ("CFGGuider", {"model": (1, 0), "positive": (8, 0), "negative": (8, 1), "cfg": 1.0}),
            10: ("TimeAwareSR_DoSSRScheduler", {"model": (1, 0), "steps": 5, "t1": 500}),
            11: ("TimeAwareSR_DoSSRSampler", {"order": 3, "t1": 500}),
            12: ("RandomNoise", {"noise_seed": 231}),
            13: ("SamplerCustomAdvanced", {"noise": (12, 0), "guider": (9, 0), "sampler": (11, 0),
                                           "sigmas": (10, 0), "latent_image": (5, 0)}),
            14: ("VAEDecode", {"samples": (13, 0), "vae": (1, 2)}),
            31: ("TimeAwareSR_RestoreSize", {"image": (14, 0), "size": (30, 1), "mask": (2, 1)}),
            15: ("TimeAwareSR_ColorFix", {"image": (31, 0), "reference": (4, 0), "method": "wavelet"}),
            16: ("SaveImage", {"images": (15, 0), "filename_prefix": "DoSSR_x4"}),
        },
        {2: "Low-resolution input", 3: "ESRGAN x4 preprocess", 33: SPLIT_TITLE, 4: "Resize to target (1.0 keeps x4)",
         6: "Prompt", 7: "Negative prompt", 30: FIT_TITLE, 31: RESTORE_TITLE},
        DOSSR_NOTE,
    ),
    # DoSSR with TSS per-pixel schedules: the dossr_x4 graph, its model through the per-pixel timestep
    # patch and the DoSSR Sampler fed the LR's texture map, so textured pixels get their own timesteps.
    "dossr_tss_x4": (
        {
            **TSS_CONTROLNET_FRONT,
            10: ("CFGGuider", {"model": (5, 0), "positive": (9, 0), "negative": (9, 1), "cfg": 1.0}),
            11: ("TimeAwareSR_DoSSRScheduler", {"model": (5, 0), "steps": 5, "t1": 500}),
            12: ("TimeAwareSR_DoSSRSampler", {"order": 3, "t1": 500, "variance_map": (6, 1), "a_min": 225.0,
                                             "a_max": 325.0, "n_min": 1.0, "n_max": 2.5}),
            13: ("RandomNoise", {"noise_seed": 231}),
            14: ("SamplerCustomAdvanced", {"noise": (13, 0), "guider": (10, 0), "sampler": (12, 0),
                                           "sigmas": (11, 0), "latent_image": (4, 0)}),
            15: ("VAEDecode", {"samples": (14, 0), "vae": (1, 2)}),
            31: ("TimeAwareSR_RestoreSize", {"image": (15, 0), "size": (30, 1), "mask": (2, 1)}),
            16: ("TimeAwareSR_ColorFix", {"image": (31, 0), "reference": (3, 0), "method": "wavelet"}),
            17: ("SaveImage", {"images": (16, 0), "filename_prefix": "DoSSR_TSS_x4"}),
            18: ("PreviewImage", {"images": (6, 0)}),
        },
        {2: "Low-resolution input", 3: "ESRGAN x4 preprocess", 33: SPLIT_TITLE, 6: "Where the image is textured",
         7: "Prompt", 8: "Negative prompt", 30: FIT_TITLE, 31: RESTORE_TITLE},
        DOSSR_TSS_NOTE,
    ),
}
