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

WORKFLOWS = {
    # Interim main job while no SR model ships: plain Lanczos x4, then the pack's colour fix.
    "upscale_color_fix": (
        {
            1: ("LoadImage", {"image": SAMPLE}),
            2: ("ImageScaleBy", {"image": (1, 0), "upscale_method": "lanczos", "scale_by": 4.0}),
            3: ("TimeAwareSR_ColorFix", {"image": (2, 0), "reference": (1, 0), "method": "wavelet"}),
            4: ("SaveImage", {"images": (3, 0), "filename_prefix": "TimeAwareSR_demo"}),
        },
        {1: "Low-resolution input", 2: "Upscale x4 (stand-in for an SR model)"},
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
