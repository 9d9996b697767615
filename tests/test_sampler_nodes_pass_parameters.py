"""The sampler nodes hand every widget value to the sampler: a node's SAMPLER gives exactly the
samples of the sampler function called with those options, and changing any one widget changes
the samples (so none is dropped or swapped for a default)."""
import pytest
import torch

from support import ckpt_factory as cf
import comfy.sample
import comfy.samplers
from timeaware_sr.model_patches.sd_components import build_unet
from timeaware_sr.model_patches.tss.spatial_timestep import patch_spatial_timesteps
from timeaware_sr.nodes.dossr_sampling import DoSSRSampler
from timeaware_sr.nodes.tss import TSSSampler
from timeaware_sr.samplers.dossr_schedule import dossr_sigmas
from timeaware_sr.samplers.dossr_solver import sample_dossr
from timeaware_sr.samplers.tss_sampler import sample_tss


@pytest.fixture(scope="module")
def patched():
    sd = cf.unet_state_dict("sd21", "tiny", "eps")
    return patch_spatial_timesteps(build_unet({k[len(cf.UNET_PREFIX):]: v for k, v in sd.items()}))


VARIANCE = torch.linspace(0, 1, 64).expand(1, 64, 64).contiguous()  # every level from smooth to textured


def sample(model, sampler, sigmas):
    g = torch.Generator().manual_seed(11)
    latent = torch.randn(1, 4, 8, 8, generator=g)
    cond = [[torch.randn(1, 4, cf.TINY_CONTEXT, generator=g), {}]]
    noise = torch.randn(latent.shape, generator=g)
    return comfy.sample.sample_custom(model, noise, 1.0, sampler, sigmas, cond, cond, latent, seed=1, disable_pbar=True)


def node_sampler(node, **widgets):
    return node.execute(**widgets).result[0]


DOSSR = dict(order=2, t1=400, variance_map=VARIANCE, a_min=150.0, a_max=250.0, n_min=1.5, n_max=3.0)
DOSSR_CHANGES = [("order", 3), ("a_min", 100.0), ("a_max", 300.0), ("n_min", 1.0), ("n_max", 4.0)]


def test_dossr_sampler_node_passes_every_widget(patched):
    sigmas = dossr_sigmas(patched.get_model_object("model_sampling"), 4, t1=400)
    ours = sample(patched, node_sampler(DoSSRSampler, **DOSSR), sigmas)
    direct = comfy.samplers.KSAMPLER(sample_dossr, {"order": 2, "t1": 400, "variance": VARIANCE,
                                                    "a_range": (150.0, 250.0), "n_range": (1.5, 3.0)})
    assert torch.equal(ours, sample(patched, direct, sigmas))  # the same computation, bit for bit
    for name, value in DOSSR_CHANGES:
        changed = sample(patched, node_sampler(DoSSRSampler, **dict(DOSSR, **{name: value})), sigmas)
        # float noise is ~1e-6 of the values (the two direct runs agree bit for bit); 1e-4 is far above it
        assert (changed - ours).abs().max() > 1e-4 * ours.abs().max(), f"{name} did not reach the sampler"
    # t1 reaches the sampler: schedules starting at t1 - 1 only, so t1 = 500 refuses this t1 = 400 schedule
    with pytest.raises(Exception, match="t1 = 500 needs a start at t1 - 1 = 499"):
        sample(patched, node_sampler(DoSSRSampler, **dict(DOSSR, t1=500)), sigmas)


TSS = dict(variance_map=VARIANCE, base="dpmpp_2m", a_min=400.0, a_max=700.0, n_min=1.5, n_max=3.0)
TSS_CHANGES = [("base", "euler"), ("a_min", 300.0), ("a_max", 800.0), ("n_min", 1.0), ("n_max", 4.0)]


def test_tss_sampler_node_passes_every_widget(patched):
    sigmas = comfy.samplers.calculate_sigmas(patched.get_model_object("model_sampling"), "normal", 8)[3:]  # img2img start
    ours = sample(patched, node_sampler(TSSSampler, **TSS), sigmas)
    direct = comfy.samplers.KSAMPLER(sample_tss, {"variance": VARIANCE, "base": "dpmpp_2m", "a_range": (400.0, 700.0),
                                                  "n_range": (1.5, 3.0)})
    assert torch.equal(ours, sample(patched, direct, sigmas))
    for name, value in TSS_CHANGES:
        changed = sample(patched, node_sampler(TSSSampler, **dict(TSS, **{name: value})), sigmas)
        assert (changed - ours).abs().max() > 1e-4 * ours.abs().max(), f"{name} did not reach the sampler"
