"""ResShift's VQ-f4 autoencoder through stock VAE Encode (Tiled) / VAE Decode (Tiled) on images
larger than one tile (issue 15): ComfyUI's tiled path reads the VAE's 4x ratio, 3 latent channels and
[-1, 1] pixel range correctly, and tiled decoding still snaps every latent vector to the codebook.

Tiled equals untiled only for networks whose outputs do not depend on other tiles: the wiring tests
swap the VQ model's encoder for a per-4x4-block map and its decoder for a per-latent-pixel map (every
other part, quant_conv, the codebook snap, post_quant_conv and ComfyUI's VAE object, stays), so tiled
and untiled must agree up to the blend's float rounding. The real architecture (GroupNorm and a
mid-block attention see a tile, not the image) is checked for what holds at any weights: the snap."""
import pytest
import torch

import nodes as comfy_nodes
from support import resshift_factory as factory
from timeaware_sr.model_patches.resshift.vq_f4 import VQModelF4, build_vq_f4_vae, nearest_code, vq_config_from_weights

TILE, OVERLAP = 128, 32  # pixels: VAE Decode (Tiled) takes them / 4 (32 latent px, 8 overlap)


def vq_vae():
    sd = factory.vq_state_dict("tiny")
    module = VQModelF4(**vq_config_from_weights(sd))
    module.load_state_dict(sd)
    return build_vq_f4_vae(module)


@pytest.fixture(scope="module")
def blockwise_vae():
    """The VQ VAE with a per-4x4-block encoder and a per-latent-pixel decoder."""
    vae = vq_vae()
    g = torch.Generator().manual_seed(3)
    module = vae.first_stage_model
    module.encoder = torch.nn.Conv2d(3, 3, 4, stride=4)
    module.decoder = torch.nn.ConvTranspose2d(3, 3, 4, stride=4)
    with torch.no_grad():
        for p in [*module.encoder.parameters(), *module.decoder.parameters()]:
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        # a codebook spread over the latents' range, so the snap moves them but keeps them distinct
        module.quantize.embedding.weight.copy_(torch.randn(module.quantize.embedding.weight.shape, generator=g))
    return vae


def encode_tiled(vae, pixels):
    with torch.inference_mode():
        return comfy_nodes.VAEEncodeTiled().encode(vae, pixels, TILE, OVERLAP)[0]["samples"]


def decode_tiled(vae, latent):
    with torch.inference_mode():
        return comfy_nodes.VAEDecodeTiled().decode(vae, {"samples": latent}, TILE, OVERLAP)[0]


def test_stock_tiled_encode_equals_untiled_on_a_per_block_vq_encoder(blockwise_vae):
    pixels = torch.rand(2, 200, 328, 3, generator=torch.Generator().manual_seed(0))  # several tiles each way
    tiled = encode_tiled(blockwise_vae, pixels)
    untiled = blockwise_vae.encode(pixels)
    assert tiled.shape == untiled.shape == (2, 3, 50, 82)
    torch.testing.assert_close(tiled, untiled, rtol=1e-5, atol=1e-5)  # blend of equal values: rounding only


def test_stock_tiled_decode_equals_untiled_and_snaps_to_the_codebook(blockwise_vae):
    z = torch.randn(1, 3, 50, 82, generator=torch.Generator().manual_seed(1))
    module = blockwise_vae.first_stage_model
    with torch.no_grad():
        snapped = module.decoder(module.post_quant_conv(nearest_code(z, module.quantize.embedding.weight)))
        unsnapped = module.decoder(module.post_quant_conv(z))
    expected = ((snapped + 1) / 2).clamp(0, 1).movedim(1, -1)  # ComfyUI's [-1, 1] -> [0, 1]
    tiled = decode_tiled(blockwise_vae, z)
    assert tiled.shape == (1, 200, 328, 3)
    torch.testing.assert_close(tiled, expected, rtol=1e-5, atol=1e-5)  # blend of equal values: rounding only
    torch.testing.assert_close(tiled, blockwise_vae.decode(z), rtol=1e-5, atol=1e-5)
    assert (tiled - ((unsnapped + 1) / 2).clamp(0, 1).movedim(1, -1)).abs().max() > 1e-2  # the snap matters here


def test_the_real_architecture_tiles_and_every_tile_is_snapped():
    vae = vq_vae()
    pixels = torch.rand(1, 200, 264, 3, generator=torch.Generator().manual_seed(2))
    z = encode_tiled(vae, pixels)
    assert z.shape == (1, 3, 50, 66) and torch.isfinite(z).all()
    book = vae.first_stage_model.quantize.embedding.weight.detach()
    assert torch.cdist(z.permute(0, 2, 3, 1).reshape(-1, 3), book).min(1).values.max() > 1e-3  # encode: no snap
    # Snapping is per latent vector and idempotent: decoding z in tiles must equal decoding its snapped
    # copy in the same tiles, bit for bit, and differ from decoding the raw latent.
    tiled = decode_tiled(vae, z)
    assert tiled.shape == (1, 200, 264, 3)
    assert torch.equal(tiled, decode_tiled(vae, nearest_code(z, book)))
    raw = vq_vae()
    raw.first_stage_model.decode = lambda latent: VQModelF4.decode(raw.first_stage_model, latent, quantize=False)
    assert (tiled - decode_tiled(raw, z)).abs().max() > 1e-3
