"""TADSR's one step (docs/tadsr.md §5), in ComfyUI's VE sigma space.

The official `get_x0_from_res` is x0 = z_L / sqrt(abar_ts) - f with f = UNet(z_L, t_s, c): the UNet
sees the LR latent itself, not a noised one, and its output is subtracted unscaled (not the eps
formula). In ComfyUI the model call at sigma = s_ts on x returns denoised = x - s_ts * f, with the
UNet fed x / sqrt(1 + s^2). So x = z_L * sqrt(1 + s^2) = z_L / sqrt(abar) feeds it z_L, and
x0 = x - (x - denoised) / s. CFG mixes denoised linearly, so it mixes f the same way.
"""
import math

import torch

from ..clear_errors import InputError, require_finite_output
from .lr_latent import lr_latent
from .preview_shape import require_previewable

T_MIN, T_MAX, DEFAULT_T_S = 1, 999, 500
TADSR_ATTACHMENT = "timeaware_sr.tadsr"  # set by Load TADSR on its MODEL (a ModelPatcher attachment; clones keep it)


def tadsr_sigmas(model_sampling, t_s: int = DEFAULT_T_S) -> torch.Tensor:
    """[sigma(t_s), 0]: the model's own sigma at the integer timestep t_s, so the UNet gets t_s exactly."""
    table = model_sampling.sigmas
    if not T_MIN <= t_s <= min(T_MAX, len(table) - 1):
        raise InputError(f"t_s must be between {T_MIN} and {min(T_MAX, len(table) - 1)}, got {t_s}")
    return torch.stack([table[t_s].float().cpu(), torch.zeros((), dtype=torch.float32)])


def check_tadsr_model(model):
    """The model must be Load TADSR's: plain SD 2.1 would subtract its noise estimate from a clean latent and
    return a meaningless picture without complaint."""
    import comfy.model_sampling

    patcher = model.inner_model.model_patcher
    ms = patcher.get_model_object("model_sampling")
    if type(ms).calculate_denoised is not comfy.model_sampling.EPS.calculate_denoised:
        raise InputError(f"TADSR One-Step needs an eps-prediction SD 2.1-base model; this model's sampling is "
                         f"{type(ms).__name__}")
    require_tadsr_patcher(patcher, "the sampler node (SamplerCustom's model input)")


def require_tadsr_patcher(patcher, where: str):
    if patcher.get_attachment(TADSR_ATTACHMENT) is None:
        raise InputError(f"TADSR One-Step needs the MODEL from 'Load TADSR' in {where}; it was given a model "
                         "without TADSR's weights, whose single step would give a meaningless picture. Connect "
                         "Load TADSR's MODEL output there instead")


@torch.no_grad()
def sample_tadsr_one_step(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """TADSR (time-aware one-step SR): x0 = z_L / sqrt(abar_ts) - UNet(z_L, t_s, c).

    Starts from the input latent z_L (any noise the graph added is ignored: TADSR adds none)."""
    if len(sigmas) != 2 or sigmas[-1] != 0:
        raise InputError(f"TADSR One-Step takes exactly one step, sigmas [sigma(t_s), 0]; got {len(sigmas) - 1} steps "
                         f"({[round(float(s), 4) for s in sigmas[:4]]}...): use the SIGMAS from the TADSR One-Step node")
    check_tadsr_model(model)
    if callback is not None:
        require_previewable(x, "TADSR One-Step")
    extra_args = {} if extra_args is None else extra_args
    s = sigmas[0]
    z = lr_latent(model, "TADSR One-Step", "from 'TADSR Encode'").to(x)
    x = z * math.sqrt(1 + float(s) ** 2)  # z_L / sqrt(abar_ts): the UNet input is z_L (a number: no float64 tensor)
    denoised = model(x, s * x.new_ones([x.shape[0]]), **extra_args)
    require_finite_output(denoised, model, 0, x)
    x0 = x - (x - denoised) / s  # z_L / sqrt(abar) - f
    if callback is not None:
        callback({"x": x, "i": 0, "sigma": s, "sigma_hat": s, "denoised": x0})
    return x0
