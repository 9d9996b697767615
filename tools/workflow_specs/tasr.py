"""TASR (SPEC §4) graphs: SD 2.1-base + TASR's ControlNet and timestep-aware adapters. The spec
format is in make_workflows.py."""
from .common import SAMPLE, SD21_BASE as SD21, SD21_FILE_NOTE, SPLIT_TITLE

MODEL_FILES = {
    "tasr_v1.pth": {"url": "https://huggingface.co/SleepyLin/TASR", "directory": "tasr",
                    "license": "Apache-2.0 (code licence of github.com/SleepyLin/TASR)"},
    "BSRNet.pth": {"url": "https://github.com/cszn/KAIR/releases/download/v1.0/BSRNet.pth",
                   "directory": "upscale_models", "license": "MIT (KAIR)"},
}
POSITIVE = ""  # the official loop: the tagger's text alone with --tag_prompt, else empty (docs/tasr.md §4.7)
NEGATIVE = "low quality, blurry, low-resolution, noisy, unsharp, weird textures"  # the official default

MODELS_NOTE = """
## Model files
""" + SD21_FILE_NOTE + """
- `models/tasr/tasr_v1.pth`: TASR's ControlNet + 13 adapters, https://huggingface.co/SleepyLin/TASR
  (`tasr_v1.pth`, about 4.5 GB). Code licence Apache-2.0 (github.com/SleepyLin/TASR). *Load TASR* reads it safely
  (weights only); a `.safetensors` copy with keys `checkpoint_controlnet.*` / `checkpoint_adapter.*` also works.
- `models/upscale_models/BSRNet.pth`: BSRGAN's BSRNet x4 (a BasicSR RRDBNet), read by the stock *Load Upscale
  Model*: https://github.com/cszn/KAIR/releases/download/v1.0/BSRNet.pth (KAIR, MIT licence).
"""

