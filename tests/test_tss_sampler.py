"""TSS sampler (SPEC §1-2) through ComfyUI's own sampling stack, against ComfyUI's base samplers."""
import pytest
import torch

from support import ckpt_factory as cf
from support.batches import assert_each_image_follows_its_own_map
import comfy.k_diffusion.sampling as kds
import comfy.sample
import comfy.samplers
from timeaware_sr.model_patches.sd_components import build_unet
from timeaware_sr.model_patches.tss.spatial_timestep import patch_spatial_timesteps
from timeaware_sr.samplers.pixel_schedule import pixel_schedule
from timeaware_sr.samplers.tss_sampler import sample_tss, tss_timesteps


def tss_sigma_maps(ms, sigmas, variance, a_range, n_range):
    """Every step's per-pixel sigma map as the TSS sampler builds them (float32, as it uses them)."""
    return [s.float() for _, s in pixel_schedule(ms, sigmas, tss_timesteps(ms, sigmas), variance, a_range, n_range)]


@pytest.fixture(scope="module")
def model():
    sd = cf.unet_state_dict("sd21", "tiny", "eps")
    return build_unet({k[len(cf.UNET_PREFIX):]: v for k, v in sd.items()})


def conds(batch=1):
    g = torch.Generator().manual_seed(11)
    return [[torch.randn(batch, 4, cf.TINY_CONTEXT, generator=g), {}]], [[torch.randn(batch, 4, cf.TINY_CONTEXT, generator=g), {}]]


def run(model, sampler, sigmas, latent, cfg=3.0, seed=5):
    positive, negative = conds(latent.shape[0])
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(seed))
    return comfy.sample.sample_custom(model, noise, cfg, sampler, sigmas, positive, negative, latent, seed=seed,
                                      disable_pbar=True)


@pytest.mark.parametrize("base, reference", [("euler", kds.sample_euler), ("dpmpp_2m", kds.sample_dpmpp_2m)])
def test_constant_map_equals_the_base_sampler_on_that_schedule(model, base, reference):
    """A flat image: every pixel has a = a_min, n = n_min, i.e. one TDS schedule for all."""
    ms = model.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(ms, "normal", 8)[2:]  # an img2img-style start
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    variance = torch.zeros(1, 64, 64)
    options = {"variance": variance, "base": base, "a_range": (500.0, 500.0), "n_range": (2.0, 2.0)}
    ours = run(patch_spatial_timesteps(model), comfy.samplers.KSAMPLER(sample_tss, options), sigmas, latent)
    schedule = torch.stack([m.flatten()[0] for m in tss_sigma_maps(ms, sigmas, variance[:, None, :8, :8], (500.0, 500.0), (2.0, 2.0))])
    assert not torch.allclose(schedule, sigmas)  # the remap really moved the steps
    theirs = run(model, comfy.samplers.KSAMPLER(reference), schedule, latent)
    # float32 sampling on both sides, per-pixel maps vs scalars, over 5-6 steps: ~1e-6 relative
    assert (ours - theirs).abs().max() <= 1e-4 * theirs.abs().max()


def test_textured_pixels_follow_a_different_schedule_than_smooth_ones(model):
    ms = model.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(ms, "normal", 6)
    v = torch.zeros(1, 1, 8, 8)
    v[..., 4:] = 1
    maps = tss_sigma_maps(ms, sigmas, v, (400.0, 600.0), (1.0, 3.0))
    smooth = torch.stack([m[0, 0, 0, 0] for m in maps])
    textured = torch.stack([m[0, 0, 0, 7] for m in maps])
    torch.testing.assert_close(smooth, sigmas.float(), rtol=1e-4, atol=1e-6)  # n = 1: uniform
    assert textured[0] == smooth[0] and textured[-1] == 0  # shared start and end
    assert not torch.allclose(textured[1:-1], smooth[1:-1])


def test_batches_take_one_map_per_image_and_the_sampler_runs_with_cfg(model):
    """Each image of a batch equals a run of that image alone with its own map (CFG 3)."""
    ms = model.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(ms, "normal", 8)[3:]
    g = torch.Generator().manual_seed(21)
    latent = torch.randn(2, 4, 8, 8, generator=g)
    noise = torch.randn(2, 4, 8, 8, generator=g)
    positive, negative = conds(2)
    variance = torch.stack([torch.zeros(64, 64), torch.linspace(0, 1, 64).expand(64, 64)])
    patched = patch_spatial_timesteps(model)

    def sample(i, v):
        pos = [[positive[0][0][i], {}]]
        neg = [[negative[0][0][i], {}]]
        return comfy.sample.sample_custom(patched, noise[i], 3.0, comfy.samplers.KSAMPLER(sample_tss, {"variance": v}),
                                          sigmas, pos, neg, latent[i], seed=5, disable_pbar=True)

    assert_each_image_follows_its_own_map(sample, variance, map_effect=1e-2)  # 1e-2: far above float noise
    with pytest.raises(ValueError, match="variance map has batch 3; it must be 1 or the latent batch 2"):
        run(patch_spatial_timesteps(model), comfy.samplers.KSAMPLER(sample_tss, {"variance": torch.zeros(3, 8, 8)}),
            sigmas, latent)


