"""Regenerate workflows/*.json from the graph specs below: `python tests/make_workflows.py`.

Widget order comes from a live ComfyUI server, so the files match what the editor saves."""
import json
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import comfy_live  # noqa: E402
from workflow_builder import build_workflow  # noqa: E402

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
    ),
    # DoSSR x4 (SPEC §3): ESRGAN preprocess -> encode -> 5 DoS-SDE steps with the ControlNet -> colour fix.
    "dossr_x4": (
        {
            1: ("TimeAwareSR_DoSSRCheckpointLoader", {"ckpt_name": "dossr_default.ckpt"}),
            2: ("LoadImage", {"image": SAMPLE}),
            3: ("ImageUpscaleWithModel", {"upscale_model": (1, 4), "image": (2, 0)}),
            4: ("ImageScaleBy", {"image": (3, 0), "upscale_method": "bicubic", "scale_by": 1.0}),
            5: ("VAEEncode", {"pixels": (4, 0), "vae": (1, 2)}),
            6: ("CLIPTextEncode", {"text": "clean, high-resolution, 8k", "clip": (1, 1)}),
            7: ("CLIPTextEncode", {"text": "", "clip": (1, 1)}),
            8: ("ControlNetApplyAdvanced", {"positive": (6, 0), "negative": (7, 0), "control_net": (1, 3),
                                            "image": (4, 0), "strength": 1.0, "start_percent": 0.0,
                                            "end_percent": 1.0, "vae": (1, 2)}),
            9: ("CFGGuider", {"model": (1, 0), "positive": (8, 0), "negative": (8, 1), "cfg": 1.0}),
            10: ("TimeAwareSR_DoSSRScheduler", {"model": (1, 0), "steps": 5, "t1": 500}),
            11: ("TimeAwareSR_DoSSRSampler", {"order": 3, "t1": 500}),
            12: ("RandomNoise", {"noise_seed": 231}),
            13: ("SamplerCustomAdvanced", {"noise": (12, 0), "guider": (9, 0), "sampler": (11, 0),
                                           "sigmas": (10, 0), "latent_image": (5, 0)}),
            14: ("VAEDecode", {"samples": (13, 0), "vae": (1, 2)}),
            15: ("TimeAwareSR_ColorFix", {"image": (14, 0), "reference": (4, 0), "method": "wavelet"}),
            16: ("SaveImage", {"images": (15, 0), "filename_prefix": "DoSSR_x4"}),
        },
        {2: "Low-resolution input", 3: "ESRGAN x4 preprocess", 4: "Resize to target (1.0 keeps x4)",
         6: "Prompt", 7: "Negative prompt"},
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
            16: ("TimeAwareSR_ColorFix", {"image": (15, 0), "reference": (3, 0), "method": "wavelet"}),
            17: ("SaveImage", {"images": (16, 0), "filename_prefix": "DoSSR_TSS_x4"}),
            18: ("PreviewImage", {"images": (6, 0)}),
        },
        {2: "Low-resolution input", 3: "ESRGAN x4 preprocess", 6: "Where the image is textured",
         7: "Prompt", 8: "Negative prompt"},
    ),
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
            16: ("TimeAwareSR_ColorFix", {"image": (15, 0), "reference": (3, 0), "method": "wavelet"}),
            17: ("SaveImage", {"images": (16, 0), "filename_prefix": "TSS_ControlNet_x4"}),
        },
        {2: "Low-resolution input", 3: "ESRGAN x4", 6: "Where the image is textured",
         10: "Even steps from t=499 (SR start)"},
    ),
}


def main():
    with tempfile.TemporaryDirectory() as work:
        server = comfy_live.ComfyServer(pathlib.Path(work), {})
        try:
            info = server.start().object_info()
        finally:
            server.stop()
    for name, (nodes, titles) in WORKFLOWS.items():
        path = comfy_live.PACK_DIR / "workflows" / f"{name}.json"
        path.write_text(json.dumps(build_workflow(nodes, info, titles), indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
