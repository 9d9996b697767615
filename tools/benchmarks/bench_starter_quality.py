"""Held-out quality of the starter SR model: PSNR / SSIM table (issue: starter model).

    pip install scikit-image==0.26.0   # SSIM and the coffee / rocket held-out photos
    python tools/benchmarks/bench_starter_quality.py [--scale 4]

Rows: bicubic; DoSSR at 1/3/5 steps, orders 1 and 3 (from the noised LR, last step to sigma 0), each
without and with TSS (per-pixel schedules from the LR's SDS map); DoSSR's released ending (the state at
t=0); DDPM from pure noise at 5 steps with the same model; uniform vs TDS vs TSS schedules for Euler
img2img from t = 400. Averaged over the held-out images and --seeds seeds; then the per-image PSNR of
bicubic and of DoSSR 1 step (the demo's setting), since the goal is to beat bicubic on every image.
"""
import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))  # support/


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--weights", default=None, help="another starter file (default: the shipped one)")
    ap.add_argument("--quick", action="store_true", help="only bicubic and DoSSR 1, 3, 5 steps (order 1) with and without TSS")
    a = ap.parse_args()
    from support import env

    env.setup(cpu=a.device == "cpu")
    print(f"device: {env.device_name()}")
    from support import starter_eval as ev

    model, _, cond = ev.load_model(a.weights or ev.WEIGHTS)
    images = ev.held_out_images()
    rows = [("bicubic", None)] + [(f"DoSSR {n} step{'s' if n > 1 else ''}, order {o}{', TSS' if tss else ''}",
                                   ("dossr", n, o, True, "tss" if tss else "uniform"))
                                  for n in (1, 3, 5) for o in ((1,) if n == 1 else (1, 3)) for tss in (False, True)]
    rows += [("DoSSR 5 steps, order 3, TDS", ("dossr", 5, 3, True, "tds")),
             ("DoSSR 5 steps, order 1, t=0 state", ("dossr", 5, 1, False)), ("DDPM from noise, 5 steps", ("ddpm", 5, 1, True))]
    rows += [(f"Euler 8 steps from t=400, {schedule}", ("euler", 8, 1, True, schedule)) for schedule in ("uniform", "tds", "tss")]
    if a.quick:
        rows = [(label, how) for label, how in rows if how is None or (how[0] == "dossr" and how[2] == 1 and how[3]
                                                                       and how[4:] in (("uniform",), ("tss",)))]
    print(f"starter model, x{a.scale}, held-out {', '.join(images)} ({len(images)} images x {a.seeds} seeds), "
          f"LR = bicubic downscale")
    print(f"{'method':36s} {'PSNR (dB)':>10s} {'SSIM':>7s}")
    for label, how in rows:
        scores = []
        for name, hr in images.items():
            lr = ev.bicubic(hr, (hr.shape[1] // a.scale, hr.shape[0] // a.scale))
            for seed in range(a.seeds if how else 1):
                sr = ev.bicubic(lr, (hr.shape[1], hr.shape[0])) if how is None else \
                    ev.upscale(model, cond, lr, a.scale, *how[:3], seed, *how[3:])
                scores.append((ev.psnr(sr, hr), ev.ssim(sr, hr)))
        p, s = np.mean(scores, axis=0)
        print(f"{label:36s} {p:10.2f} {s:7.4f}", flush=True)
    print(f"\nper image, x{a.scale}, seed 0: PSNR (dB) / SSIM")
    for name, hr in images.items():
        lr = ev.bicubic(hr, (hr.shape[1] // a.scale, hr.shape[0] // a.scale))
        base = ev.bicubic(lr, (hr.shape[1], hr.shape[0]))
        sr = ev.upscale(model, cond, lr, a.scale, "dossr", 1, 1, 0)
        print(f"{name:10s} bicubic {ev.psnr(base, hr):6.2f} / {ev.ssim(base, hr):.4f}   DoSSR 1 step "
              f"{ev.psnr(sr, hr):6.2f} / {ev.ssim(sr, hr):.4f}   ({ev.psnr(sr, hr) - ev.psnr(base, hr):+.2f} dB)")


if __name__ == "__main__":
    main()
