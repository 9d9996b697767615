"""TADSR one-step SR end to end against a ComfyUI 1-step KSampler on the same UNet (issue: ratio <= 1.05).

    flock /tmp/heavy.lock python tools/benchmarks/bench_tadsr.py [--size real|tiny] [--lr 128] [--repeats 3]
        [--device cpu|cuda] [--with-lora]

Both pipelines take the same LR image, upscale it x4 (bicubic), encode, run one UNet call on the
TADSR-patched SD 2.1 UNet (random weights, real sizes) and decode:
  A  TADSR: time-aware encoder at t_s = 500 (sampled latent) -> TADSR one-step sampler -> decode
  B  stock: VAE Encode (same VAE weights, stock encoder) -> KSampler euler, 1 step -> decode
Runs are interleaved A B A B after one warm-up each; prints min and median per pipeline and the ratio.
TADSR's UNet LoRA changes weight values, not shapes or ops (ComfyUI merges the patches into the
weights when the model loads), so by default both pipelines run the plain random UNet; --with-lora
patches it first, which needs ComfyUI's weight backup, about 3.4 GB more at real size.
"""
import pathlib
import statistics
import sys
import time

import torch

TESTS = pathlib.Path(__file__).resolve().parents[2] / "tests"  # support/
sys.path.insert(0, str(TESTS))

from common import parse_args, random_sd21_unet  # noqa: E402  (tools/benchmarks/common.py)


def main():
    def own_arguments(ap):
        ap.add_argument("--lr", type=int, default=128, help="LR side; the output is 4x")
        ap.add_argument("--with-lora", action="store_true", help="run both pipelines on the TADSR-patched UNet")

    a = parse_args(repeats=3, add=own_arguments)
    import comfy.diffusers_convert
    import comfy.model_base
    import comfy.sample
    import comfy.samplers
    import comfy.utils
    from support import ckpt_factory as cf
    from support import tadsr_factory as tf
    from timeaware_sr.model_patches.sd_components import build_vae
    from timeaware_sr.model_patches.tadsr import checkpoint as ck
    from timeaware_sr.model_patches.tadsr.one_step_model import tadsr_model
    from timeaware_sr.model_patches.tadsr.time_vae_folder import time_aware_vae
    from timeaware_sr.model_patches.tadsr.encode import encode_moments, latent_from_moments
    from timeaware_sr.samplers.tadsr_one_step import sample_tadsr_one_step, tadsr_sigmas

    base = random_sd21_unet(a.size, comfy.model_base.ModelType.EPS)
    ckpt = ck.parse_tadsr_checkpoint(tf.tadsr_pkl_dict(a.size))
    model = tadsr_model(base, ckpt) if a.with_lora else base
    vae_sd = tf.time_vae_state_dict(a.size)
    tadsr_vae = time_aware_vae(vae_sd, ckpt)
    stock_vae = build_vae(comfy.diffusers_convert.convert_vae_state_dict({k: v for k, v in vae_sd.items() if "time" not in k}))
    del vae_sd
    width = cf.unet_config("sd21", a.size)["context_dim"]
    cond = [[torch.randn(1, 77, width, generator=torch.Generator().manual_seed(0)), {}]]
    lr = torch.rand(1, a.lr, a.lr, 3, generator=torch.Generator().manual_seed(1))
    sampler = comfy.samplers.KSAMPLER(sample_tadsr_one_step)
    sigmas = tadsr_sigmas(model.get_model_object("model_sampling"), 500)

    def upscale(image):
        return comfy.utils.common_upscale(image.movedim(-1, 1), a.lr * 4, a.lr * 4, "bicubic", "disabled").movedim(1, -1)

    def tadsr():
        latent = latent_from_moments(encode_moments(tadsr_vae, upscale(lr), 500), seed=0)
        out = comfy.sample.sample_custom(model, torch.zeros_like(latent), 1.0, sampler, sigmas, cond, cond, latent,
                                         seed=0, disable_pbar=True)
        return tadsr_vae.decode(out)

    def ksampler():
        latent = stock_vae.encode(upscale(lr))
        out = comfy.sample.sample(model, torch.zeros_like(latent), 1, 1.0, "euler", "simple", cond, cond, latent,
                                  denoise=1.0, disable_noise=True, seed=0, disable_pbar=True)
        return stock_vae.decode(out)

    def timed(fn):
        start = time.perf_counter()
        out = fn()
        if torch.cuda.is_available() and a.device != "cpu":
            torch.cuda.synchronize()
        assert out.shape[1:3] == (a.lr * 4, a.lr * 4)
        return time.perf_counter() - start

    pipelines = {"TADSR one-step": tadsr, "KSampler 1 step": ksampler}
    for fn in pipelines.values():  # warm-up: weight patching, model loads
        timed(fn)
    times = {name: [] for name in pipelines}
    for _ in range(a.repeats):  # interleaved, so drift on a shared machine hits both
        for name, fn in pipelines.items():
            times[name].append(timed(fn))
    print(f"SD2.1 UNet{' + TADSR LoRA' if a.with_lora else ''} + SD VAE ({a.size}), {a.lr}x{a.lr} -> "
          f"{4 * a.lr}x{4 * a.lr}, device {a.device}, "
          f"torch threads {torch.get_num_threads()}")
    for name, t in times.items():
        print(f"  {name:16s} min {min(t):.3f} s  median {statistics.median(t):.3f} s   runs {', '.join(f'{x:.3f}' for x in t)}")
    ta, tb = times["TADSR one-step"], times["KSampler 1 step"]
    print(f"  ratio TADSR / KSampler: min {min(ta) / min(tb):.3f}, median {statistics.median(ta) / statistics.median(tb):.3f}")


if __name__ == "__main__":
    main()
