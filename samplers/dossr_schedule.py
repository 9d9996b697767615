"""DoSSR's shifting sequence eta_t and its timestep spacing (docs/dossr.md §3), in ComfyUI sigma space."""
import torch

DEFAULT_T1 = 500  # official "trunc_12": the domain shift completes at T // 2
DEFAULT_STEPS = 5
# The official make_eta_schedule("trunc_12") spaces the half-cosine's phase u over
# linspace(0.001, 0.999, t1) rather than [0, 1]: eta never reaches exactly 0 or 1, so 1 - eta,
# which the solver divides by, stays positive up to t1 - 1 (eta[t1 - 1] = 0.9999975).
ETA_PHASE = (0.001, 0.999)


def eta_schedule(t1: int = DEFAULT_T1, num_timesteps: int = 1000) -> torch.Tensor:
    """eta[t] for t = 0..T-1 (float64): half-cosine from ~0 to ~1 over [0, t1), then exactly 1."""
    if not 1 < t1 <= num_timesteps:
        raise ValueError(f"t1 must be in (1, {num_timesteps}], got {t1}")
    eta = torch.ones(num_timesteps, dtype=torch.float64)
    u = torch.linspace(*ETA_PHASE, t1, dtype=torch.float64)
    eta[:t1] = (1 - torch.cos(torch.pi * u)) / 2
    return eta


def spaced_timesteps(steps: int, t1: int = DEFAULT_T1) -> list[int]:
    """guided-diffusion's space_timesteps(t1, str(steps + 1)), ascending: 5 -> [0, 100, 200, 299, 399, 499]."""
    if not 1 <= steps < t1:
        raise ValueError(f"steps must be in [1, t1 - 1] = [1, {t1 - 1}], got {steps}")
    stride = (t1 - 1) / steps
    position, taken = 0.0, []
    for _ in range(steps + 1):
        taken.append(round(position))  # accumulated like the reference, so .5 ties round the same way
        position += stride
    return taken


def dossr_sigmas(model_sampling, steps: int = DEFAULT_STEPS, t1: int = DEFAULT_T1, final_clean: bool = False) -> torch.Tensor:
    """The model's own sigmas at the spaced timesteps, descending. The last one is sigma(t=0) > 0:
    DoSSR's output is the state at t = 0, not an extra x0 step. final_clean replaces it with 0, so
    the last step lands on the clean estimate (for pixel-space models, where that trace of noise shows)."""
    table = discrete_sigmas(model_sampling)
    if t1 > len(table):
        raise ValueError(f"t1={t1} exceeds the model's {len(table)} timesteps")
    sigmas = table[list(reversed(spaced_timesteps(steps, t1)))].float().cpu()
    if final_clean:
        sigmas[-1] = 0
    return sigmas


def discrete_sigmas(model_sampling) -> torch.Tensor:
    """The DDPM sigma table; refuses flow-matching and continuous-time models, whose noising is not
    DoSSR's x0 + sigma * noise over discrete timesteps."""
    import comfy.model_sampling as ms

    sigmas = getattr(model_sampling, "sigmas", None)
    ddpm = (isinstance(model_sampling, ms.ModelSamplingDiscrete) and not isinstance(model_sampling, ms.CONST)
            and not isinstance(model_sampling, (ms.ModelSamplingDiscreteEDM, ms.StableCascadeSampling)))
    if not ddpm or sigmas is None or sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError(
            f"DoSSR needs a discrete-time (DDPM) diffusion model such as SD 1.x/2.x; this model samples with "
            f"{type(model_sampling).__name__}"
        )
    return sigmas


def model_timesteps(model_sampling, sigmas: torch.Tensor) -> torch.Tensor:
    """The integer timestep the model maps each sigma to (0 for sigma = 0)."""
    table = discrete_sigmas(model_sampling)
    t = model_sampling.timestep(sigmas.to(table.device).float()).long().cpu()
    return torch.where(sigmas.cpu() > 0, t, torch.zeros_like(t))


def etas_at_sigmas(model_sampling, sigmas: torch.Tensor, t1: int = DEFAULT_T1) -> torch.Tensor:
    """eta at each sigma's timestep. float64."""
    t = model_timesteps(model_sampling, sigmas)
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
        raise ValueError(
            f"the DoSSR sampler starts below t1={t1}, where the LR latent is still informative; these sigmas reach "
            f"timestep {float(t.max()):g}. Use the DoSSR Scheduler (or one whose first sigma is below sigma(t1))."
        )
