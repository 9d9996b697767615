"""The bundled starter SR model: ComfyUI's UNet class, small, beats bicubic on held-out data, and is
told apart from other model files."""
import numpy as np
import pytest
import safetensors.torch

from support import ckpt_factory as cf
from support import starter_eval as ev
from timeaware_sr.model_patches.checkpoint_io import CheckpointError
from timeaware_sr.model_patches.dossr.checkpoint import load_dossr
from timeaware_sr.model_patches.starter.starter_sr import load_starter

# Recorded with tests/support/starter_eval.py on the shipped weights: DoSSR 1 step to sigma 0, seed 0, x4,
# held-out coffee crop (bicubic: 26.153 dB). Seeded and deterministic on CPU; 0.1 dB covers
# thread-count rounding, and still catches a regression to bicubic level.
PINNED_PSNR = 26.679
BICUBIC_MARGIN_DB = 0.3


@pytest.fixture(scope="module")
def starter():
    return ev.load_model()


def test_the_starter_is_comfyuis_own_unet_and_small():
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    model, vae, cond = ev.load_model()
    assert type(model.model.diffusion_model) is UNetModel
    assert ev.WEIGHTS.stat().st_size <= 10 * 2**20
    assert model.model.latent_format.latent_channels == 3


def test_beats_bicubic_on_a_held_out_photo_and_matches_the_recorded_value(starter, report_table):
    model, _, cond = starter
    hr = ev.held_out_images()["coffee"]
    lr = ev.bicubic(hr, (hr.shape[1] // 4, hr.shape[0] // 4))
    base = ev.psnr(ev.bicubic(lr, (hr.shape[1], hr.shape[0])), hr)
    ours = ev.psnr(ev.upscale(model, cond, lr, 4, "dossr", 1, 1, seed=0), hr)
    report_table(f"starter model x4 on held-out coffee: bicubic {base:.2f} dB, DoSSR 1 step {ours:.2f} dB "
                 f"(+{ours - base:.2f} dB)")
    assert ours > base + BICUBIC_MARGIN_DB
    assert ours == pytest.approx(PINNED_PSNR, abs=0.1)


def test_x0_estimate_is_the_lr_minus_the_networks_residual(starter):
    import torch

    model, _, cond = starter
    g = torch.Generator().manual_seed(3)
    lr, x = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1, torch.randn(1, 3, 16, 16, generator=g)
    sigma = torch.tensor([0.8])
    d = model.model.apply_model(x, sigma, c_concat=lr, c_crossattn=cond[0][0])
    t = model.get_model_object("model_sampling").timestep(sigma).float()
    residual = model.model.diffusion_model(torch.cat([x / (sigma**2 + 1).sqrt(), lr], 1), t)
    torch.testing.assert_close(d, lr - residual, atol=1e-5, rtol=1e-5)


def test_sampling_is_seeded(starter):
    model, _, cond = starter
    lr = ev.bicubic(ev.held_out_images()["chelsea"], (48, 32))
    a, b = ev.upscale(model, cond, lr, 2, seed=1), ev.upscale(model, cond, lr, 2, seed=1)
    c = ev.upscale(model, cond, lr, 2, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_the_dossr_loader_refuses_the_starter_model_by_type():
    with pytest.raises(CheckpointError, match="not a DoSSR checkpoint: it looks like a TimeAwareSR starter model"):
        load_dossr(str(ev.WEIGHTS))


def test_the_starter_loader_refuses_a_dossr_checkpoint_by_type(tmp_path):
    path = tmp_path / "dossr_default.safetensors"
    safetensors.torch.save_file(cf.dossr_state_dict("tiny"), str(path))
    with pytest.raises(CheckpointError, match="wrong model type for the starter SR loader: it looks like a ControlNet"):
        load_starter(str(path))
