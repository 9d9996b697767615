"""TADSR (SPEC §5): one-step SR on SD 2.1-base with the time-aware encoder. Spec format: make_workflows.py."""
from .common import SAMPLE, SD21_BASE, SD21_FILE_NOTE

MODEL_FILES = {
    "tadsr.pkl": {"url": "https://huggingface.co/zty557/TADSR", "directory": "tadsr",
                  "license": "Pi-Lab License 1.0 (non-commercial)"},
}

FILES_NOTE = f"""
## Model files
{SD21_FILE_NOTE}
- `models/tadsr/tadsr.pkl` and the folder `models/tadsr/time_vae/` (`config.json` +
  `diffusion_pytorch_model.safetensors` or `.bin`): from https://huggingface.co/zty557/TADSR
  (Pi-Lab License 1.0: non-commercial use only).

## Knobs
- `t_s` (on TADSR Encode only; its t_s output drives TADSR One-Step; default 500): smaller stays faithful to the
  input, larger invents more texture.
- `mode` (TADSR Encode): `sample` (seeded, as the official code) or `mean` (deterministic).
- `strength` (Load TADSR): 1.0 is the paper's model.
- Leave `add_noise` off and `cfg` at 1 (TADSR has no CFG); CFG > 1 with a negative prompt also runs.
- Any input size: Fit to Model Size raises the short side of the x4 image to 512 when below it and pads to a
  multiple of 8 (the official script's rule); Restore Size gives exactly x4 the input back.
- Preprocessing is PIL's bicubic x4, as the official script (Upscale Image (PIL Bicubic); ComfyUI's own bicubic
  is a sharper filter the model was not trained on).
- VAE Decode (Tiled) keeps memory flat for large outputs; for large inputs swap TADSR Encode for TADSR Encode (Tiled)
  (same wiring plus tile_size / overlap). The colour fix is AdaIN, as the official default.
"""


def tadsr_graph(prompt: str, negative: str, cfg: float) -> dict:
    return {
        1: ("CheckpointLoaderSimple", {"ckpt_name": SD21_BASE}),
        2: ("TimeAwareSR_LoadTADSR", {"model": (1, 0), "tadsr_name": "tadsr.pkl", "time_vae": "time_vae",
                                      "strength": 1.0}),
        3: ("LoadImage", {"image": SAMPLE}),
        4: ("TimeAwareSR_ImageScalePIL", {"image": (3, 0), "scale_by": 4.0}),
        30: ("TimeAwareSR_FitToModelSize", {"image": (4, 0), "multiple": 8, "min_short_side": 512, "mode": "reflect"}),
        5: ("TimeAwareSR_TADSREncode", {"image": (30, 0), "vae": (2, 1), "t_s": 500, "mode": "sample", "seed": 42}),
        6: ("TimeAwareSR_TADSROneStep", {"model": (2, 0), "t_s": (5, 1)}),
        7: ("CLIPTextEncode", {"text": prompt, "clip": (1, 1)}),
        8: ("CLIPTextEncode", {"text": negative, "clip": (1, 1)}),
        9: ("SamplerCustom", {"model": (2, 0), "add_noise": False, "noise_seed": 0, "cfg": cfg, "positive": (7, 0),
                              "negative": (8, 0), "sampler": (6, 0), "sigmas": (6, 1), "latent_image": (5, 0)}),
        10: ("VAEDecodeTiled", {"samples": (9, 0), "vae": (2, 1), "tile_size": 512, "overlap": 64,
                                "temporal_size": 64, "temporal_overlap": 8}),
        31: ("TimeAwareSR_RestoreSize", {"image": (10, 0), "size": (30, 1), "mask": (3, 1)}),
        11: ("TimeAwareSR_ColorFix", {"image": (31, 0), "reference": (4, 0), "method": "adain"}),
        12: ("SaveImage", {"images": (11, 0), "filename_prefix": "TADSR_x4"}),
    }


TITLES = {3: "Low-resolution input", 4: "PIL bicubic x4 (as the official script)", 7: "Prompt",
          8: "Negative prompt (used only with cfg > 1)", 30: "Short side to >= 512, pad to a multiple of 8",
          31: "Back to exactly x4 the input"}

WORKFLOWS = {
    # TADSR x4: PIL bicubic x4 -> time-aware encode at t_s -> one UNet call -> tiled decode -> AdaIN colour fix.
    "tadsr_x4": (
        tadsr_graph("", "", 1.0), TITLES,
        "# TADSR x4 (one step)\nUpscales the input 4x with one SD 2.1 UNet call: the bicubic upscale is encoded by "
        "TADSR's time-aware encoder at timestep t_s, the UNet predicts the residual, and x0 = z/sqrt(abar) - f is "
        "decoded.\n" + FILES_NOTE,
    ),
    # The same with a text prompt (the official code prepends tagger tags; any plain text works).
    "tadsr_x4_prompt": (
        tadsr_graph("clean, high-resolution, 8k, sharp details", "blurry, noisy, low quality", 1.0), TITLES,
        "# TADSR x4 with a text prompt\nAs tadsr_x4, with a prompt describing the picture (the official code adds "
        "tags from an image tagger; plain text works). Raise cfg above 1 to use the negative prompt.\n" + FILES_NOTE,
    ),
}
