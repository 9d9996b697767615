"""DoSSR domain-shift SDE solvers, orders 1-3 (docs/dossr.md §3), in ComfyUI's VE sigma space.

With B = 1 - eta, lambda = sigma / B and r = lambda_{j-1} / lambda_j, one step j -> j-1 is

    x_{j-1} = (B_{j-1}/B_j) r^2 x_j + (eta_{j-1} - (B_{j-1}/B_j) r^2 eta_j) xhat0 + B_{j-1} (1 - r^2) x0_j
              - [order>=2] B_{j-1} (lambda_{j-1} - lambda_j)^2 / lambda_j D1
              + [order 3]  B_{j-1} ((lambda_j - 3 lambda_{j-1})(lambda_j - lambda_{j-1})/2 - lambda_{j-1}^2 ln r) D2
              + sigma_{j-1} sqrt(1 - r^2) z

the official VP update divided by alpha_{j-1}. Near t1, B ~ 1e-6 and lambda ~ 1e6, so every
coefficient is formed in float64 and the update is a weighted sum of tensors with those weights.
"""
import torch
from tqdm.auto import trange

from comfy.k_diffusion.sampling import default_noise_sampler

from ..clear_errors import InputError, require_finite_output
from .ddpm import model_timesteps
from .dossr_schedule import DEFAULT_T1, eta_at, etas_at_sigmas
from .lr_latent import lr_latent
from .preview_shape import require_previewable
from .tds_schedule import DOSSR_TSS_A_RANGE, SDS_N_RANGE

LR_SOURCE = "VAE Encode the upscaled low-resolution image"


@torch.no_grad()
def sample_dossr(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                 order=3, t1=DEFAULT_T1, x_hat0=None, etas=None, variance=None, a_range=DOSSR_TSS_A_RANGE,
                 n_range=SDS_N_RANGE):
    """DoSSR (Cui et al., NeurIPS 2024): DoS-SDE solver from the noised LR latent; x_hat0 = LR latent.

    With a TSS variance map (and a model through the per-pixel timestep patch), every pixel follows
    its own TDS remap of the timesteps (pixel_schedule.py) and every coefficient is per pixel."""
    if order not in (1, 2, 3):
        raise InputError(f"DoSSR order must be 1, 2 or 3, got {order}")
    if callback is not None:
        require_previewable(x, "DoSSR Sampler")
    extra_args = {} if extra_args is None else extra_args
    x_hat0 = lr_latent(model, "the DoSSR sampler", LR_SOURCE) if x_hat0 is None else x_hat0
    if variance is None:
        if etas is None:
            model_sampling = model.inner_model.model_patcher.get_model_object("model_sampling")
            check_start_at_t1(model_sampling, sigmas, t1)
            etas = etas_at_sigmas(model_sampling, sigmas, t1)
        weights = scalar_step_weights(sigmas, etas, order)

        def step(i):
            return extra_args, weights[i]
    else:  # imported here: KSampler's list loads this module at start-up; the TSS code is heavier
        from .pixel_schedule import require_patched, variance_at_latent, with_sigma_map

        model_sampling = require_patched(model, "DoSSR sampler")
        check_start_at_t1(model_sampling, sigmas, t1)
        maps, has_noise = pixel_step_weights(model_sampling, sigmas, t1, variance_at_latent(variance, x), a_range,
                                             n_range, order, x.device)

        def step(i):
            sigma_map, w_x, w_hat, w_noise, *w_x0s = maps[i]
            w_x, w_hat, w_noise, *w_x0s = (w.to(x.dtype) for w in (w_x, w_hat, w_noise, *w_x0s))  # no-ops in float32
            return with_sigma_map(extra_args, sigma_map), (w_x, w_hat, w_x0s, w_noise if has_noise[i] else None)
    noise_sampler = default_noise_sampler(x, seed=extra_args.get("seed")) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])

    x0_history = []  # newest first: x0_j, x0_{j+1}, x0_{j+2}
    for i in trange(len(sigmas) - 1, disable=disable):
        args, (w_x, w_hat, w_x0s, w_noise) = step(i)
        denoised = model(x, sigmas[i] * s_in, **args)
        require_finite_output(denoised, model, i, x)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        x0_history = [denoised] + x0_history[:2]
        update = w_x * x + w_hat * x_hat0
        for w, x0 in zip(w_x0s, x0_history):  # the step's order is min(order, i + 1): one weight per x0 so far
            update = update + w * x0
        if w_noise is not None:
            update = update + w_noise * noise_sampler(sigmas[i], sigmas[i + 1])
        x = update.to(x.dtype)
    return x


def scalar_step_weights(sigmas, etas, order):
    """Every step's weights (w_x, w_hat, [w_x0...], w_noise) as Python floats (w_noise None for a step
    without noise), formed once on the CPU in float64 before the first step: the steps then multiply
    tensors by numbers and create no tensor."""
    sigma, eta = sigmas.cpu().double(), etas.cpu().double()  # to the CPU first: MPS has no float64
    steps = [(s, e, s / (1 - e)) for s, e in zip(sigma, eta)]
    weights = []
    for i in range(len(sigmas) - 1):
        w_x, w_hat, w_x0s, w_noise = dos_step_weights(steps, i, min(order, i + 1))
        weights.append((float(w_x), float(w_hat), [float(w) for w in w_x0s], float(w_noise) if w_noise > 0 else None))
    return weights


