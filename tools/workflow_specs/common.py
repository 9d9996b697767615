"""Graph specs shared by several methods' workflows."""

SAMPLE = "chelsea_lr.png"

# The official DoSSR checkpoints (SPEC §3). The DoSSR README links one Google Drive folder holding
# both files; it gives no per-file link and no hashes, so none are written here.
DOSSR_DRIVE = "https://drive.google.com/drive/folders/1BTGRbAqXDSNWjyUnTLgDfmjd2xyu8GvP"
DOSSR_LICENSE = ("no licence is stated in the DoSSR repository's README; the weights derive from Stable Diffusion "
                 "2.1-base (CreativeML Open RAIL++-M) and Real-ESRNet/Real-ESRGAN (BSD-3-Clause)")
SD21_BASE = "v2-1_512-ema-pruned.safetensors"
SD21_BASE_URL = "https://huggingface.co/stabilityai/stable-diffusion-2-1-base"  # withdrawn; mirrors keep the file name
SD21_LICENSE = "CreativeML Open RAIL++-M"

MODEL_FILES = {
    SD21_BASE: {"url": SD21_BASE_URL, "directory": "checkpoints", "license": SD21_LICENSE},
    "dossr_default.ckpt": {"url": DOSSR_DRIVE, "directory": "dossr", "license": DOSSR_LICENSE},
    "dossr_onestep.ckpt": {"url": DOSSR_DRIVE, "directory": "dossr", "license": DOSSR_LICENSE},
}

# Note text for every graph on SD 2.1-base: the editor cannot download it (its page is gone; tools/frontend_download.py).
SD21_FILE_NOTE = f"""- `models/checkpoints/{SD21_BASE}`: Stable Diffusion 2.1-base (512, eps), loaded by the stock
  *Load Checkpoint*. Its original page ({SD21_BASE_URL}) has been taken down,
  so the editor cannot download it: use a copy of that exact file from a mirror you trust (search the hub for
  `{SD21_BASE}`) and compare its hash with the one the mirror publishes. Licence: {SD21_LICENSE}."""

# Note text shared by every graph on dossr_default.ckpt.
DOSSR_FILES_NOTE = f"""
## Model files
- **dossr_default.ckpt** (multi-step DoSSR, SD 2.1 + SR ControlNet + Real-ESRNet preprocessor) from the
  [DoSSR Google Drive folder]({DOSSR_DRIVE}) linked in the
  [DoSSR README](https://github.com/AMD-AIG-AIMA/DoSSR). Put it in `ComfyUI/models/dossr/`.
  `dossr_onestep.ckpt` (same folder) is the one-step variant: set steps to 1 with it.
- Licence: {DOSSR_LICENSE}. No hash is published.

## Any input size
*Fit to Model Size* pads the x4 image with zeros to a multiple of 64 (what DoSSR's script intends) and
*Restore Size* crops the result back, so the output is exactly x4 the input, whatever its size.
"""

# DoSSR's official inference pads the x4 image with zeros to a multiple of 64 (DiffBIR's `pad`); it does not
# raise the short side of the image it samples (docs/dossr.md §3.8). Restore Size (node 31) undoes it.
FIT_DOSSR = {"image": (3, 0), "multiple": 64, "min_short_side": 0, "mode": "zeros"}
FIT_TITLE = "Pad to a multiple of 64 (as the official code)"
RESTORE_TITLE = "Crop the padding, alpha back: exactly x4 the input"
# Stock upscale models take RGB only: the input's alpha goes round them, as Load Image's MASK, to Restore Size.
SPLIT_TITLE = "RGB for the upscale model (alpha goes round it)"

# Nodes 1-9 of the TSS graphs on DoSSR's checkpoint (SD 2.1 + SR ControlNet): load, ESRGAN x4 and
# encode, the per-pixel patch, the LR's texture map, the prompts with the ControlNet applied.
TSS_CONTROLNET_FRONT = {
    1: ("TimeAwareSR_DoSSRCheckpointLoader", {"ckpt_name": "dossr_default.ckpt"}),
    2: ("LoadImage", {"image": SAMPLE}),
    33: ("SplitImageWithAlpha", {"image": (2, 0)}),
    3: ("ImageUpscaleWithModel", {"upscale_model": (1, 4), "image": (33, 0)}),
    30: ("TimeAwareSR_FitToModelSize", FIT_DOSSR),
    4: ("VAEEncode", {"pixels": (30, 0), "vae": (1, 2)}),
    5: ("TimeAwareSR_TSSSpatialTimestepPatch", {"model": (1, 0)}),
    6: ("TimeAwareSR_SDSVarianceMap", {"image": (2, 0), "size": (30, 1)}),
    7: ("CLIPTextEncode", {"text": "clean, high-resolution, 8k", "clip": (1, 1)}),
    8: ("CLIPTextEncode", {"text": "", "clip": (1, 1)}),
    9: ("ControlNetApplyAdvanced", {"positive": (7, 0), "negative": (8, 0), "control_net": (1, 3), "image": (30, 0),
                                    "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0, "vae": (1, 2)}),
}
