"""TSS sampling (docs/tss.md §1-2): Euler or DPM++(2M) with a per-pixel sigma map at every step.

Each pixel follows its own TDS schedule t_k(i,j) = f(t_k; a(v_ij), n(v_ij)) over the uniform
timesteps t_k of the given sigmas, with a(v), n(v) linear in the SDS variance map v. The model is
called with the scalar (uniform) sigma and the map in transformer_options; it must carry the
per-pixel timestep patch (model_patches/tss/spatial_timestep.py). Updates are the base samplers'
(k-diffusion's sample_euler / sample_dpmpp_2m) applied elementwise.
"""
import torch
from tqdm.auto import trange

from ..clear_errors import InputError, require_finite_output
from .ddpm import continuous_timestep
from .preview_shape import require_previewable
from .pixel_schedule import DeviceSteps, pixel_schedule, require_patched, variance_at_latent, with_sigma_map
from .tds_schedule import SDS_N_RANGE, TSS_A_RANGE

BASES = ("euler", "dpmpp_2m")


def tss_timesteps(model_sampling, sigmas: torch.Tensor) -> torch.Tensor:
    """The model's continuous timestep of each sigma; a final sigma of 0 repeats the last positive
    one's, so the per-pixel interval ends at the last noisy step."""
    t = continuous_timestep(model_sampling, sigmas[sigmas > 0])
    if len(t) == 0:
        return torch.zeros(len(sigmas), dtype=torch.float64)
    return torch.cat([t, t[-1:].expand(len(sigmas) - len(t))])


@torch.no_grad()
def sample_tss(model, x, sigmas, extra_args=None, callback=None, disable=None, variance=None, base="euler",
               a_range=TSS_A_RANGE, n_range=SDS_N_RANGE, model_sampling=None):
    """TSS (IJCAI 2025): time-dynamic and spatially dynamic sampling over a base Euler / DPM++(2M) update."""
    if base not in BASES:
        raise InputError(f"TSS base sampler must be one of {BASES}, got {base!r}")
    if variance is None:
        raise InputError("the TSS sampler needs a variance map (connect the SDS Variance Map node)")
    if callback is not None:
        require_previewable(x, "TSS Sampler")
    extra_args = {} if extra_args is None else extra_args
    if model_sampling is None:
        model_sampling = require_patched(model)
    schedule = pixel_schedule(model_sampling, sigmas, tss_timesteps(model_sampling, sigmas),
                              variance_at_latent(variance, x), a_range, n_range)
    sigma_maps = DeviceSteps(lambda k: schedule[k][1:], len(sigmas), x.device)  # float32, moved in chunks
    s_in = x.new_ones([x.shape[0]])
    old_denoised, h_last = None, None
    for i in trange(len(sigmas) - 1, disable=disable):
        (S,), (S_next,) = sigma_maps[i], sigma_maps[i + 1]
        denoised = model(x, sigmas[i] * s_in, **with_sigma_map(extra_args, S))
        require_finite_output(denoised, model, i, x)
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