def pixel_step_weights(model_sampling, sigmas, t1, variance, a_range, n_range, order, device):
    """maps[i] = (sigma map, w_x, w_hat, w_noise, w_x0 x order) of step i as float32 maps on `device`
    (w_x0 past the step's own order are 0), and has_noise[i] (whether step i adds noise anywhere). Formed on the CPU in float64 from the per-pixel
    (sigma, eta, lambda) of pixel_sigmas_and_etas and moved in chunks (pixel_schedule.DeviceSteps)."""
    from .pixel_schedule import DeviceSteps

    steps = pixel_sigmas_and_etas(model_sampling, sigmas, t1, variance, a_range, n_range)
    has_noise = {}

    def make(i):
        w_x, w_hat, w_x0s, w_noise = dos_step_weights(steps, i, min(order, i + 1))
        has_noise[i] = bool((w_noise > 0).any())
        w_x0s = w_x0s + [torch.zeros(())] * (order - len(w_x0s))  # every step the same fields: one stack
        return (steps[i][0], *(w.expand_as(w_noise) for w in (w_x, w_hat, w_noise, *w_x0s)))

    return DeviceSteps(make, len(sigmas) - 1, device), has_noise


def pixel_sigmas_and_etas(model_sampling, sigmas, t1, variance, a_range, n_range):
    """steps[k] = per-pixel float64 (sigma, eta, lambda) CPU maps (B×1×h×w), built when first asked:
    the TDS remap of the scheduler's timesteps (pixel_schedule), with eta continued between integer
    timesteps (dossr_schedule.eta_at). A final sigma of 0 (final_clean) has sigma = eta = 0."""
    from .pixel_schedule import LazySteps, pixel_schedule

    schedule = pixel_schedule(model_sampling, sigmas, model_timesteps(model_sampling, sigmas, "DoSSR").double(), variance,
                              a_range, n_range)

    def coefficients(k):
        t_map, sigma = schedule[k]
        eta = eta_at(t_map, t1) if sigmas[k] > 0 else torch.zeros_like(sigma)
        return sigma, eta, sigma / (1 - eta)

    return LazySteps(coefficients, len(sigmas))


def check_start_at_t1(model_sampling, sigmas, t1):
    """DoSSR starts from the LR latent plus noise at t1 - 1, where the domain shift is complete; a
    schedule that starts elsewhere (a DoSSR Scheduler with another t1) would run with a wrong start."""
    start = int(model_timesteps(model_sampling, sigmas[:1], "DoSSR")[0])
    if start != t1 - 1 and sigmas[0] > 0:
        raise InputError(
            f"DoSSR Sampler: the sigmas start at timestep {start}, but t1 = {t1} needs a start at t1 - 1 = {t1 - 1}: "
            f"set the same t1 on the DoSSR Scheduler and the DoSSR Sampler")


def dos_step_weights(steps, i, order):
    """float64 weights of x_j, xhat0, (x0_j, x0_{j+1}, x0_{j+2}) and z for the step i -> i+1.

    steps[k] = (sigma, eta, lambda) as float64 tensors: scalars, or per-pixel maps for TSS."""
    (sigma_now, eta_now, l_now), (sigma_next, eta_next, l_next) = steps[i], steps[i + 1]
    lam = {k: steps[k][2] for k in range(max(i - order + 1, 0), i)}  # earlier lambdas, for orders 2-3
    b_now, b_next = 1 - eta_now, 1 - eta_next
    r = l_next / l_now
    w_x = b_next / b_now * r * r
    w_hat = eta_next - w_x * eta_now
    w_x0 = [b_next * (1 - r * r), 0.0, 0.0]
    if order >= 2:  # D1 = (x0_j - x0_{j+1}) / (lambda_j - lambda_{j+1})
        c1 = -b_next * (l_next - l_now) ** 2 / l_now / (l_now - lam[i - 1])
        w_x0[0] = w_x0[0] + c1
        w_x0[1] = w_x0[1] - c1
    if order == 3:  # D2 = 2 (D1_j - D1_{j+1}) / (lambda_j - lambda_{j+2})
        log_term = torch.xlogy(l_next**2, r)  # lambda^2 ln(lambda) -> 0 as sigma -> 0
        c2 = b_next * ((l_now - 3 * l_next) * (l_now - l_next) / 2 - log_term) * 2 / (l_now - lam[i - 2])
        a, b = 1 / (l_now - lam[i - 1]), 1 / (lam[i - 1] - lam[i - 2])
        w_x0[0] = w_x0[0] + c2 * a
        w_x0[1] = w_x0[1] - c2 * (a + b)
        w_x0[2] = w_x0[2] + c2 * b
    w_noise = sigma_next * (1 - r * r).clamp(min=0).sqrt()
    return w_x, w_hat, [torch.as_tensor(w, dtype=torch.float64) for w in w_x0[:order]], w_noise
