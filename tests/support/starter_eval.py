"""Held-out evaluation of the starter SR model, in-process through ComfyUI's own sampling path.

Used by tools/benchmarks/bench_starter_quality.py (the table) and tests/test_starter_model.py (a
pinned value). Images are uint8 RGB arrays; the LR is a plain bicubic downscale of the HR crop.
"""
import pathlib

import numpy as np
import torch
from PIL import Image

DATA = pathlib.Path(__file__).resolve().parent / "data"
HELD_OUT = ("chelsea", "coffee", "rocket")  # never trained on; chelsea is also the demo photo
WEIGHTS = pathlib.Path(__file__).resolve().parents[2] / "model_patches" / "weights" / "starter_sr.safetensors"


def held_out_images() -> dict:
    """Held-out 384x256 centre crops of scikit-image's chelsea, coffee (CC0) and rocket (public domain,
    SpaceX), shipped in tests/support/data: evaluation needs no extra package."""
    return {name: np.asarray(Image.open(DATA / f"{name}_hr.png").convert("RGB")) for name in HELD_OUT}


def bicubic(img: np.ndarray, size) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize(size, Image.BICUBIC))


def psnr(a: np.ndarray, b: np.ndarray, shave: int = 4) -> float:
    a, b = a[shave:-shave, shave:-shave].astype(np.float64), b[shave:-shave, shave:-shave].astype(np.float64)
    return float(10 * np.log10(255.0**2 / np.mean((a - b) ** 2)))


def ssim(a: np.ndarray, b: np.ndarray, shave: int = 4) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a[shave:-shave, shave:-shave], b[shave:-shave, shave:-shave], channel_axis=2))


def load_model(path=WEIGHTS):
    from timeaware_sr.model_patches.starter.starter_sr import load_starter

    return load_starter(str(path))


def upscale(model, cond, lr: np.ndarray, scale: int, sampler: str = "dossr", steps: int = 5, order: int = 3,
            seed: int = 0, final_clean: bool = True, schedule: str = "uniform") -> np.ndarray:
    """LR -> bicubic x scale -> starter model. sampler: 'dossr' (from the noised LR), 'euler' (img2img from
    t = 400 on the bicubic image) or 'ddpm' (from pure noise); final_clean: DoSSR's last step lands on sigma 0
    (the pixel-space default) instead of the t=0 state. schedule: 'uniform', 'tds' (one remapped schedule,
    a at mid-interval, n = 2) or 'tss' (per-pixel schedules from the LR's SDS map, the nodes' defaults)."""
    import comfy.k_diffusion.sampling as kds
    import comfy.sample
    import comfy.samplers
    from timeaware_sr.model_patches.tss.spatial_timestep import patch_spatial_timesteps
    from timeaware_sr.samplers.ddpm import spaced_timesteps
    from timeaware_sr.samplers.dossr_schedule import DEFAULT_T1, dossr_sigmas
    from timeaware_sr.samplers.dossr_solver import sample_dossr
    from timeaware_sr.image_ops.sds_map import variance_map
    from timeaware_sr.samplers.tds_schedule import tds_timesteps
    from timeaware_sr.samplers.tss_sampler import sample_tss

    h, w = lr.shape[:2]
    up = torch.from_numpy(bicubic(lr, (w * scale, h * scale)).astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    ms = model.get_model_object("model_sampling")
    variance = variance_map(torch.from_numpy(lr.astype(np.float32) / 255)[None]) if schedule == "tss" else None
    if sampler == "dossr":
        sigmas = dossr_sigmas(ms, steps, final_clean=final_clean)
        if schedule == "tds":
            start = spaced_timesteps(steps, DEFAULT_T1)[-1]
            t = tds_timesteps(steps + 1, start / 2, 2.0, start, 0.0)
            sigmas = torch.cat([ms.sigma(t[:-1].float()), sigmas[-1:]])  # keep DoSSR's last sigma
        options = {"order": order} if variance is None else {"order": order, "variance": variance}
        k_sampler = comfy.samplers.KSAMPLER(sample_dossr, options)
    elif sampler == "euler":
        t = torch.linspace(400, 0, steps) if schedule != "tds" else tds_timesteps(steps, 200.0, 2.0, 400.0, 0.0)
        sigmas = torch.cat([ms.sigma(t.float()), torch.zeros(1)])
        k_sampler = comfy.samplers.KSAMPLER(kds.sample_euler) if variance is None else \
            comfy.samplers.KSAMPLER(sample_tss, {"variance": variance, "a_range": (150.0, 300.0)})
    else:
        k_sampler, sigmas = comfy.samplers.sampler_object("ddpm"), comfy.samplers.calculate_sigmas(ms, "normal", steps)
    if variance is not None:
        model = patch_spatial_timesteps(model)
    noise = torch.randn(up.shape, generator=torch.Generator().manual_seed(seed))
    out = comfy.sample.sample_custom(model, noise, 1.0, k_sampler, sigmas, cond, cond, up, seed=seed, disable_pbar=True)
    return ((out[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
