"""Memory and time of the pack's size-dependent work (issue 11 item 1).

    flock /tmp/heavy.lock python tools/benchmarks/bench_memory.py [--sds-size 4096] [--latent 128]
    python tools/benchmarks/bench_memory.py --sds after     # without the old 5 GB conv: no lock

1. TSS sampler peak memory against steps at a fixed latent size (a model that costs nothing, so the
   sampler's own per-pixel schedule is all that is measured): flat in steps, since each step's maps
   are built when the step runs.
2. SDS variance map of one sds-size² RGB image: time and peak memory of the banded implementation
   and of the whole-image float64 conv2d it replaced (written out below as "before").

Each measurement runs in its own process; peak memory is that process's peak resident set
(ru_maxrss) minus its resident set just before the measured call.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))  # support/


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sds_before(image):
    """The previous SDS map: whole-image float64 conv2d (im2col copies of the image per filter)."""
    import torch
    import torch.nn.functional as F

    from timeaware_sr.image_ops.sds_map import BLUR_SIGMA, WINDOW, luma

    def separable(x, k):
        r = k.numel() // 2
        x = F.conv2d(F.pad(x, (r, r, r, r), mode="replicate"), k.view(1, 1, 1, -1))
        return F.conv2d(x, k.view(1, 1, -1, 1))

    y = luma(image).double()
    box = torch.full((WINDOW,), 1.0 / WINDOW, dtype=y.dtype)
    v0 = (separable(y * y, box) - separable(y, box) ** 2).clamp(min=0)
    x = torch.arange(WINDOW, dtype=y.dtype) - WINDOW // 2
    g = torch.exp(-x * x / (2 * BLUR_SIGMA**2))
    vg = separable(v0, g / g.sum()).flatten(1)
    low, high = vg.min(1, keepdim=True).values, vg.max(1, keepdim=True).values
    return ((vg - low) / (high - low)).view(image.shape[:3]).float()


def measure_sds(which: str, size: int) -> dict:
    import torch

    from timeaware_sr.image_ops.sds_map import variance_map

    image = torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(0))
    before = rss_mb()
    start = time.perf_counter()
    out = (sds_before if which == "before" else variance_map)(image)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_mb": peak_mb() - before, "checksum": float(out.double().sum())}


def measure_tss(steps: int, latent: int) -> dict:
    from types import SimpleNamespace

    import torch

    from support import ckpt_factory as cf
    import comfy.model_management
    from timeaware_sr.model_patches.sd_components import build_unet
    from timeaware_sr.model_patches.tss.spatial_timestep import patch_spatial_timesteps
    from timeaware_sr.samplers.tds_schedule import tds_sigmas
    from timeaware_sr.samplers.tss_sampler import sample_tss

    sd = cf.unet_state_dict("sd21", "tiny", "eps")
    patched = patch_spatial_timesteps(build_unet({k[len(cf.UNET_PREFIX):]: v for k, v in sd.items()}))
    ms = patched.get_model_object("model_sampling")

    class FreeModel:  # the sampler's own work around a model that costs nothing
        inner_model = SimpleNamespace(model_patcher=patched)

        def __call__(self, x, sigma, **kwargs):
            return x * 0.5

    x = torch.randn(1, 4, latent, latent)
    variance = torch.rand(1, latent * 8, latent * 8)
    sigmas = tds_sigmas(ms, steps)
    before = rss_mb()
    start = time.perf_counter()
    sample_tss(FreeModel(), x, sigmas, variance=variance, model_sampling=ms, disable=True)
    seconds = time.perf_counter() - start
    del comfy.model_management  # imported so ComfyUI's set-up cost is outside the measurement
    return {"seconds": seconds, "peak_mb": peak_mb() - before}


def in_subprocess(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--measure", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sds-size", type=int, default=4096)
    ap.add_argument("--latent", type=int, default=128)
    ap.add_argument("--steps", default="10,100,1000,3000", help="TSS step counts; empty to skip")
    ap.add_argument("--sds", default="before,after", help="SDS variants; 'after' alone needs no heavy lock")
    ap.add_argument("--measure", nargs="*")
    a = ap.parse_args()
    from support import env

    env.setup(cpu=True)
    if a.measure:
        kind, *rest = a.measure
        result = measure_sds(rest[0], int(rest[1])) if kind == "sds" else measure_tss(int(rest[0]), int(rest[1]))
        print(json.dumps(result))
        return
    import torch

    print(f"device: cpu, threads {torch.get_num_threads()}")
    print(f"TSS sampler (Euler), latent {a.latent}x{a.latent} (a {a.latent * 8}² image), model that costs nothing:")
    print(f"  {'steps':>6} {'time s':>8} {'peak MB':>8}   all-steps maps (old) would need")
    for steps in [int(s) for s in a.steps.split(",") if s]:
        r = in_subprocess(["tss", str(steps), str(a.latent)])
        old_mb = (steps + 1) * a.latent**2 * (8 + 4) / 2**20  # a float64 t map and a float32 sigma map per step
        print(f"  {steps:>6} {r['seconds']:>8.2f} {r['peak_mb']:>8.0f}   {old_mb:>8.0f} MB")
    print(f"SDS variance map, one {a.sds_size}² RGB image:")
    for which in [w for w in a.sds.split(",") if w]:
        r = in_subprocess(["sds", which, str(a.sds_size)])
        print(f"  {which:<7} {r['seconds']:>7.2f} s {r['peak_mb']:>8.0f} MB peak   (map sum {r['checksum']:.4f})")


if __name__ == "__main__":
    main()
