"""DoSSR with per-pixel TSS schedules (issue: "TSS with DoSSR"): every coefficient elementwise,
checked against plain scalar DoSSR runs through ComfyUI's own sampling stack."""
import pytest
import torch

from support import ckpt_factory as cf
import comfy.sample
import comfy.samplers
from timeaware_sr.model_patches.sd_components import build_unet
from timeaware_sr.model_patches.tss.spatial_timestep import patch_spatial_timesteps
from timeaware_sr.samplers.dossr_schedule import dossr_sigmas, eta_at, eta_schedule
from timeaware_sr.samplers.dossr_solver import sample_dossr
from support.batches import assert_each_image_follows_its_own_map
from support.toy_models import pixelwise_unet_model


@pytest.fixture(scope="module")
def model():
    sd = cf.unet_state_dict("sd21", "tiny", "eps")
    return build_unet({k[len(cf.UNET_PREFIX):]: v for k, v in sd.items()})


def lr_latent(shape=(1, 4, 8, 8), seed=1):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def run(model, options, sigmas, latent, cfg=2.0, context_dim=cf.TINY_CONTEXT, seed=5):
    g = torch.Generator().manual_seed(11)
    positive = [[torch.randn(latent.shape[0], 4, context_dim, generator=g), {}]]
    negative = [[torch.randn(latent.shape[0], 4, context_dim, generator=g), {}]]
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(seed))
    return comfy.sample.sample_custom(model, noise, cfg, comfy.samplers.KSAMPLER(sample_dossr, options), sigmas,
                                      positive, negative, latent, seed=seed, disable_pbar=True)


def scalar_schedule(ms, sigmas, v, a_range, n_range, t1=500):
    """A pixel with variance v, written out independently: its TDS timesteps (SPEC §1 on the sampled
    interval), the model's sigma there and the half-cosine eta there."""
    t = ms.timestep(sigmas).double()
    t[sigmas == 0] = 0
    t_start, t_end = float(t[0]), float(t[-1])
    a = a_range[0] + v * (a_range[1] - a_range[0]) - t_end
    n = n_range[0] + v * (n_range[1] - n_range[0])
    T, u = t_start - t_end, t - t_end
    f = torch.where(u < a, u**n / a ** (n - 1), T - (T - u) ** n / (T - a) ** (n - 1)) + t_end
    schedule = torch.where(sigmas > 0, ms.sigma(f.float()), 0.0)
    eta = torch.where(sigmas > 0, (1 - torch.cos(torch.pi * (0.001 + f * 0.998 / (t1 - 1)))) / 2, 0.0)
    return schedule.float(), eta.double()


def test_continuous_eta_equals_the_table_at_integer_timesteps():
    t = torch.arange(500, dtype=torch.float64)
    assert (eta_at(t) - eta_schedule()[:500]).abs().max() <= 1e-12  # float64 closed form vs linspace
    mid = eta_at(t[:-1] + 0.5)
    assert torch.all(mid > eta_at(t[:-1])) and torch.all(mid < eta_at(t[1:]))
    with pytest.raises(ValueError, match="t1=500"):
        eta_at(torch.tensor([500.0]))


@pytest.mark.parametrize("order", [1, 2, 3])
def test_a_uniform_pixel_schedule_equals_plain_dossr(model, order):
    """n = 1 everywhere: the per-pixel path (patched model, sigma maps, tensor weights) == scalar DoSSR."""
    sigmas = dossr_sigmas(model.get_model_object("model_sampling"), 5)
    latent = lr_latent()
    plain = run(model, {"order": order}, sigmas, latent)
    options = {"order": order, "variance": torch.rand(1, 64, 64), "a_range": (200.0, 300.0), "n_range": (1.0, 1.0)}
    per_pixel = run(patch_spatial_timesteps(model), options, sigmas, latent)
    assert (per_pixel - plain).abs().max() <= 1e-5 * plain.abs().max()  # float32 latents, float64 weights