FRONT = {
    1: ("CheckpointLoaderSimple", {"ckpt_name": SD21}),
    2: ("TimeAwareSR_TASRLoader", {"tasr_name": "tasr_v1.pth"}),
    3: ("UpscaleModelLoader", {"model_name": "BSRNet.pth"}),
    4: ("LoadImage", {"image": SAMPLE}),
    33: ("SplitImageWithAlpha", {"image": (4, 0)}),
    5: ("ImageUpscaleWithModel", {"upscale_model": (3, 0), "image": (33, 0)}),
    30: ("TimeAwareSR_FitToModelSize", {"image": (5, 0), "multiple": 64, "min_short_side": 512, "mode": "zeros"}),
    7: ("TimeAwareSR_ApplyTASRAdapters", {"model": (1, 0), "tasr_adapters": (2, 1)}),
    8: ("CLIPTextEncode", {"text": POSITIVE, "clip": (1, 1)}),
    9: ("CLIPTextEncode", {"text": NEGATIVE, "clip": (1, 1)}),
    10: ("ControlNetApplyAdvanced", {"positive": (8, 0), "negative": (9, 0), "control_net": (2, 0), "image": (30, 0),
                                     "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0, "vae": (1, 2)}),
    11: ("VAEEncode", {"pixels": (30, 0), "vae": (1, 2)}),
    12: ("LatentMultiply", {"samples": (11, 0), "multiplier": 0.0}),
}
TITLES = {4: "Low-resolution input", 5: "BSRNet x4", 33: SPLIT_TITLE, 30: "Short side to >= 512, pad to a multiple of 64 (official)",
          8: "Prompt", 9: "Negative prompt (official)", 12: "Zero latent of the image's size: x_T ~ N(0, I)"}
BACK_TO_X4 = "Crop the padding, back to exactly x4 the input"

WORKFLOWS = {
    # TASR x4 as the paper runs it: BSRNet x4 -> short side >= 512 -> 20 spaced DDPM steps at CFG 4 with the
    # gated ControlNet -> wavelet colour fix against the preprocessed image.
    "tasr_x4": (
        {
            **FRONT,
            13: ("KSampler", {"model": (7, 0), "seed": 231, "steps": 20, "cfg": 4.0,
                              "sampler_name": "ddpm", "scheduler": "tasr_spaced", "positive": (10, 0),
                              "negative": (10, 1), "latent_image": (12, 0), "denoise": 1.0}),
            14: ("VAEDecode", {"samples": (13, 0), "vae": (1, 2)}),
            31: ("TimeAwareSR_RestoreSize", {"image": (14, 0), "size": (30, 1), "mask": (4, 1)}),
            15: ("TimeAwareSR_ColorFix", {"image": (31, 0), "reference": (5, 0), "method": "wavelet"}),
            17: ("SaveImage", {"images": (15, 0), "filename_prefix": "TASR_x4"}),
        },
        {**TITLES, 31: BACK_TO_X4},
        """# TASR x4 (timestep-aware ControlNet, ACM MM 2025)

The low-resolution image is upscaled x4 by BSRNet; *Fit to Model Size* raises its short side to 512 when it is
smaller (TASR works at SD 2.1-base's 512 px) and pads it to a multiple of 64, as the official pipeline does;
*Restore Size* crops and resizes the result back to exactly x4 the input, any size. Then SD 2.1
generates the high-resolution image from pure noise in 20 steps, steered by
TASR's ControlNet. *Apply TASR Adapters* makes the model take that steering scaled per pixel and per step by
TASR's 13 adapters (strong early, for structure; lighter late, so SD adds detail). The wavelet colour fix
keeps the preprocessed image's colours.

**Sampling as the paper**: KSampler with sampler `ddpm` (ancestral steps with the posterior variance) and
scheduler `tasr_spaced` (guided-diffusion's `space_timesteps(1000, "20")`: the network sees t = 999, 946, ...,
53, 0), CFG 4, the official negative prompt. Apply ControlNet needs the SD VAE on its `vae` input: TASR
encodes the upscaled image with it.
""" + MODELS_NOTE + """
## Knobs
`steps` (20 as the paper; fewer is faster and softer), `cfg` (4; the paper reports 4.5), the
positive prompt (empty, as the official script runs without `--tag_prompt`; with it, the prompt is the image's
tags alone, e.g. from a tagger node; its `--pos_prompt` is never read), ControlNet `strength` (1.0 as
trained). Any input size works as it is: leave *Fit to Model Size* at TASR's 512 / 64.
""",
    ),
    # TASR with TSS per-pixel schedules: textured pixels get a schedule with more steps at the start and the
    # end; the adapters see every pixel's own timestep.
    "tasr_tss_x4": (
        {
            **FRONT,
            13: ("TimeAwareSR_TSSSpatialTimestepPatch", {"model": (7, 0)}),
            14: ("TimeAwareSR_SDSVarianceMap", {"image": (4, 0), "size": (30, 1)}),
            15: ("BasicScheduler", {"model": (13, 0), "scheduler": "tasr_spaced", "steps": 20, "denoise": 1.0}),
            16: ("TimeAwareSR_TSSSampler", {"variance_map": (14, 1), "base": "euler", "a_min": 450.0, "a_max": 650.0,
                                           "n_min": 1.0, "n_max": 2.5}),
            17: ("CFGGuider", {"model": (13, 0), "positive": (10, 0), "negative": (10, 1), "cfg": 4.0}),
            18: ("RandomNoise", {"noise_seed": 231}),
            19: ("SamplerCustomAdvanced", {"noise": (18, 0), "guider": (17, 0), "sampler": (16, 0), "sigmas": (15, 0),
                                           "latent_image": (12, 0)}),
            20: ("VAEDecode", {"samples": (19, 0), "vae": (1, 2)}),
            31: ("TimeAwareSR_RestoreSize", {"image": (20, 0), "size": (30, 1), "mask": (4, 1)}),
            21: ("TimeAwareSR_ColorFix", {"image": (31, 0), "reference": (5, 0), "method": "wavelet"}),
            23: ("SaveImage", {"images": (21, 0), "filename_prefix": "TASR_TSS_x4"}),
            24: ("PreviewImage", {"images": (14, 0)}),
        },
        {**TITLES, 14: "Where the image is textured", 15: "TASR's 20 timesteps", 31: BACK_TO_X4},
        """# TASR x4 with TSS per-pixel schedules

The *tasr_x4* graph with the model also through *TSS Spatial Timestep Patch* and sampled by the *TSS Sampler*:
every pixel follows its own remap of TASR's 20 timesteps, chosen from the LR image's texture map (textured
pixels spend more steps at the start and at the end). The TASR adapters then see each pixel's own timestep,
so their gate stays per pixel. The TSS Sampler's steps are Euler (or DPM++ 2M), not TASR's DDPM.
""" + MODELS_NOTE + """
## Knobs
`a_min`/`a_max` (where the sparsest steps of smooth and textured pixels sit), `n_min`/`n_max`
(schedule power: 1 = TASR's even timesteps), `base`, `cfg` (4 as TASR). Any input size works as it is (Fit to Model Size / Restore Size as in tasr_x4).
""",
    ),
}
