"""The LR latent an SR sampler starts from (DoSSR's xhat0, TADSR's z_L): the sampler's input latent,
which ComfyUI hands over already process_latent_in-scaled, checked once for every sampler alike."""
import torch

from ..clear_errors import InputError


def lr_latent(model, sampler: str, source: str) -> torch.Tensor:
    """`sampler` names the sampler in messages; `source` says how the user makes the latent."""
    needs = f"{sampler} needs the LR image's latent as its input latent ({source})"
    latent = getattr(model, "latent_image", None)
    if latent is None:
        raise InputError(f"{needs}; it got none")
    expected = model.inner_model.inner_model.latent_format.latent_channels
    if not torch.count_nonzero(latent) and expected != 3:
        # Through a compressing VAE (SD: 4 channels) no image encodes to exactly 0, so this is an Empty
        # Latent Image. A pixel-space model's RGB "latent" is 0 for a flat 50 % gray image: a valid LR.
        raise InputError(f"{needs}; it got an empty latent (all zeros)")
    if not torch.isfinite(latent).all():
        raise InputError(f"the LR latent given to {sampler} contains NaN or infinite values")
    if latent.shape[1] != expected:
        raise InputError(f"the LR latent has {latent.shape[1]} channels but this model's latents have {expected}: "
                         f"encode the LR image with the VAE that belongs to this model")
    return latent
