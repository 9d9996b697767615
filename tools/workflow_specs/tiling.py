"""Large images with tiles everywhere (SPEC §7, issue 15). The spec format is in make_workflows.py."""
from .common import DOSSR_DRIVE, DOSSR_LICENSE, FIT_DOSSR, FIT_TITLE, RESTORE_TITLE, SAMPLE, SPLIT_TITLE

NOTE = f"""\
## DoSSR x4 for large images (1024² LR -> 4096²)

The `dossr_x4` graph with tiles at every stage, so a 4096² result fits in a few GB of memory:
ESRGAN x4 (ComfyUI tiles upscale models by itself) -> **VAE Encode (Tiled)** -> 5 DoSSR steps on a
model through **Tiled Diffusion (TimeAwareSR)**, with DoSSR's ControlNet (run per tile on its crop of
the hint; the hint itself is encoded in 512-px tiles when larger than 1024²) -> **VAE Decode
(Tiled)** -> wavelet colour fix. The sampler sees the whole latent, so noise and schedule are shared
by all tiles; only each model call is split.
Any input size works: the x4 image is padded with zeros to a multiple of 64 (Fit to Model Size) and the
result cropped back to exactly x4 (Restore Size).

## Model files
`dossr_default.ckpt` from the [DoSSR Google Drive folder]({DOSSR_DRIVE}) linked in the DoSSR README
(github.com/AMD-AIG-AIMA/DoSSR), in `ComfyUI/models/dossr/` (the editor cannot download from Drive). It holds
SD 2.1-base, its ControlNet, the condition encoder and the ESRGAN preprocessor. Licence: {DOSSR_LICENSE}.

## Knobs
These trade memory for speed (none of them changes the picture much):
- Tiled Diffusion `tile_batch`: tiles per model call. Higher is faster on a GPU and costs memory
  linearly; 4 fits 8 GB with SD 2.1 at fp16.
- Tiled Diffusion `tile_size` (latent px; x8 = pixels): 64 (512 px) is SD 2.1-base's native size.
  Larger tiles mean fewer tiles and less overlap work but more memory per call.
- Tiled Diffusion `overlap`: 16 latent px. More overlap hides seams better and costs model work
  (about (tile / (tile - overlap))² times the untiled work).
- VAE Encode/Decode (Tiled) `tile_size` / `overlap`: smaller tiles use less memory; decode is the
  biggest single memory peak of the graph.
"""

WORKFLOWS = {
    "dossr_x4_large": (
        {
            1: ("TimeAwareSR_DoSSRCheckpointLoader", {"ckpt_name": "dossr_default.ckpt"}),
            2: ("LoadImage", {"image": SAMPLE}),
            33: ("SplitImageWithAlpha", {"image": (2, 0)}),
            3: ("ImageUpscaleWithModel", {"upscale_model": (1, 4), "image": (33, 0)}),
            30: ("TimeAwareSR_FitToModelSize", FIT_DOSSR),
            4: ("VAEEncodeTiled", {"pixels": (30, 0), "vae": (1, 2), "tile_size": 1024, "overlap": 64,
                                   "temporal_size": 64, "temporal_overlap": 8}),
            5: ("TimeAwareSR_TiledDiffusion", {"model": (1, 0), "tile_size": 64, "overlap": 16, "blend": "gaussian",
                                               "tile_batch": 4}),
            6: ("CLIPTextEncode", {"text": "clean, high-resolution, 8k", "clip": (1, 1)}),
            7: ("CLIPTextEncode", {"text": "", "clip": (1, 1)}),
            8: ("ControlNetApplyAdvanced", {"positive": (6, 0), "negative": (7, 0), "control_net": (1, 3),
                                            "image": (30, 0), "strength": 1.0, "start_percent": 0.0,
                                            "end_percent": 1.0, "vae": (1, 2)}),
            9: ("CFGGuider", {"model": (5, 0), "positive": (8, 0), "negative": (8, 1), "cfg": 1.0}),
            10: ("TimeAwareSR_DoSSRScheduler", {"model": (5, 0), "steps": 5, "t1": 500}),
            11: ("TimeAwareSR_DoSSRSampler", {"order": 3, "t1": 500}),
            12: ("RandomNoise", {"noise_seed": 231}),
            13: ("SamplerCustomAdvanced", {"noise": (12, 0), "guider": (9, 0), "sampler": (11, 0),
                                           "sigmas": (10, 0), "latent_image": (4, 0)}),
            14: ("VAEDecodeTiled", {"samples": (13, 0), "vae": (1, 2), "tile_size": 512, "overlap": 64,
                                    "temporal_size": 64, "temporal_overlap": 8}),
            31: ("TimeAwareSR_RestoreSize", {"image": (14, 0), "size": (30, 1), "mask": (2, 1)}),
            15: ("TimeAwareSR_ColorFix", {"image": (31, 0), "reference": (3, 0), "method": "wavelet"}),
            16: ("SaveImage", {"images": (15, 0), "filename_prefix": "DoSSR_x4_large"}),
        },
        {2: "Low-resolution input (e.g. 1024²)", 3: "ESRGAN x4 preprocess (tiled by ComfyUI)", 33: SPLIT_TITLE,
         4: "Encode in tiles", 5: "Tiles for every model call (memory vs speed: see note)", 6: "Prompt",
         7: "Negative prompt", 14: "Decode in tiles", 30: FIT_TITLE, 31: RESTORE_TITLE},
        NOTE,
    ),
}
