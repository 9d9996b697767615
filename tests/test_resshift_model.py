"""ResShift's network, VQ-f4 autoencoder and ComfyUI model on the official layouts (tiny and real size)."""
import math

import pytest
import torch

from support import resshift_factory as factory
from timeaware_sr.model_patches.checkpoint_io import check_keys
from timeaware_sr.model_patches.resshift.checkpoint import build_resshift_model, unet_config_from_weights
from timeaware_sr.clear_errors import InputError
from timeaware_sr.image_ops.model_size import reflect_indices
from timeaware_sr.model_patches.resshift.lr_image import crop_output, pad_lr, prepare_lr
from timeaware_sr.model_patches.resshift.unet_swin import REAL_CONFIG, UNetModelSwin
from timeaware_sr.model_patches.resshift.vq_f4 import REAL_CONFIG as VQ_REAL, VQModelF4, build_vq_f4_vae, vq_config_from_weights


@pytest.fixture(scope="module")
def tiny_model():
    return build_resshift_model(factory.unet_state_dict("tiny"), "sinsr", "tiny")


@pytest.fixture(scope="module")
def tiny_vae():
    sd = factory.vq_state_dict("tiny")
    module = VQModelF4(**vq_config_from_weights(sd))
    module.load_state_dict(sd)
    return build_vq_f4_vae(module)


