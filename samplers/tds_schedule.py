"""TSS Time Dynamic Sampling (docs/tss.md §1): the two-stage polynomial timestep remap f(t; a, n).

    f(t) = t^n / a^(n-1)                  t <  a
    f(t) = T - (T - t)^n / (T - a)^(n-1)  t >= a

f fixes 0, a and T; for n > 1 it packs timesteps near both ends (where the paper finds
high-frequency detail is made) and thins them around a. n = 1 is the identity.

Defaults (the paper's are not public): a = 0.55 T, the middle of the sparse band the paper's
analysis leaves between early [0.7 T, T] and late [0, 0.4 T] detail recovery; n = 2, the mildest
power that still moves steps out of the middle.
"""
import torch

from ..clear_errors import InputError

DEFAULT_A_FRACTION = 0.55
DEFAULT_N = 2.0

# Per-pixel (SDS) ranges, docs/tss.md §2 step 3; the paper's are not public either. a(v) moves through
# 0.55 ± 0.10 of the sampled interval: inside the sparse band [0.4, 0.7] between the paper's late and
# early detail bands, 0.05 clear of each. n(v) runs from 1 (smooth pixels keep evenly spaced steps,
# as docs/tss.md §2 asks) to 2.5, a step past the single-schedule default 2, since only the most textured
# pixels get the full power.
SDS_A_FRACTIONS = (DEFAULT_A_FRACTION - 0.10, DEFAULT_A_FRACTION + 0.10)
SDS_N_RANGE = (1.0, 2.5)


def sds_a_range(interval: float) -> tuple[float, float]:
    """(a_min, a_max) for a sampled interval [0, interval): whole timesteps."""
    return tuple(float(round(f * interval)) for f in SDS_A_FRACTIONS)


TSS_A_RANGE = sds_a_range(1000)  # (450, 650): the TSS Sampler over SD's full T = 1000
DOSSR_TSS_A_RANGE = sds_a_range(500)  # (225, 325): DoSSR samples [0, t1) with t1 = 500


def tds_remap(t: torch.Tensor, a, n, T: float) -> torch.Tensor:
    """f(t; a, n) on [0, T], elementwise; a and n may be tensors broadcast against t (per-pixel SDS)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    a = torch.as_tensor(a, dtype=torch.float64)
    n = torch.as_tensor(n, dtype=torch.float64)
    early = t.clamp(min=0) ** n / a ** (n - 1)
    late = T - (T - t).clamp(min=0) ** n / (T - a) ** (n - 1)
    return torch.where(n == 1, t, torch.where(t < a, early, late))


def tds_timesteps(steps: int, a: float, n: float, t_start: float, t_end: float = 0.0) -> torch.Tensor:
    """`steps` timesteps from t_start down to t_end: uniform, then remapped by f on that interval.

    The interval [t_end, t_start] is stretched onto [0, T] so both ends stay put for img2img / SR
    starts; a is an absolute timestep inside it. n = 1 returns the uniform grid exactly."""
    check_tds_parameters(a, n, t_start, t_end)
    uniform = torch.linspace(t_start, t_end, steps, dtype=torch.float64)
    return uniform if n == 1 else tds_remap_interval(uniform, a, n, t_start, t_end)


def tds_remap_interval(t, a, n, t_start: float, t_end: float) -> torch.Tensor:
    """f on [t_end, t_start] stretched onto [0, T]: both ends stay fixed, a is an absolute timestep."""
    return t_end + tds_remap(t - t_end, torch.as_tensor(a, dtype=torch.float64) - t_end, n, t_start - t_end)


def tds_sigmas(model_sampling, steps: int, a: float | None = None, n: float = DEFAULT_N,
               t_start: float | None = None, t_end: float = 0.0) -> torch.Tensor:
    """The model's own sigma(t) (interpolated) at the TDS timesteps, then 0, like ComfyUI's schedulers."""
    T = float(len(model_sampling.sigmas) - 1)
    t_start = T if t_start is None else float(t_start)
    if t_start > T:
        raise InputError(f"the start timestep must be at most {T:g} for this model, got {t_start:g}")
    a = DEFAULT_A_FRACTION * T if a is None else float(a)
    t = tds_timesteps(steps, a, n, t_start, t_end)
    sigmas = model_sampling.sigma(t.float())
    return torch.cat([sigmas, sigmas.new_zeros(1)]).float().cpu()


def check_tds_parameters(a, n, t_start, t_end):
    if n < 1:
        raise InputError(f"n must be at least 1 (1 = uniform steps), got {n}")
    if not 0 <= t_end < t_start:
        raise InputError(f"the end timestep must be at least 0 and below the start timestep, got end {t_end}, start {t_start}")
    if not t_end < a < t_start:
        raise InputError(f"a must lie strictly between the end and start timesteps ({t_end}, {t_start}), got {a}")


def ksampler_tds(model_sampling, steps):
    """KSampler dropdown entry: defaults only (a = 0.55 T, n = 2, the full range)."""
    return tds_sigmas(model_sampling, steps)
