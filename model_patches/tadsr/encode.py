"""TADSR Encode's pipeline (docs/tadsr.md §5): an IMAGE through the time-aware encoder at t_s, whole or in
tiles, to the latent TADSR One-Step starts from (the posterior's mean, or a seeded sample as the official
`.sample()`). The encoder itself is time_aware_vae.py."""
import torch

from ...clear_errors import InputError
from ..tiling.tiled_encode import fits_one_tile, tiled_encode
from .time_aware_vae import TimeAwareEncoder

MIN_SIDE = 8  # pixels: one latent pixel


def encode_image(vae, image: torch.Tensor, t_s: int, seed: int | None, tile: int | None = None,
                 overlap: int = 0) -> torch.Tensor:
    """The LR latent of an IMAGE (B,H,W,C with 1, 3 or 4 channels: gray is used as RGB, alpha dropped).
    seed None: the mean; else mean + std * noise from the seed, drawn once over the whole latent, so
    tiled or not the same seed gives the same noise."""
    if not isinstance(getattr(getattr(vae, "first_stage_model", None), "encoder", None), TimeAwareEncoder):
        raise InputError("the vae input is not TADSR's time-aware VAE: connect the VAE output of Load TADSR")
    if image.shape[-1] == 1:
        image = image.expand(*image.shape[:-1], 3)
    elif image.shape[-1] == 4:
        image = image[..., :3]
    elif image.shape[-1] != 3:
        raise InputError(f"image must have 1, 3 or 4 channels, got {image.shape[-1]}")
    if image.shape[1] < MIN_SIDE or image.shape[2] < MIN_SIDE:
        raise InputError(f"image is {image.shape[2]}x{image.shape[1]}; TADSR Encode needs at least "
                         f"{MIN_SIDE}x{MIN_SIDE} pixels")
    return latent_from_moments(encode_moments(vae, image, t_s, tile, overlap), seed)


def encode_moments(vae, pixels: torch.Tensor, t_s: int, tile: int | None = None, overlap: int = 0) -> torch.Tensor:
    """The TAE's Gaussian parameters (mean, logvar stacked on channels) for ComfyUI IMAGE pixels
    (B,H,W,C in [0,1]); the VAE is loaded the way stock VAE Encode loads it. With `tile` (pixels), an
    image larger than one tile is encoded in overlapping tiles by VAE Encode (Tiled)'s rule
    (model_patches/tiling/tiled_encode.py); both moments are blended alike."""
    import comfy.model_management as mm


    x = vae.vae_encode_crop_pixels(pixels).movedim(-1, 1)
    whole = tile is None or fits_one_tile(x.shape[2], x.shape[3], tile)
    loaded_shape = x.shape if whole else (1, x.shape[1], tile, tile)  # the largest tile (all layouts: tile² pixels)
    mm.load_models_gpu([vae.patcher], memory_required=vae.memory_used_encode(loaded_shape, vae.vae_dtype))
    fsm = vae.first_stage_model

    def moments(px):
        with torch.no_grad():
            px = vae.process_input(px).to(vae.device, vae.vae_dtype)
            return fsm.quant_conv(fsm.encoder(px, t_s)).to(vae.output_device).float()

    if whole:
        return moments(x)
    return tiled_encode(x, moments, tile, overlap, vae.spacial_compression_encode(), 2 * vae.latent_channels,
                        vae.output_device)


def latent_from_moments(moments: torch.Tensor, seed: int | None) -> torch.Tensor:
    """mean + std * eps with eps from `seed` (the official `.sample()`), or the mean for seed=None.
    logvar is clamped to [-30, 20] as every SD posterior is."""
    from comfy.ldm.modules.distributions.distributions import DiagonalGaussianDistribution

    posterior = DiagonalGaussianDistribution(moments)
    if seed is None:
        return posterior.mean
    eps = torch.randn(posterior.mean.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    return posterior.mean + posterior.std * eps.to(posterior.mean.device)
