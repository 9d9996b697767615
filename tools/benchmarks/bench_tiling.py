"""Memory and time of Tiled Diffusion (issue 15): one model call on the whole latent against the same
call in tiles, in one run.

    python tools/benchmarks/bench_tiling.py [--model tiny-sd21|real-sd21|starter] [--latent 256]
        [--tile 64] [--overlap 16] [--tile-batch 4] [--repeats 1] [--device cpu|cuda]

real-sd21: a real-size SD 2.1 UNet (random weights, float32 on CPU) with a 1024-wide text context. A
tiled call's peak does not grow with the latent beyond two latent-sized float32 accumulators (the x0
sum and the weight sum), so its peak at one size gives the peak at any larger size plus those.

--latent 256 is a 2048² output for an SD model (the starter model is pixel-space: its latent is the
image). Peak memory: on CPU, the growth of the process's peak resident set during the call (Linux
VmHWM, reset before each call through /proc/self/clear_refs; large tensors are mmap-backed, so this
follows live tensor memory: the script re-runs itself with MALLOC_MMAP_THRESHOLD_=65536 so glibc keeps
every tensor of 64 KiB or more in its own mapping, returned on free, instead of raising that threshold
after the first large free and reusing resident heap); on CUDA, torch.cuda.max_memory_allocated. Time overhead is reported
raw and at equal work: with overlap 0 when the tiles partition the latent exactly, and per computed
pixel for the chosen overlap. Also prints the tile count and the overlap share.
"""
import argparse
import os
import pathlib
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))  # support/


def _vm(field):
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_memory(fn, device):
    """(result, bytes above the starting point at the call's peak)."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        out = fn()
        torch.cuda.synchronize()
        return out, torch.cuda.max_memory_allocated() - start
    pathlib.Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    start = _vm("VmRSS")
    out = fn()
    return out, _vm("VmHWM") - start


def build(model_name, latent, device):
    """(MODEL, x, the call's conditioning): the starter with its LR as the concat latent, or a tiny
    SD 2.1 UNet (real block structure and attention, narrow channels) with a text context."""
    from support import ckpt_factory as cf
    from common import random_sd21_unet

    if model_name == "starter":
        from support.starter_eval import WEIGHTS
        from timeaware_sr.model_patches.starter.starter_sr import load_starter

        x = torch.randn(1, 3, latent, latent, device=device)
        return load_starter(str(WEIGHTS))[0], x, {"c_concat": x.clone()}
    size = "real" if model_name == "real-sd21" else "tiny"
    x = torch.randn(1, 4, latent, latent, device=device)
    context = torch.randn(1, 77, 1024 if size == "real" else cf.TINY_CONTEXT, device=device)
    return random_sd21_unet(size), x, {"c_crossattn": context}


def main():
    if sys.platform.startswith("linux") and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny-sd21", choices=["tiny-sd21", "real-sd21", "starter"])
    ap.add_argument("--latent", type=int, default=256)
    ap.add_argument("--tile", type=int, default=64)
    ap.add_argument("--overlap", type=int, default=16)
    ap.add_argument("--tile-batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    a = ap.parse_args()
    from support import env

    env.setup(cpu=a.device == "cpu")
    import comfy.model_management
    from timeaware_sr.model_patches.tiling.tile_grid import overlap_share, tile_boxes
    from timeaware_sr.model_patches.tiling.tiled_model import patch_tiled_diffusion

    print(f"device: {env.device_name()}, model {a.model}, latent {a.latent}² ({a.latent * 8}² output for an SD VAE), "
          f"threads {torch.get_num_threads()}")
    device = comfy.model_management.get_torch_device()
    model, x, kwargs = build(a.model, a.latent, device)
    sigma = torch.tensor([2.0], device=device)

    def call(patcher):
        comfy.model_management.load_models_gpu([patcher])
        options = {"wrappers": patcher.wrappers}

        def run():
            with torch.inference_mode():
                return patcher.model.apply_model(x, sigma, transformer_options=options, **kwargs)

        best_time, peak = float("inf"), 0
        for _ in range(a.repeats):
            start = time.perf_counter()
            out, used = peak_memory(run, a.device)
            best_time, peak = min(best_time, time.perf_counter() - start), max(peak, used)
            del out
        return best_time, peak

    rows = []
    for name, patcher, overlap in [
        ("untiled", model, None),
        (f"tiles {a.tile}, overlap 0", patch_tiled_diffusion(model, a.tile, 0, "gaussian", a.tile_batch), 0),
        (f"tiles {a.tile}, overlap {a.overlap}", patch_tiled_diffusion(model, a.tile, a.overlap, "gaussian", a.tile_batch), a.overlap),
    ]:
        seconds, peak = call(patcher)
        if overlap is None:
            tiles, share = 1, 0.0
        else:
            tiles, share = len(tile_boxes(a.latent, a.latent, a.tile, overlap)), overlap_share(a.latent, a.latent, a.tile, overlap)
        rows.append((name, seconds, peak, tiles, share))
    base_time, base_peak = rows[0][1], rows[0][2]
    for name, seconds, peak, tiles, share in rows:
        print(f"{name:28s} {seconds:8.2f} s  peak {peak / 2**20:9.1f} MiB  memory ratio {peak / base_peak:5.3f}  "
              f"tiles {tiles:4d}  overlap share {share:6.3f}  time ratio {seconds / base_time:5.3f}  "
              f"at equal work {seconds / base_time / (1 + share):5.3f}")


if __name__ == "__main__":
    main()
