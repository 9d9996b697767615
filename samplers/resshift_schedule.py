"""ResShift's exponential eta schedule and its ComfyUI sigmas (docs/resshift.md §6).

ResShift's forward process is x_t = x0 + eta_t (y - x0) + kappa sqrt(eta_t) eps. The pack's sigma is
the noise level of that process, sigma_t = kappa sqrt(eta_t): x_T = y + sigma_T eps is then ComfyUI's
own `latent + sigma * noise` start, and the posterior update needs only ratios of sigmas.
"""
import math

import torch

from ..clear_errors import InputError

# Per checkpoint family (configs/realsr_swinunet_realesrgan256*.yaml); `steps` is the released sampling
# (SinSR and TAD-SR distil ResShift-15 into one call at t = T - 1).
PRESETS = {
    "resshift_v1": {"T": 15, "kappa": 2.0, "min_noise_level": 0.04, "power": 0.3, "etas_end": 0.99, "steps": 15},
    "resshift_v3": {"T": 4, "kappa": 2.0, "min_noise_level": 0.2, "power": 0.3, "etas_end": 0.99, "steps": 4},
    "sinsr": {"T": 15, "kappa": 2.0, "min_noise_level": 0.04, "power": 0.3, "etas_end": 0.99, "steps": 1},
    "tad_sr": {"T": 15, "kappa": 2.0, "min_noise_level": 0.04, "power": 0.3, "etas_end": 0.99, "steps": 1},
}


def sqrt_etas(T: int, kappa: float, min_noise_level: float, power: float, etas_end: float) -> torch.Tensor:
    """sqrt(eta_t), t = 0..T-1, float64: geometric from the start level to `etas_end` in warped time t^power."""
    start = min(min_noise_level / kappa, min_noise_level)
    increaser = math.exp(math.log(etas_end / start) / (T - 1))
    warped = torch.linspace(0, 1, T, dtype=torch.float64) ** power * (T - 1)
    return start * increaser ** warped


def resshift_sigmas_table(preset: dict) -> torch.Tensor:
    """sigma_t = kappa sqrt(eta_t) for every t = 0..T-1 (ascending), float64."""
    return preset["kappa"] * sqrt_etas(preset["T"], preset["kappa"], preset["min_noise_level"], preset["power"],
                                       preset["etas_end"])


def timesteps_for(T: int, steps: int) -> list[int]:
    """`steps` timesteps from T-1 down to 0, evenly spaced (steps = T: every one; 1: only T-1)."""
    if not 1 <= steps <= T:
        raise InputError(f"steps must be between 1 and the model's T = {T}, got {steps}")
    if steps == 1:
        return [T - 1]
    return sorted({round((T - 1) * (1 - i / (steps - 1))) for i in range(steps)}, reverse=True)


def resshift_sigmas(model_sampling, steps: int = 0) -> torch.Tensor:
    """The sampler's SIGMAS: sigma at each chosen timestep, then 0 (the last update returns x0).

    steps = 0 uses the checkpoint's released count (15, 4 or 1). Also a KSampler scheduler (use_ms).
    """
    if not hasattr(model_sampling, "preset_steps"):
        raise InputError("the ResShift schedule needs a model from 'Load ResShift / SinSR / TAD-SR', got "
                         f"one with {type(model_sampling).__name__} noise levels")
    table = model_sampling.sigmas
    steps = min(steps or model_sampling.preset_steps, len(table))  # KSampler's step count caps at T
    chosen = table[timesteps_for(len(table), steps)]
    return torch.cat([chosen.float().cpu(), torch.zeros(1)])