def test_real_size_network_has_exactly_the_official_keys_and_shapes():
    layout = factory.unet_layout(factory.REAL_UNET)
    with torch.device("meta"):
        net = UNetModelSwin(**REAL_CONFIG)
        official = {k: torch.empty(v if v[0] not in ("index", "mask") else (1,)) for k, v in layout.items()}
    mine = net.state_dict()
    assert set(mine) == set(official)  # no missing, no unexpected
    for k, v in layout.items():
        if v[0] == "index":
            assert tuple(mine[k].shape) == (v[1] ** 2, v[1] ** 2)
        elif v[0] == "mask":
            _, ds, window, _ = v
            assert tuple(mine[k].shape) == ((ds // window) ** 2, window ** 2, window ** 2)
        else:
            assert tuple(mine[k].shape) == tuple(v), k
    # the paper's parameter count for ResShift's network (TAD-SR table: 118.59 M)
    assert sum(p.numel() for p in net.parameters()) / 1e6 == pytest.approx(118.59, abs=0.005)


def test_real_size_config_is_read_back_from_the_official_layout():
    shapes = {k: torch.empty(0).new_empty(v if v[0] not in ("index", "mask") else
                                         ((v[1] // v[2]) ** 2, v[2] ** 2, v[2] ** 2) if v[0] == "mask" else (1,),
                                         device="meta")
              for k, v in factory.unet_layout(factory.REAL_UNET).items()}
    config = unet_config_from_weights(shapes)
    assert {k: config[k] for k in REAL_CONFIG} == {**REAL_CONFIG, "mlp_ratio": 4.0}


def test_real_size_vq_f4_has_exactly_the_official_keys():
    layout = factory.vq_layout(factory.REAL_VQ)
    with torch.device("meta"):
        module = VQModelF4(**VQ_REAL)
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {k: tuple(v) for k, v in layout.items()}
    assert sum(p.numel() for p in module.parameters()) / 1e6 == pytest.approx(55.32, abs=0.01)  # TAD-SR table


@pytest.fixture(scope="module")
def real_net():
    """The real-size network with the factory's random weights loaded strictly (about 0.5 GB)."""
    net = UNetModelSwin(**REAL_CONFIG).eval()
    net.load_state_dict(factory.unet_state_dict("real"))
    return net


@pytest.mark.parametrize("lr_hw", [(20, 37), (65, 3)])
def test_real_size_network_output_shape_for_odd_lr_sizes_and_the_crop_back(real_net, lr_hw):
    """Padded to multiples of 64 LR px, every skip connection lines up and the crop restores 4x the LR."""
    net = real_net
    image = torch.rand(1, *lr_hw, 3)
    upscaled, lq = prepare_lr(image)
    hp, wp = (-(-s // 64) * 64 for s in lr_hw)
    assert lq.shape == (1, 3, hp, wp) and upscaled.shape == (1, 4 * hp, 4 * wp, 3)
    latent = torch.randn(1, 3, hp, wp)  # the f4 latent of `upscaled`
    with torch.no_grad():
        out = net(torch.cat([latent, lq], 1), torch.tensor([14]))
    assert out.shape == (1, 3, hp, wp) and torch.isfinite(out).all()
    assert crop_output(upscaled, *lr_hw).shape == (1, 4 * lr_hw[0], 4 * lr_hw[1], 3)


@pytest.mark.parametrize("lr_hw", [(16, 24), (64, 64), (65, 24)])
def test_crop_output_takes_only_the_decoded_result_of_that_lr(lr_hw):
    decoded = torch.rand(1, 4 * 64, 4 * 64, 3)  # of a 64 x 64 padded LR: any LR up to 64 px a side
    if max(lr_hw) <= 64:
        assert torch.equal(crop_output(decoded, *lr_hw), decoded[:, :4 * lr_hw[0], :4 * lr_hw[1]])
    with pytest.raises(InputError, match="connect to lr_image the same image that went into 'ResShift Prepare LR'"):
        crop_output(decoded[:, :200], 16, 24)  # the decoded image cut short
    if max(lr_hw) > 64:
        with pytest.raises(InputError, match=r"an lr_image of 24x65 px gives a decoded result of 256x512 px"):
            crop_output(decoded, *lr_hw)


def test_the_network_refuses_sides_that_are_not_multiples_of_its_downsampling(tiny_model):
    net = tiny_model.model.diffusion_model
    with pytest.raises(ValueError, match="multiples of 16"):
        net(torch.randn(1, 6, 24, 32), torch.tensor([1]))


def test_reflect_padding_equals_torch_reflect_where_it_works_and_repeats_for_small_sides():
    x = torch.arange(40.0 * 50).view(1, 1, 40, 50)
    torch.testing.assert_close(pad_lr(x), torch.nn.functional.pad(x, (0, 14, 0, 24), mode="reflect"), rtol=0, atol=0)
    assert reflect_indices(3, 10).tolist() == [0, 1, 2, 1, 0, 1, 2, 1, 0, 1]  # mirrored back and forth
    assert reflect_indices(1, 4).tolist() == [0, 0, 0, 0]
    small = torch.rand(2, 5, 32, 3)  # the official code fails here (pad 59 > side 5)
    up, lq = prepare_lr(small)
    assert lq.shape == (2, 3, 64, 64) and torch.equal(lq[:, :, :5, :32], small.movedim(-1, 1) * 2 - 1)


def test_prepare_lr_is_bicubic_x4_of_the_padded_lr_unclipped():
    image = torch.rand(1, 64, 64, 3)
    up, lq = prepare_lr(image)
    ref = torch.nn.functional.interpolate(image.movedim(-1, 1) * 2 - 1, scale_factor=4, mode="bicubic")
    torch.testing.assert_close(up.movedim(-1, 1) * 2 - 1, ref, rtol=0, atol=1e-6)  # linear maps commute
    assert up.min() < 0 or up.max() > 1  # bicubic overshoot on noise is kept, as the official code encodes it


def test_one_step_equals_a_raw_network_call_at_t_minus_one(tiny_model):
    import comfy.sample
    import comfy.samplers

    from timeaware_sr.model_patches.resshift.model import LQ_KEY
    from timeaware_sr.samplers.resshift_sampler import sample_resshift
    from timeaware_sr.samplers.resshift_schedule import resshift_sigmas

    torch.manual_seed(0)
    y = torch.randn(2, 3, 64, 64)
    lq = torch.rand(2, 3, 64, 64) * 2 - 1
    noise = torch.randn_like(y)
    cond = [[torch.zeros(1, 1, 1), {LQ_KEY: lq}]]
    sigmas = resshift_sigmas(tiny_model.get_model_object("model_sampling"))
    assert len(sigmas) == 2  # the sinsr preset: one step
    out = comfy.sample.sample_custom(tiny_model, noise, 1.0, comfy.samplers.KSAMPLER(sample_resshift), sigmas, cond,
                                     cond, y, disable_pbar=True)
    kappa, eta_T = 2.0, 0.99 ** 2
    x_T = y + kappa * math.sqrt(eta_T) * noise
    with torch.no_grad():
        raw = tiny_model.model.diffusion_model(torch.cat([x_T / math.sqrt(kappa ** 2 * eta_T + 1), lq], 1),
                                               torch.tensor([14.0, 14.0]))
    torch.testing.assert_close(out, raw, rtol=1e-5, atol=1e-5)  # float32 sigma vs float64 eta_T in the scaling


def test_batch_items_are_independent_and_cfg_with_identical_conds_changes_nothing(tiny_model):
    import comfy.sample
    import comfy.samplers

    from timeaware_sr.model_patches.resshift.model import LQ_KEY
    from timeaware_sr.samplers.resshift_sampler import sample_resshift

    torch.manual_seed(1)
    y, lq, noise = torch.randn(2, 3, 64, 64), torch.rand(2, 3, 64, 64) * 2 - 1, torch.randn(2, 3, 64, 64)
    cond = [[torch.zeros(1, 1, 1), {LQ_KEY: lq}]]
    sigmas = torch.tensor([1.98, 0.9, 0.0])
    run = lambda n, c, cfg, lr: comfy.sample.sample_custom(  # noqa: E731
        tiny_model, n, cfg, comfy.samplers.KSAMPLER(sample_resshift), sigmas, [[torch.zeros(1, 1, 1), {LQ_KEY: lr}]],
        [[torch.zeros(1, 1, 1), {LQ_KEY: lr}]], c, disable_pbar=True, seed=5)
    both = run(noise, y, 1.0, lq)
    second = run(noise[1:], y[1:], 1.0, lq[1:])
    # the sampler's noise comes from one seeded generator for the whole batch, so compare the x0 call instead
    ms = tiny_model.model
    with torch.no_grad():
        a = ms.apply_model(y, torch.full((2,), 1.98), c_concat=lq)
        b = ms.apply_model(y[1:], torch.full((1,), 1.98), c_concat=lq[1:])
    torch.testing.assert_close(a[1:], b, rtol=1e-5, atol=1e-5)  # batched vs alone: same math, other kernels
    assert both.shape == (2, 3, 64, 64) and second.shape == (1, 3, 64, 64)
    torch.testing.assert_close(run(noise, y, 3.0, lq), both, rtol=1e-5, atol=1e-5)  # cond == uncond: CFG is a no-op


def test_vq_f4_encode_is_unquantized_and_decode_quantizes_as_the_official_code(tiny_vae):
    torch.manual_seed(0)
    image = torch.rand(2, 64, 48, 3)
    z = tiny_vae.encode(image)
    assert z.shape == (2, 3, 16, 12)
    assert torch.equal(z, tiny_vae.encode(image))  # deterministic
    module = tiny_vae.first_stage_model
    book = module.quantize.embedding.weight
    with torch.no_grad():
        expected_z = module.quant_conv(module.encoder(image.movedim(-1, 1) * 2 - 1))
        torch.testing.assert_close(z, expected_z, rtol=1e-5, atol=1e-5)
        flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
        assert torch.cdist(flat, book).min(1).values.max() > 1e-3  # the latent is not snapped to the codebook
        nearest = book[torch.cdist(flat, book).argmin(1)].view(2, 16, 12, 3).permute(0, 3, 1, 2)
        expected = module.decoder(module.post_quant_conv(nearest))
        unquantized = module.decoder(module.post_quant_conv(z))
    decoded = tiny_vae.decode(z)
    assert decoded.shape == (2, 64, 48, 3)
    ref = ((expected + 1) / 2).clamp(0, 1).movedim(1, -1)
    torch.testing.assert_close(decoded, ref, rtol=1e-5, atol=1e-5)
    assert (decoded - ((unquantized + 1) / 2).clamp(0, 1).movedim(1, -1)).abs().max() > 1e-3
    with torch.inference_mode():  # as nodes run (ComfyUI's tiled encode updates in place)
        assert tiny_vae.decode_tiled(z, tile_x=8, tile_y=8, overlap=2).shape == decoded.shape
        assert tiny_vae.encode_tiled(image, tile_x=32, tile_y=32, overlap=8).shape == z.shape
