"""TSS sampling (SPEC §1-2): Euler or DPM++(2M) with a per-pixel sigma map at every step.

Each pixel follows its own TDS schedule t_k(i,j) = f(t_k; a(v_ij), n(v_ij)) over the uniform
timesteps t_k of the given sigmas, with a(v), n(v) linear in the SDS variance map v. The model is
called with the scalar (uniform) sigma and the map in transformer_options; it must carry the
per-pixel timestep patch (model_patches/tss/spatial_timestep.py). Updates are the base samplers'
(k-diffusion's sample_euler / sample_dpmpp_2m) applied elementwise.
"""
import torch
from tqdm.auto import trange

from .pixel_schedule import continuous_timestep, pixel_timestep_maps, require_patched, variance_at_latent, with_sigma_map
from .tds_schedule import SDS_N_RANGE, TSS_A_RANGE

BASES = ("euler", "dpmpp_2m")


def tss_sigma_maps(model_sampling, sigmas, variance, a_range, n_range):
    """[(B×1×h×w) per step]: each pixel's sigma; `variance` is B×1×h×w in [0, 1] at latent size."""
    positive = sigmas[sigmas > 0]
    t_maps = pixel_timestep_maps(continuous_timestep(model_sampling, positive), variance, a_range, n_range)
    maps = []
    for sigma, t_map in zip(sigmas, t_maps + [None] * (len(sigmas) - len(t_maps))):
        if sigma <= 0:
            maps.append(torch.zeros(variance.shape))
        elif len(positive) == 1:
            maps.append(torch.full(variance.shape, float(sigma)))
        else:
            maps.append(model_sampling.sigma(t_map.float().flatten()).cpu().view(variance.shape))
    return [m.float() for m in maps]


@torch.no_grad()
def sample_tss(model, x, sigmas, extra_args=None, callback=None, disable=None, variance=None, base="euler",
               a_range=TSS_A_RANGE, n_range=SDS_N_RANGE, model_sampling=None):
    """TSS (IJCAI 2025): time-dynamic and spatially dynamic sampling over a base Euler / DPM++(2M) update."""
    if base not in BASES:
        raise ValueError(f"TSS base sampler must be one of {BASES}, got {base!r}")
    if variance is None:
        raise ValueError("the TSS sampler needs a variance map (connect the SDS Variance Map node)")
    extra_args = {} if extra_args is None else extra_args
    if model_sampling is None:
        model_sampling = require_patched(model)
    maps = [m.to(x.device) for m in tss_sigma_maps(model_sampling, sigmas, variance_at_latent(variance, x),
                                                     a_range, n_range)]
    s_in = x.new_ones([x.shape[0]])
    old_denoised, h_last = None, None
    for i in trange(len(sigmas) - 1, disable=disable):
        S, S_next = maps[i], maps[i + 1]
        denoised = model(x, sigmas[i] * s_in, **with_sigma_map(extra_args, S))
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        if base == "euler" or sigmas[i + 1] == 0:
            d = (x - denoised) / S
            x = x + d * (S_next - S)
        else:  # DPM-Solver++(2M) in log-sigma time, per pixel
            h = S.log() - S_next.log()
            if old_denoised is None:
                x = (S_next / S) * x - torch.expm1(-h) * denoised
            else:
                r = h_last / h
                x = (S_next / S) * x - torch.expm1(-h) * ((1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised)
            h_last = h
        old_denoised = denoised
    return x

