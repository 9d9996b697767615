"""DoSSR checkpoints (`dossr_default.ckpt`, `dossr_onestep.ckpt`; docs/dossr.md §3) -> ComfyUI objects.

One file holds the whole ControlLDM: SD 2.1-base UNet (eps), VAE, OpenCLIP-H text encoder, the
latent-concat ControlNet, its own condition encoder (a separate copy of the VAE encoder) and the
RRDBNet ESRGAN preprocessor. Schedule buffers (betas, alphas_cumprod, ...) are ignored.
"""
import os
from typing import NamedTuple

from ...clear_errors import CheckpointError
from ..checkpoint_io import about_file, describe, read_weights, sizes_from_weights, with_prefix
from ..latent_hint_controlnet import build_latent_hint_controlnet, encoder_only
from ..sd_components import build_sd2_text_encoder, build_unet, build_upscale_model, build_vae

COMPONENTS = {  # name -> checkpoint prefix
    "UNet": "model.diffusion_model.",
    "VAE": "first_stage_model.",
    "text encoder": "cond_stage_model.model.",
    "ControlNet": "control_model.",
    "condition encoder": "cond_encoder.",
    "ESRGAN preprocessor": "preprocess_model.",
}
DOSSR_ONLY = ("ControlNet", "condition encoder", "ESRGAN preprocessor")
HOLDS = ("a DoSSR checkpoint (dossr_default.ckpt or dossr_onestep.ckpt from the DoSSR release): the whole "
         "ControlLDM's tensors, named under " + ", ".join(COMPONENTS.values()))


class DoSSRComponents(NamedTuple):
    model: object  # ModelPatcher
    clip: object
    vae: object
    control_net: object
    upscale_model: object


def split_dossr_state_dict(sd: dict, name: str = "checkpoint") -> dict:
    """{component: its weights} for a DoSSR state dict, or a clear error saying what is wrong."""
    parts = {component: with_prefix(sd, prefix) for component, prefix in COMPONENTS.items()}
    if not any(parts[c] for c in DOSSR_ONLY):
        raise CheckpointError(
            f"{name} is not a DoSSR checkpoint: {describe(sd)}. It should hold {HOLDS}"
        )
    missing = [c for c, weights in parts.items() if not weights]
    if missing:
        raise CheckpointError(
            f"{name} is missing the DoSSR {', '.join(missing)} (no keys under "
            f"{', '.join(COMPONENTS[c] for c in missing)}); it may be truncated or a partial export"
        )
    return parts


def load_dossr(path: str) -> DoSSRComponents:
    name = os.path.basename(path)
    with about_file(path):
        return build_dossr(split_dossr_state_dict(read_weights(path, HOLDS), name), name)


def build_dossr(parts: dict, name: str) -> DoSSRComponents:
    import comfy.model_base

    try:
        with sizes_from_weights("the UNet weights"):
            model = build_unet(parts["UNet"], model_type=comfy.model_base.ModelType.EPS)  # SD 2.1-base: eps
        with sizes_from_weights("the VAE weights"):
            vae = build_vae(parts["VAE"])
        decoder = {k: v for k, v in parts["VAE"].items() if k.startswith(("decoder.", "post_quant_conv."))}
        with sizes_from_weights("the condition encoder weights"):
            hint_encoder = encoder_only(build_vae({**decoder, **parts["condition encoder"]}, "condition encoder"))
        with sizes_from_weights("the ControlNet weights"):
            control_net = build_latent_hint_controlnet(parts["ControlNet"], hint_encoder, model.model.model_config)
        with sizes_from_weights("the text encoder weights"):
            clip = build_sd2_text_encoder(parts["text encoder"])
        upscale_model = build_upscale_model(parts["ESRGAN preprocessor"])
    except CheckpointError as e:
        e.args = (f"{name}: {e}",)  # in place: a size error keeps its cause for the log
        raise
    return DoSSRComponents(model, clip, vae, control_net, upscale_model)
