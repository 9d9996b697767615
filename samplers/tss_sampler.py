"""TSS sampling (SPEC §1-2): Euler or DPM++(2M) with a per-pixel sigma map at every step.

Each pixel follows its own TDS schedule t_k(i,j) = f(t_k; a(v_ij), n(v_ij)) over the uniform
timesteps t_k of the given sigmas, with a(v), n(v) linear in the SDS variance map v. The model is
called with the scalar (uniform) sigma and the map in transformer_options; it must carry the
per-pixel timestep patch (model_patches/spatial_timestep.py). Updates are the base samplers'
(k-diffusion's sample_euler / sample_dpmpp_2m) applied elementwise.
"""
import torch
from tqdm.auto import trange

from ..model_patches.spatial_timestep import SIGMA_MAP_KEY, WRAPPER_KEY
from .sds_map import to_latent_size
from .tds_schedule import tds_remap_interval

BASES = ("euler", "dpmpp_2m")


def continuous_timestep(model_sampling, sigma: torch.Tensor) -> torch.Tensor:
    """Inverse of ModelSamplingDiscrete.sigma(t) (log-linear between integer t), for sigma > 0."""
    log_sigmas = model_sampling.log_sigmas.double().cpu()
    log_s = sigma.double().cpu().log().clamp(log_sigmas[0], log_sigmas[-1])
    i = torch.searchsorted(log_sigmas, log_s).clamp(1, len(log_sigmas) - 1)
    low, high = log_sigmas[i - 1], log_sigmas[i]
    return (i - 1) + (log_s - low) / (high - low)


def tss_sigma_maps(model_sampling, sigmas, variance, a_range, n_range):
    """[(B×1×h×w) per step]: each pixel's sigma; `variance` is B×1×h×w in [0, 1] at latent size."""
    positive = sigmas[sigmas > 0]
    t = continuous_timestep(model_sampling, positive)
    t_start, t_end = float(t[0]), float(t[-1])
    v = variance.double().cpu()
    a = a_range[0] + v * (a_range[1] - a_range[0])
    n = n_range[0] + v * (n_range[1] - n_range[0])
    if len(positive) > 1:  # a must sit inside the sampled interval; keep it strictly inside
        margin = 1e-3 * (t_start - t_end)
        a = a.clamp(t_end + margin, t_start - margin)
    maps = []
    for k, sigma in enumerate(sigmas):
        if sigma <= 0:
            maps.append(torch.zeros_like(v))
        elif len(positive) == 1:
            maps.append(torch.full_like(v, float(sigma)))
        else:
            t_map = tds_remap_interval(t[k], a, n, t_start, t_end)
            maps.append(model_sampling.sigma(t_map.float().flatten()).double().cpu().view(v.shape))
    return [m.float() for m in maps]


def variance_at_latent(variance: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """SDS map (B×H×W, image size) -> B×1×h×w matching the latent batch."""
    if not torch.isfinite(variance).all():
        raise ValueError("the TSS variance map contains NaN or infinite values")
    v = to_latent_size(variance.float().clamp(0, 1), *x.shape[-2:])
    if v.shape[0] == 1:
        return v.expand(x.shape[0], -1, -1, -1)
    if v.shape[0] != x.shape[0]:
        raise ValueError(f"the variance map has batch {v.shape[0]}; it must be 1 or the latent batch {x.shape[0]}")
    return v


def _with_map(extra_args, sigma_map):
    options = dict(extra_args.get("model_options", {}))
    options["transformer_options"] = dict(options.get("transformer_options", {}), **{SIGMA_MAP_KEY: sigma_map})
    return dict(extra_args, model_options=options)


@torch.no_grad()
def sample_tss(model, x, sigmas, extra_args=None, callback=None, disable=None, variance=None, base="euler",
               a_range=(450.0, 650.0), n_range=(1.0, 2.5), model_sampling=None):
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
        denoised = model(x, sigmas[i] * s_in, **_with_map(extra_args, S))
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


def require_patched(model):
    """The model_sampling of a model that carries the per-pixel timestep patch, or a clear error."""
    import comfy.patcher_extension

    patcher = model.inner_model.model_patcher
    wrappers = patcher.wrappers.get(comfy.patcher_extension.WrappersMP.APPLY_MODEL, {})
    if WRAPPER_KEY not in wrappers:
        raise ValueError("the TSS sampler needs its model patched for per-pixel timesteps: put the "
                         "'TSS Spatial Timestep Patch' node between the model loader and the sampler")
    return patcher.get_model_object("model_sampling")
