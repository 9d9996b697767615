"""DoSSR's shifting sequence eta_t and its timestep spacing (docs/dossr.md §3), in ComfyUI sigma space."""
import torch

from ..clear_errors import InputError
from .ddpm import discrete_sigmas, model_timesteps, spaced_timesteps

DEFAULT_T1 = 500  # official "trunc_12": the domain shift completes at T // 2
DEFAULT_STEPS = 5
# The official make_eta_schedule("trunc_12") spaces the half-cosine's phase u over
# linspace(0.001, 0.999, t1) rather than [0, 1]: eta never reaches exactly 0 or 1, so 1 - eta,
# which the solver divides by, stays positive up to t1 - 1 (eta[t1 - 1] = 0.9999975).
ETA_PHASE = (0.001, 0.999)


def eta_schedule(t1: int = DEFAULT_T1, num_timesteps: int = 1000) -> torch.Tensor:
    """eta[t] for t = 0..T-1 (float64): half-cosine from ~0 to ~1 over [0, t1), then exactly 1."""
    if not 1 < t1 <= num_timesteps:
        raise InputError(f"t1 must be in (1, {num_timesteps}], got {t1}")
    eta = torch.ones(num_timesteps, dtype=torch.float64)
    u = torch.linspace(*ETA_PHASE, t1, dtype=torch.float64)
    eta[:t1] = (1 - torch.cos(torch.pi * u)) / 2
    return eta


def dossr_sigmas(model_sampling, steps: int = DEFAULT_STEPS, t1: int = DEFAULT_T1, final_clean: bool = False) -> torch.Tensor:
    """The model's own sigmas at the spaced timesteps, descending. The last one is sigma(t=0) > 0:
    DoSSR's output is the state at t = 0, not an extra x0 step. final_clean replaces it with 0, so
    the last step lands on the clean estimate (for pixel-space models, where that trace of noise shows)."""
    table = discrete_sigmas(model_sampling, "DoSSR")
    if t1 > len(table):
        raise InputError(f"t1={t1} exceeds the model's {len(table)} timesteps")
    sigmas = table[list(reversed(spaced_timesteps(steps, t1)))].float().cpu()
    if final_clean:
        sigmas[-1] = 0
    return sigmas


def etas_at_sigmas(model_sampling, sigmas: torch.Tensor, t1: int = DEFAULT_T1) -> torch.Tensor:
    """eta at each sigma's timestep. float64."""
    t = model_timesteps(model_sampling, sigmas, "DoSSR")
    check_below_t1(t, t1)
    return eta_schedule(t1, len(model_sampling.sigmas))[t]


def eta_at(t: torch.Tensor, t1: int = DEFAULT_T1) -> torch.Tensor:
    """eta at real-valued timesteps: the half-cosine of eta_schedule continued between integers
    (equal to the table at integer t), for per-pixel TDS timesteps. float64."""
    t = torch.as_tensor(t, dtype=torch.float64)
    check_below_t1(t, t1)
    u = ETA_PHASE[0] + t.clamp(min=0) * ((ETA_PHASE[1] - ETA_PHASE[0]) / (t1 - 1))  # linspace's step
    return (1 - torch.cos(torch.pi * u)) / 2


def check_below_t1(t: torch.Tensor, t1: int):
    if (t >= t1).any():
        raise InputError(
            f"the DoSSR sampler starts below t1={t1}, where the LR latent is still informative; these sigmas reach "
            f"timestep {float(t.max()):g}. Use the DoSSR Scheduler (or one whose first sigma is below sigma(t1))."
        )
