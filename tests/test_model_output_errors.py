"""Non-finite model outputs are reported where they appear, naming the model (issue 11 item 3):
a model with NaN weights, or a latent of 1e30, used to surface as a constant image or as an error
blamed on Color Fix, several nodes later."""
import pytest
import torch

from support import ckpt_factory as cf
import comfy.sample
import comfy.samplers
from timeaware_sr.clear_errors import InputError
from timeaware_sr.model_patches.sd_components import build_unet
from timeaware_sr.model_patches.tss.spatial_timestep import patch_spatial_timesteps
from timeaware_sr.samplers.dossr_schedule import dossr_sigmas
from timeaware_sr.samplers.dossr_solver import sample_dossr
from timeaware_sr.samplers.resshift_sampler import sample_resshift
from timeaware_sr.samplers.tadsr_one_step import TADSR_ATTACHMENT, sample_tadsr_one_step, tadsr_sigmas
from timeaware_sr.samplers.tss_sampler import sample_tss


def unet(nan_weights=False):
    sd = cf.unet_state_dict("sd21", "tiny", "eps")
    if nan_weights:
        key = next(k for k in sd if k.endswith("out.2.weight"))  # the last conv: every output pixel
        sd[key] = torch.full_like(sd[key], float("nan"))
    return build_unet({k[len(cf.UNET_PREFIX):]: v for k, v in sd.items()})


def run(model, sampler, latent, sigmas=None):
    cond = [[torch.zeros(1, 4, cf.TINY_CONTEXT), {}]]
    sigmas = dossr_sigmas(model.get_model_object("model_sampling"), 3) if sigmas is None else sigmas
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
    return comfy.sample.sample_custom(model, noise, 1.0, sampler, sigmas, cond, cond, latent, seed=0, disable_pbar=True)


@pytest.mark.parametrize("sampler", ["dossr", "tss", "resshift", "tadsr"])
def test_a_model_with_nan_weights_is_named_at_its_first_step(sampler):
    """Every pack sampler checks each model output (the sampler's math does not depend on the network,
    so an SD UNet with NaN weights stands in for each method's own)."""
    model = unet(nan_weights=True)
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    sigmas = None
    if sampler == "dossr":
        ksampler = comfy.samplers.KSAMPLER(sample_dossr, {})
    elif sampler == "tss":
        model = patch_spatial_timesteps(model)
        ksampler = comfy.samplers.KSAMPLER(sample_tss, {"variance": torch.zeros(1, 64, 64)})
    elif sampler == "resshift":
        ksampler = comfy.samplers.KSAMPLER(sample_resshift)
    else:
        model = model.clone()
        model.set_attachments(TADSR_ATTACHMENT, True)  # as Load TADSR marks its MODEL (else refused before the step)
        ksampler = comfy.samplers.KSAMPLER(sample_tadsr_one_step)
        sigmas = tadsr_sigmas(model.get_model_object("model_sampling"), 500)
    name = type(model.model.model_config).__name__
    with pytest.raises(InputError, match=rf"the output of the model \({name}\) at step 1 contains NaN .*weights may hold NaN"):
        run(model, ksampler, latent, sigmas)


def test_a_huge_latent_is_blamed_on_the_model_input_not_a_later_node():
    latent = torch.full((1, 4, 8, 8), 1e30)
    # the sampler sees the latent times SD's latent scale 0.18215 (process_latent_in): 1.82e+29
    with pytest.raises(InputError, match=r"at step 1 contains .*input latent is far outside the usual range; "
                                         r"the sampler's input reached \|x\| = 1.82e\+29"):
        run(unet(), comfy.samplers.KSAMPLER(sample_dossr, {}), latent)
