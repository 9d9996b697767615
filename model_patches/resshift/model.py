"""ResShift as a ComfyUI model: a BaseModel whose model_sampling is the residual-shifting process.

sigma_t = kappa sqrt(eta_t) (samplers/resshift_schedule.py). ComfyUI's calls then carry ResShift's
exact steps: the start is noise_scaling = y + sigma_T eps, the network input is x_t / sqrt(sigma^2 + 1)
(ResShift's normalize_input, 1 / sqrt(kappa^2 eta_t + 1)), the network gets the integer t whose sigma
is nearest, and its output is the x0 estimate (`denoised`). The LR image reaches the network through
the conditioning (`resshift_lq`, from the 'ResShift Prepare LR' node) and ComfyUI's c_concat, so
batches, CFG and area conditioning go through ComfyUI's own code.
"""
import torch

import comfy.conds
import comfy.latent_formats
import comfy.model_base
import comfy.supported_models_base

from ...clear_errors import InputError
from ...samplers.resshift_schedule import resshift_sigmas_table
from .unet_swin import UNetModelSwin

LQ_KEY = "resshift_lq"


def lq_conditioning(lq: torch.Tensor) -> list:
    """A CONDITIONING that carries the padded LR to the network (through extra_conds, as c_concat)."""
    return [[torch.zeros(1, 1, 1), {LQ_KEY: lq}]]


class VQF4Latent(comfy.latent_formats.LatentFormat):
    """The VQGAN f4 latent: 3 channels at 1/4 of the image size, used unscaled (scale factor 1.0)."""
    latent_channels = 3
    scale_factor = 1.0

    def __init__(self):
        # a rough preview: the VQ latent's channels shown as colours (no fitted factors exist)
        self.latent_rgb_factors = [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5]]
        self.latent_rgb_factors_bias = [0.0, 0.0, 0.0]


class ResShiftSampling(torch.nn.Module):
    """ResShift's noise levels for one checkpoint family, in ComfyUI's model_sampling interface."""

    def __init__(self, preset_name: str, preset: dict):
        super().__init__()
        self.preset_name, self.kappa, self.preset_steps = preset_name, preset["kappa"], preset["steps"]
        table = resshift_sigmas_table(preset)
        self.register_buffer("sigmas", table.float())
        self.register_buffer("log_sigmas", table.log().float())
        self.sigma_data = 1.0

    @property
    def sigma_min(self):
        return self.sigmas[0]

    @property
    def sigma_max(self):
        return self.sigmas[-1]

    def timestep(self, sigma):
        """The integer t whose sigma is nearest (in log); the network is trained on t in {0..T-1}."""
        dists = sigma.log().to(self.log_sigmas.device) - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape).to(sigma.device)

    def sigma(self, timestep):
        t = timestep.float().to(self.log_sigmas.device).clamp(0, len(self.sigmas) - 1)  # as ModelSamplingDiscrete
        low = t.floor().long()
        high = t.ceil().long()
        w = t.frac()
        return ((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp().to(timestep.device)

    def percent_to_sigma(self, percent):
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return self.sigma(torch.tensor((1.0 - percent) * (len(self.sigmas) - 1))).item()

    def calculate_input(self, sigma, noise):
        sigma = sigma.view(sigma.shape[:1] + (1,) * (noise.ndim - 1))
        return noise / (sigma ** 2 + 1) ** 0.5

    def calculate_denoised(self, sigma, model_output, model_input):
        return model_output  # the network predicts x0

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        return latent_image + noise * sigma  # x_T = y + kappa sqrt(eta_T) eps

    def inverse_noise_scaling(self, sigma, latent):
        return latent


class ResShiftConfig(comfy.supported_models_base.BASE):
    latent_format = VQF4Latent
    unet_extra_config = {}
    # ComfyUI picks among these as for any diffusion network (--fp16-unet, --bf16-unet, the GPU): the official
    # inference runs this network under fp16 autocast (use_amp, docs/resshift.md §6.8) although its
    # config says use_fp16: False, so half precision is what its authors ran on a GPU.
    supported_inference_dtypes = [torch.float16, torch.bfloat16, torch.float32]
    memory_usage_factor = 4.0


class ResShiftModel(comfy.model_base.BaseModel):
    def __init__(self, config: ResShiftConfig, preset_name: str, preset: dict, device=None):
        """config: a ResShiftConfig whose inference dtype is set (sd_components.set_comfy_inference_dtype)."""
        super().__init__(config, comfy.model_base.ModelType.EPS, device=device, unet_model=UNetModelSwin)
        self.model_sampling = ResShiftSampling(preset_name, preset)  # replaces the EPS placeholder

    def extra_conds(self, **kwargs):
        out = super().extra_conds(**kwargs)
        lq = kwargs.get(LQ_KEY)
        noise = kwargs["noise"]
        if lq is None:
            raise InputError("ResShift needs the LR image in its conditioning: connect the 'conditioning' output of "
                             "'ResShift Prepare LR' to the sampler's positive and negative inputs")
        if lq.shape[-2:] != noise.shape[-2:]:
            raise InputError(f"the LR image in the conditioning is {tuple(lq.shape[-2:])} pixels but the latent is "
                             f"{tuple(noise.shape[-2:])}; encode the 'upscaled' output of the same 'ResShift Prepare "
                             "LR' node with the ResShift VAE")
        out["c_concat"] = comfy.conds.CONDNoiseShape(lq)  # repeated to the batch by ComfyUI
        out.pop("c_crossattn", None)  # ResShift has no text conditioning
        return out
