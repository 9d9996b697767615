"""Cost of TSS's per-pixel timesteps (issue: TSS; goal patched/unpatched <= 1.10).

    python tools/benchmarks/bench_tss.py [--size real|tiny] [--latent 64] [--repeats 5]

Prints the UNet forward time unpatched, patched with no map, and patched with a per-pixel map
(a TDS+SDS map with many distinct timesteps), their ratios, and the TSS sampler's own per-step cost
next to one model call.
"""
import pathlib
import statistics
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))  # support/

from common import parse_args, random_sd21_unet  # noqa: E402  (tools/benchmarks/common.py)


def main():
    a = parse_args(latent=64, repeats=5)
    from types import SimpleNamespace

    from support import ckpt_factory as cf
    from support import env
    import comfy.model_management
    import comfy.samplers
    from timeaware_sr.model_patches.tss.spatial_timestep import SIGMA_MAP_KEY, patch_spatial_timesteps
    from timeaware_sr.samplers.pixel_schedule import pixel_schedule
    from timeaware_sr.samplers.tss_sampler import sample_tss, tss_timesteps

    model = random_sd21_unet(a.size)
    patched = patch_spatial_timesteps(model)
    ms = model.get_model_object("model_sampling")
    width = cf.unet_config("sd21", a.size)["context_dim"]
    device = env.torch_device()
    x = torch.randn(1, 4, a.latent, a.latent, device=device)
    context = torch.randn(1, 77, width, device=device)
    sigmas = comfy.samplers.calculate_sigmas(ms, "normal", 20)
    variance = torch.rand(1, 1, a.latent, a.latent)
    sigma_map = pixel_schedule(ms, sigmas, tss_timesteps(ms, sigmas), variance, (400.0, 700.0), (1.0, 3.0))[10][1].float().to(device)
    sigma = sigmas[10].view(1).to(device)

    def timed(patcher, options):
        comfy.model_management.load_models_gpu([patcher])
        options = dict(options, wrappers=patcher.wrappers)
        times = []
        with torch.no_grad():
            for _ in range(a.repeats + 1):
                start = time.perf_counter()
                patcher.model.apply_model(x, sigma, c_crossattn=context, transformer_options=options)
                env.synchronize()
                times.append(time.perf_counter() - start)
        return statistics.median(times[1:])

    base = timed(model, {})
    no_map = timed(patched, {})
    with_map = timed(patched, {SIGMA_MAP_KEY: sigma_map})
    distinct = int(torch.unique(sigma_map).numel())
    print(f"SD2.1 UNet ({a.size}), latent {a.latent}x{a.latent}, device {device}, CPU threads {torch.get_num_threads()}, "
          f"map with {distinct} distinct sigmas")
    print(f"  unpatched            {base * 1e3:8.1f} ms")
    print(f"  patched, no map      {no_map * 1e3:8.1f} ms   ratio {no_map / base:.3f}")
    print(f"  patched, per-pixel   {with_map * 1e3:8.1f} ms   ratio {with_map / base:.3f}")

    class FreeModel:  # the sampler's own work, around a model that costs nothing
        inner_model = SimpleNamespace(model_patcher=patched)

        def __call__(self, x, sigma, **kwargs):
            return x * 0.5

    steps = 20
    run = lambda: sample_tss(FreeModel(), x, sigmas, variance=variance[:, 0].to(device), model_sampling=ms, disable=True)  # noqa: E731
    run()
    env.synchronize()
    start = time.perf_counter()
    for _ in range(3):
        run()
    env.synchronize()
    per_step = (time.perf_counter() - start) / 3 / steps
    print(f"  TSS sampler overhead {per_step * 1e3:8.2f} ms per step ({per_step / with_map * 100:.2f}% of a model call)")


if __name__ == "__main__":
    main()
