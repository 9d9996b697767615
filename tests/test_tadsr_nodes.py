"""TADSR Encode's input handling, in-process (the live tests cover the graph)."""
import pytest
import torch

from support import tadsr_factory as tf
from timeaware_sr.model_patches.tadsr import checkpoint as ck
from timeaware_sr.model_patches.tadsr import time_vae_folder as tvf
from timeaware_sr.nodes.tadsr import TADSREncode


@pytest.fixture(scope="module")
def vae():
    return tvf.time_aware_vae(tf.time_vae_state_dict("tiny"), ck.parse_tadsr_checkpoint(tf.tadsr_pkl_dict("tiny")))


def encode(vae, image, mode="mean", seed=0):
    return TADSREncode.execute(image, vae, 500, mode, seed).result[0]["samples"]


def test_grayscale_is_used_as_rgb_and_alpha_is_dropped(vae):
    gray = torch.rand(1, 32, 40, 1, generator=torch.Generator().manual_seed(0))
    rgb = gray.expand(-1, -1, -1, 3).contiguous()
    # a broadcast or strided input may pick another conv kernel: float32 rounding only
    assert torch.allclose(encode(vae, gray), encode(vae, rgb), atol=1e-5)
    rgba = torch.cat([rgb, torch.rand(1, 32, 40, 1)], dim=-1)
    assert torch.allclose(encode(vae, rgba), encode(vae, rgb), atol=1e-5)


def test_sample_mode_depends_on_the_seed_and_mean_does_not(vae):
    image = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(encode(vae, image, "mean", 1), encode(vae, image, "mean", 2))
    assert torch.equal(encode(vae, image, "sample", 1), encode(vae, image, "sample", 1))
    assert not torch.equal(encode(vae, image, "sample", 1), encode(vae, image, "sample", 2))


def test_bad_inputs_are_named(vae):
    with pytest.raises(ValueError, match="needs at least 8x8 pixels"):
        encode(vae, torch.rand(1, 4, 40, 3))
    with pytest.raises(ValueError, match="image must have 1, 3 or 4 channels, got 2"):
        encode(vae, torch.rand(1, 32, 32, 2))
    with pytest.raises(ValueError, match="t_s must be at least 1 and at most 999, got 0"):
        TADSREncode.execute(torch.rand(1, 32, 32, 3), vae, 0, "mean", 0)
    with pytest.raises(ValueError, match="mode must be one of"):
        TADSREncode.execute(torch.rand(1, 32, 32, 3), vae, 10, "median", 0)


def test_stock_vae_encode_on_the_tadsr_vae_is_the_mean_at_t_s_500(vae):
    from timeaware_sr.model_patches.tadsr.encode import encode_moments, latent_from_moments

    image = torch.rand(1, 32, 48, 3, generator=torch.Generator().manual_seed(2))
    expected = latent_from_moments(encode_moments(vae, image, 500), seed=None)
    assert torch.allclose(vae.encode(image), expected, atol=1e-6)  # same ops; ComfyUI's batching only
    assert not torch.allclose(vae.encode(image), latent_from_moments(encode_moments(vae, image, 100), seed=None), atol=1e-3)
