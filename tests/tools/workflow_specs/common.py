"""Graph specs shared by several methods' workflows."""

SAMPLE = "chelsea_lr.png"

# Nodes 1-9 of the TSS graphs on DoSSR's checkpoint (SD 2.1 + SR ControlNet): load, ESRGAN x4 and
# encode, the per-pixel patch, the LR's texture map, the prompts with the ControlNet applied.
TSS_CONTROLNET_FRONT = {
    1: ("TimeAwareSR_DoSSRCheckpointLoader", {"ckpt_name": "dossr_default.ckpt"}),
    2: ("LoadImage", {"image": SAMPLE}),
    3: ("ImageUpscaleWithModel", {"upscale_model": (1, 4), "image": (2, 0)}),
    4: ("VAEEncode", {"pixels": (3, 0), "vae": (1, 2)}),
    5: ("TimeAwareSR_TSSSpatialTimestepPatch", {"model": (1, 0)}),
    6: ("TimeAwareSR_SDSVarianceMap", {"image": (2, 0)}),
    7: ("CLIPTextEncode", {"text": "clean, high-resolution, 8k", "clip": (1, 1)}),
    8: ("CLIPTextEncode", {"text": "", "clip": (1, 1)}),
    9: ("ControlNetApplyAdvanced", {"positive": (7, 0), "negative": (8, 0), "control_net": (1, 3), "image": (3, 0),
                                    "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0, "vae": (1, 2)}),
}