@pytest.mark.parametrize("final_clean", [False, True])
def test_a_constant_map_equals_scalar_dossr_on_the_remapped_schedule(model, final_clean):
    ms = model.get_model_object("model_sampling")
    sigmas = dossr_sigmas(ms, 5, final_clean=final_clean)
    latent = lr_latent()
    options = {"order": 3, "variance": torch.zeros(1, 64, 64), "a_range": (250.0, 250.0), "n_range": (2.5, 2.5)}
    per_pixel = run(patch_spatial_timesteps(model), options, sigmas, latent)
    schedule, etas = scalar_schedule(ms, sigmas, 0.0, (250.0, 250.0), (2.5, 2.5))
    assert not torch.allclose(schedule, sigmas)  # the remap really moved the steps
    torch.testing.assert_close(schedule[[0, -1]], sigmas[[0, -1]], rtol=1e-6, atol=0)  # shared ends
    scalar = run(model, {"order": 3, "etas": etas}, schedule, latent)
    assert (per_pixel - scalar).abs().max() <= 1e-5 * scalar.abs().max()  # float32 latents, float64 weights


@pytest.mark.parametrize("order", [1, 3])
def test_every_pixel_follows_its_own_schedule(order):
    """In a per-pixel network, a pixel's DoSSR result == the scalar DoSSR run on that pixel's schedule."""
    model = pixelwise_unet_model()
    ms = model.get_model_object("model_sampling")
    sigmas = dossr_sigmas(ms, 5)
    latent = lr_latent((1, 4, 6, 8), seed=2)
    which = torch.randint(0, 3, (1, 6, 8), generator=torch.Generator().manual_seed(3))
    levels = torch.tensor([0.0, 0.5, 1.0])
    a_range, n_range = (150.0, 350.0), (1.0, 3.0)
    options = {"order": order, "variance": levels[which], "a_range": a_range, "n_range": n_range}
    per_pixel = run(patch_spatial_timesteps(model), options, sigmas, latent, context_dim=1)
    schedules = []
    for k, v in enumerate(levels):
        schedule, etas = scalar_schedule(ms, sigmas, v, a_range, n_range)
        schedules.append(schedule)
        scalar = run(model, {"order": order, "etas": etas}, schedule, latent, context_dim=1)
        mask = (which == k)[:, None].expand_as(latent)
        assert (per_pixel[mask] - scalar[mask]).abs().max() <= 1e-5 * scalar.abs().max()  # float32 rounding
    assert not torch.allclose(schedules[0], schedules[2])


def test_a_variance_map_needs_the_patch_and_a_matching_batch(model):
    sigmas = dossr_sigmas(model.get_model_object("model_sampling"), 3)
    with pytest.raises(ValueError, match="DoSSR sampler needs its model patched .* 'TSS Spatial Timestep Patch'"):
        run(model, {"variance": torch.zeros(1, 8, 8)}, sigmas, lr_latent())
    with pytest.raises(ValueError, match="variance map has batch 3; it must be 1 or the latent batch 2"):
        run(patch_spatial_timesteps(model), {"variance": torch.zeros(3, 8, 8)}, sigmas, lr_latent((2, 4, 8, 8)))


def test_batches_get_one_map_per_image(model):
    """Each image of a batch equals a run of that image alone with its own map (same noise, conds)."""
    sigmas = dossr_sigmas(model.get_model_object("model_sampling"), 3)
    g = torch.Generator().manual_seed(21)
    latent = torch.randn(2, 4, 8, 8, generator=g)
    noise = torch.randn(2, 4, 8, 8, generator=g)
    cond = torch.randn(2, 4, cf.TINY_CONTEXT, generator=g)
    variance = torch.stack([torch.zeros(64, 64), torch.ones(64, 64)])
    patched = patch_spatial_timesteps(model)

    class PerImageNoise:  # each image draws its own stream, whatever batch it is in
        def __init__(self, images):
            self.images, self.step = list(images), 0

        def __call__(self, sigma, sigma_next):
            self.step += 1
            return torch.cat([torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(100 * i + self.step))
                              for i in self.images])

    def sample(i, v):
        sampler = comfy.samplers.KSAMPLER(sample_dossr, {"variance": v, "a_range": (200.0, 300.0), "n_range": (1.0, 3.0),
                                                         "noise_sampler": PerImageNoise(range(2)[i])})
        return comfy.sample.sample_custom(patched, noise[i], 1.0, sampler, sigmas, [[cond[i], {}]], [[cond[i], {}]],
                                          latent[i], seed=5, disable_pbar=True)

    assert_each_image_follows_its_own_map(sample, variance, map_effect=1e-3)  # 1e-3: far above float noise
