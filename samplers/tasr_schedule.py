"""TASR's timesteps (docs/tasr.md §4): guided-diffusion's space_timesteps(T, "N"), as ComfyUI sigmas.

The official sampler is spaced DDPM: ancestral steps with the posterior variance of the respaced
chain, evaluating the network at the ORIGINAL timesteps (0, 53, ..., 946, 999 for N = 20). ComfyUI's
stock `ddpm` sampler is exactly that update when it is given the model's own sigmas at those
timesteps: its alpha = abar(sigma_i) / abar(sigma_{i+1}) is the respaced beta's 1 - beta, and the
model maps each sigma back to its original integer timestep. The schedule ends in 0, where the last
step lands on the x0 estimate at t = 0, as the official chain's final step does.
"""
import torch

from ..clear_errors import InputError
from .ddpm import discrete_sigmas, spaced_timesteps

DEFAULT_STEPS = 20


def space_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """guided-diffusion's space_timesteps(num_timesteps, str(steps)), ascending: 20 -> [0, 53, 105, ..., 946, 999]."""
    if not 1 <= steps <= num_timesteps:
        raise InputError(f"steps must be between 1 and {num_timesteps}, got {steps}")
    return [0] if steps == 1 else spaced_timesteps(steps - 1, num_timesteps)


def spaced_ddpm_sigmas(model_sampling, steps: int = DEFAULT_STEPS) -> torch.Tensor:
    """The model's sigmas at space_timesteps(T, steps), descending, then 0."""
    table = discrete_sigmas(model_sampling, "TASR")
    timesteps = list(reversed(space_timesteps(len(table), steps)))
    return torch.cat([table[timesteps].float().cpu(), torch.zeros(1)])