def test_a_nan_variance_map_is_refused(model):
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", 3)
    bad = torch.zeros(1, 8, 8)
    bad[0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="variance map contains NaN"):
        run(patch_spatial_timesteps(model), comfy.samplers.KSAMPLER(sample_tss, {"variance": bad}), sigmas,
            torch.zeros(1, 4, 8, 8))


def test_an_unpatched_model_is_refused_with_directions(model):
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", 3)
    with pytest.raises(ValueError, match="TSS Spatial Timestep Patch"):
        run(model, comfy.samplers.KSAMPLER(sample_tss, {"variance": torch.zeros(1, 8, 8)}), sigmas, torch.zeros(1, 4, 8, 8))


@pytest.fixture(scope="module")
def dossr_parts(tmp_path_factory):
    from timeaware_sr.model_patches.dossr.checkpoint import load_dossr

    return load_dossr(str(cf.tiny_dossr_checkpoint()))


def with_control(parts, strength=1.0):
    """Conditioning as ComfyUI's Apply ControlNet (Advanced) builds it."""
    positive, negative = conds()
    hint = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(2)).movedim(-1, 1)
    control = parts.control_net.copy().set_cond_hint(hint, strength, (0.0, 1.0), vae=parts.vae)
    return [[positive[0][0], {"control": control}]], [[negative[0][0], {"control": control}]]


@pytest.mark.parametrize("base, reference", [("euler", kds.sample_euler), ("dpmpp_2m", kds.sample_dpmpp_2m)])
def test_controlnets_get_per_pixel_timesteps_too(dossr_parts, base, reference):
    """Flat map + ControlNet == base sampler + ControlNet on the remapped schedule: only true if the
    ControlNet, like the UNet, runs at each pixel's sigma rather than the scalar one ComfyUI sees."""
    model = dossr_parts.model
    ms = model.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(ms, "normal", 6)[1:]
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(4))
    variance = torch.zeros(1, 64, 64)
    options = {"variance": variance, "base": base, "a_range": (400.0, 400.0), "n_range": (3.0, 3.0)}
    schedule = torch.stack([m.flatten()[0] for m in tss_sigma_maps(ms, sigmas, variance[:, None, :8, :8], (400.0, 400.0), (3.0, 3.0))])

    def sample(m, sampler, sig):
        positive, negative = with_control(dossr_parts)
        return comfy.sample.sample_custom(m, noise, 2.0, sampler, sig, positive, negative, latent, seed=1, disable_pbar=True)

    ours = sample(patch_spatial_timesteps(model), comfy.samplers.KSAMPLER(sample_tss, options), sigmas)
    theirs = sample(model, comfy.samplers.KSAMPLER(reference), schedule)
    without_control = comfy.sample.sample_custom(model, noise, 2.0, comfy.samplers.KSAMPLER(reference), schedule,
                                                 *conds(), latent, seed=1, disable_pbar=True)
    assert (theirs - without_control).abs().max() > 1e-3  # the ControlNet matters here
    # float32 sampling on both sides, per-pixel maps vs scalars, over 5-6 steps: ~1e-6 relative
    assert (ours - theirs).abs().max() <= 1e-4 * theirs.abs().max()


def test_the_controlnet_is_untouched_after_a_tss_run(dossr_parts):
    model = dossr_parts.model
    ms = model.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(ms, "normal", 3)
    latent = torch.zeros(1, 4, 8, 8)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(9))

    def plain():
        return comfy.sample.sample_custom(model, noise, 2.0, comfy.samplers.KSAMPLER(kds.sample_euler), sigmas,
                                          *with_control(dossr_parts), latent, seed=1, disable_pbar=True)

    before = plain()
    comfy.sample.sample_custom(patch_spatial_timesteps(model), noise, 2.0,
                               comfy.samplers.KSAMPLER(sample_tss, {"variance": torch.rand(1, 64, 64)}), sigmas,
                               *with_control(dossr_parts), latent, seed=1, disable_pbar=True)
    assert torch.equal(plain(), before)
