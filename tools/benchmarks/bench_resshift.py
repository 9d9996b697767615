"""One-step ResShift-family SR (SinSR / TAD-SR) end to end, and the network's share of it.

    python tools/benchmarks/bench_resshift.py [--size real|tiny] [--lr 256] [--repeats 2] [--warmup 1] [--device cpu|cuda]

Random weights in the official layouts (the timing does not depend on the values). Stages, as the
shipped sinsr_onestep_x4 graph runs them: pad + bicubic x4, VQ-f4 encode (1024 px), one network call
at t = T-1 through ComfyUI's sampler, VQ-f4 decode (quantized) and the crop. Prints the median of
`repeats` runs after `warmup` untimed ones (the first run also loads the models).
"""
import argparse
import pathlib
import statistics
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))  # support/


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="real", choices=["real", "tiny"])
    ap.add_argument("--lr", type=int, default=256, help="LR side in pixels (output is 4x)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs first (model loading, kernels)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    a = ap.parse_args()
    from support import env

    env.setup(cpu=a.device == "cpu")
    print(f"device: {env.device_name()}, size {a.size}, LR {a.lr}x{a.lr} -> {4 * a.lr}x{4 * a.lr}")
    import comfy.model_management as mm
    import comfy.sample
    import comfy.samplers

    from support import resshift_factory as factory
    from timeaware_sr.model_patches.resshift.checkpoint import build_resshift_model
    from timeaware_sr.model_patches.resshift.lr_image import crop_output, prepare_lr
    from timeaware_sr.model_patches.resshift.model import LQ_KEY
    from timeaware_sr.model_patches.resshift.vq_f4 import VQModelF4, build_vq_f4_vae, vq_config_from_weights
    from timeaware_sr.samplers.resshift_sampler import sample_resshift
    from timeaware_sr.samplers.resshift_schedule import resshift_sigmas

    model = build_resshift_model(factory.unet_state_dict(a.size), "sinsr", "bench")
    vq_sd = factory.vq_state_dict(a.size)
    vq = VQModelF4(**vq_config_from_weights(vq_sd))
    vq.load_state_dict(vq_sd)
    vae = build_vq_f4_vae(vq)
    sigmas = resshift_sigmas(model.get_model_object("model_sampling"))
    image = torch.rand(1, a.lr // 8, a.lr // 8, 3).movedim(-1, 1)
    image = torch.nn.functional.interpolate(image, size=(a.lr, a.lr), mode="bicubic").clamp(0, 1).movedim(1, -1)
    sampler = comfy.samplers.KSAMPLER(sample_resshift)

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()

    def run():
        times = {}
        t = time.perf_counter()
        upscaled, lq = prepare_lr(image)
        z = vae.encode(upscaled)
        sync()
        times["encode (pad, bicubic, VQ-f4)"] = time.perf_counter() - t
        t = time.perf_counter()
        cond = [[torch.zeros(1, 1, 1), {LQ_KEY: lq}]]
        x0 = comfy.sample.sample_custom(model, torch.randn_like(z), 1.0, sampler, sigmas, cond, cond, z,
                                        disable_pbar=True, seed=0)
        sync()
        times["network (one step, in ComfyUI's sampler)"] = time.perf_counter() - t
        t = time.perf_counter()
        out = crop_output(vae.decode(x0), a.lr, a.lr)
        sync()
        times["decode (VQ-f4, quantized) + crop"] = time.perf_counter() - t
        assert out.shape == (1, 4 * a.lr, 4 * a.lr, 3)
        return times

    with torch.inference_mode():
        for _ in range(a.warmup):
            run()
        runs = [run() for _ in range(a.repeats)]
    stages = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    total = sum(stages.values())
    for k, v in stages.items():
        print(f"{k:45s} {v:8.3f} s  ({100 * v / total:5.1f} %)")
    print(f"{'total':45s} {total:8.3f} s   (median of {a.repeats}, after {a.warmup} warm-up; {mm.get_torch_device()})")


if __name__ == "__main__":
    main()
