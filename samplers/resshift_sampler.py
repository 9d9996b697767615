"""ResShift's reverse process (docs/resshift.md §6; Yue et al., NeurIPS 2023), k-diffusion style.

With sigma_t = kappa sqrt(eta_t), the posterior q(x_{t-1} | x_t, x0) has
  mean  (eta_{t-1}/eta_t) x_t + (alpha_t/eta_t) x0 = x0 + (s'/s)^2 (x_t - x0),
  var   kappa^2 eta_{t-1} alpha_t / eta_t          = s'^2 (s^2 - s'^2) / s^2,
alpha_t = eta_t - eta_{t-1}, s = sigma_t, s' = sigma_{t-1}. The last sigma is 0: the final update
returns the x0 estimate with no noise, so one step (sigmas [sigma_{T-1}, 0]) is SinSR / TAD-SR.
The start x_T = y + sigma_{T-1} eps is ComfyUI's noise scaling of the LR latent y.
"""
import torch
from tqdm.auto import trange

from comfy.k_diffusion.sampling import default_noise_sampler

from ..clear_errors import InputError, require_finite_output
from .preview_shape import require_previewable


def posterior_step(x, denoised, sigma, sigma_next, noise):
    """One draw from q(x_{t-1} | x_t, x0 = denoised) (sigma_next = 0: the mean, which is x0)."""
    sigma, sigma_next = float(sigma), float(sigma_next)  # coefficients in float64, cast once
    ratio = (sigma_next / sigma) ** 2
    mean = denoised + ratio * (x - denoised)
    return mean if sigma_next == 0 else mean + sigma_next * max(1 - ratio, 0.0) ** 0.5 * noise


def require_resshift_model(model):
    """The network behind the guider must be ResShift's: another model would be fed the LR latent and
    ResShift's noise levels and return a meaningless picture without complaint."""
    model_sampling = model.inner_model.model_patcher.get_model_object("model_sampling")
    if not hasattr(model_sampling, "preset_steps"):
        raise InputError("the ResShift Sampler needs the MODEL of 'Load ResShift / SinSR / TAD-SR' in its guider; "
                         f"it was given a model with {type(model_sampling).__name__} noise levels. Connect the "
                         "ResShift loader's MODEL to the guider (BasicGuider) instead")


@torch.no_grad()
def sample_resshift(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
    """ResShift / SinSR / TAD-SR posterior sampling (Yue et al. 2023); x = y + sigmas[0] * noise."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x, seed=extra_args.get("seed")) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        require_finite_output(denoised, model, i, x)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        noise = noise_sampler(sigmas[i], sigmas[i + 1]) if sigmas[i + 1] > 0 else None
        x = posterior_step(x, denoised, sigmas[i], sigmas[i + 1], noise)
    return x


def sample_resshift_in_comfy(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
    """sample_resshift behind ComfyUI's guider, once the guider's model is known to be ResShift's."""
    require_resshift_model(model)
    if callback is not None:
        require_previewable(x, "ResShift Sampler")
    return sample_resshift(model, x, sigmas, extra_args, callback, disable, noise_sampler)
