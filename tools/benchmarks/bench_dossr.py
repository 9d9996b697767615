"""DoSSR sampling speed against ComfyUI's dpmpp_2m_sde at the same model calls (issue: ratio <= 1.02).

    python tools/benchmarks/bench_dossr.py [--size real|tiny] [--latent 64] [--repeats 3] [--device cpu|cuda]

Prints wall time per sampling run (5 model calls, CFG 1, same sigmas and seed) for both samplers,
their ratio, and each sampler's own per-step overhead measured with a free (identity) model, also
for DoSSR with TSS per-pixel schedules (the map's own set-up included).
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
    a = parse_args(latent=64, repeats=3)
    from types import SimpleNamespace
    import comfy.k_diffusion.sampling as kds
    import comfy.sample
    import comfy.samplers
    from support import ckpt_factory as cf
    from support import env
    from timeaware_sr.samplers.dossr_schedule import dossr_sigmas, etas_at_sigmas
    from timeaware_sr.samplers.dossr_solver import sample_dossr

    model = random_sd21_unet(a.size)
    ms = model.get_model_object("model_sampling")
    sigmas = dossr_sigmas(ms, 5)
    width = cf.unet_config("sd21", a.size)["context_dim"]
    device = env.torch_device()
    cond = [[torch.randn(1, 77, width, device=device), {}]]
    lr = torch.randn(1, 4, a.latent, a.latent, device=device)
    noise = torch.randn_like(lr)
    from timeaware_sr.model_patches.tss.spatial_timestep import patch_spatial_timesteps

    variance = torch.rand(1, a.latent * 8, a.latent * 8, generator=torch.Generator().manual_seed(0)).to(device)
    samplers = {"dossr (order 3)": (model, comfy.samplers.KSAMPLER(sample_dossr, {"order": 3})),
                "dpmpp_2m_sde": (model, comfy.samplers.sampler_object("dpmpp_2m_sde")),
                "dossr + TSS map": (patch_spatial_timesteps(model),
                                    comfy.samplers.KSAMPLER(sample_dossr, {"order": 3, "variance": variance}))}

    def run(model_and_sampler):
        m, sampler = model_and_sampler
        start = time.perf_counter()
        comfy.sample.sample_custom(m, noise, 1.0, sampler, sigmas, cond, cond, lr, seed=1, disable_pbar=True)
        env.synchronize()
        return time.perf_counter() - start

    for sampler in samplers.values():  # warm-up: model load, kernels
        run(sampler)
    times = {name: [] for name in samplers}
    for _ in range(a.repeats):  # interleaved, so drift on a shared machine hits both
        for name, sampler in samplers.items():
            times[name].append(run(sampler))
    print(f"SD2.1 UNet ({a.size}), latent {a.latent}x{a.latent}, 5 model calls, CFG 1, device {device}, "
          f"torch threads {torch.get_num_threads()}")
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"  {name:18s} median {med[name]:.3f} s   runs {', '.join(f'{x:.3f}' for x in t)}")
    print(f"  ratio dossr / dpmpp_2m_sde: {med['dossr (order 3)'] / med['dpmpp_2m_sde']:.3f}")
    print(f"  ratio dossr + TSS map (patched model, per-pixel timesteps) / dossr: "
          f"{med['dossr + TSS map'] / med['dossr (order 3)']:.3f}")

    # Sampler-only overhead: the same loops around a model that costs nothing.
    import comfy.patcher_extension
    from timeaware_sr.model_patches.tss.spatial_timestep import WRAPPER_KEY

    class FreeModel:  # costs nothing; exposes model_sampling (and the TSS patch's marker) where samplers look
        inner_model = SimpleNamespace(model_patcher=SimpleNamespace(
            get_model_object=lambda name: ms,
            wrappers={comfy.patcher_extension.WrappersMP.APPLY_MODEL: {WRAPPER_KEY: None}}))

        def __call__(self, x, sigma, **kwargs):
            return x

    identity = FreeModel()
    x = lr + sigmas[0] * noise
    etas = etas_at_sigmas(ms, sigmas)
    overhead = {}
    for name, fn in {"dossr": lambda: sample_dossr(identity, x, sigmas, x_hat0=lr, etas=etas, disable=True),
                     "dossr + TSS map": lambda: sample_dossr(identity, x, sigmas, x_hat0=lr, variance=variance,
                                                             disable=True),
                     "dpmpp_2m_sde": lambda: kds.sample_dpmpp_2m_sde(identity, x, sigmas, disable=True)}.items():
        fn()
        env.synchronize()
        start = time.perf_counter()
        for _ in range(20):
            fn()
        env.synchronize()
        overhead[name] = (time.perf_counter() - start) / 20 / 5 * 1e3
    print("  sampler-only overhead per step: " + ", ".join(f"{n} {ms_:.2f} ms" for n, ms_ in overhead.items())
          + f"  (model call: {med['dpmpp_2m_sde'] / 5 * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()
