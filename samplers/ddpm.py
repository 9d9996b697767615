"""What every method on a discrete-time (DDPM) model shares, in ComfyUI's sigma space (the notation of
the docs' index page): the model's sigma table, the sigma <-> timestep maps, guided-diffusion's timestep spacing,
and the transformer_options keys that carry a per-pixel sigma map from a sampler to the per-pixel
timestep patch (docs/tss.md §2.5)."""
import torch

SIGMA_MAP_KEY = "tss_sigma_map"  # transformer_options: each pixel's sigma at this step (samplers/pixel_schedule.py)
PIXEL_TIMESTEP_WRAPPER_KEY = "timeaware_sr_spatial_timestep"  # the per-pixel timestep patch's wrappers


def discrete_sigmas(model_sampling, method: str = "this schedule") -> torch.Tensor:
    """The DDPM sigma table; refuses flow-matching and continuous-time models, whose noising is not
    x0 + sigma * noise over discrete timesteps. `method` names who needs it in the message."""
    import comfy.model_sampling as ms

    from ..clear_errors import InputError

    sigmas = getattr(model_sampling, "sigmas", None)
    ddpm = (isinstance(model_sampling, ms.ModelSamplingDiscrete) and not isinstance(model_sampling, ms.CONST)
            and not isinstance(model_sampling, (ms.ModelSamplingDiscreteEDM, ms.StableCascadeSampling)))
    if not ddpm or sigmas is None or sigmas.ndim != 1 or len(sigmas) < 2:
        raise InputError(
            f"model: {method} needs a discrete-time (DDPM) diffusion model such as SD 1.x/2.x; this model "
            f"samples with {type(model_sampling).__name__}"
        )
    return sigmas


def model_timesteps(model_sampling, sigmas: torch.Tensor, method: str = "this schedule") -> torch.Tensor:
    """The integer timestep the model maps each sigma to (0 for sigma = 0)."""
    table = discrete_sigmas(model_sampling, method)
    t = model_sampling.timestep(sigmas.to(table.device).float()).long().cpu()
    return torch.where(sigmas.cpu() > 0, t, torch.zeros_like(t))


def continuous_timestep(model_sampling, sigma: torch.Tensor) -> torch.Tensor:
    """Inverse of ModelSamplingDiscrete.sigma(t) (log-linear between integer t), for sigma > 0."""
    log_sigmas = model_sampling.log_sigmas.cpu().double()  # to the CPU first: MPS has no float64
    log_s = sigma.cpu().double().log().clamp(log_sigmas[0], log_sigmas[-1])
    i = torch.searchsorted(log_sigmas, log_s).clamp(1, len(log_sigmas) - 1)
    low, high = log_sigmas[i - 1], log_sigmas[i]
    return (i - 1) + (log_s - low) / (high - low)


def spaced_timesteps(steps: int, span: int) -> list[int]:
    """guided-diffusion's space_timesteps(span, str(steps + 1)), ascending: steps + 1 timesteps over
    [0, span - 1], e.g. (5, 500) -> [0, 100, 200, 299, 399, 499]."""
    from ..clear_errors import InputError

    if not 1 <= steps < span:
        raise InputError(f"steps must be in [1, {span - 1}], got {steps}")
    stride = (span - 1) / steps
    position, taken = 0.0, []
    for _ in range(steps + 1):
        taken.append(round(position))  # accumulated like the reference, so .5 ties round the same way
        position += stride
    return taken
