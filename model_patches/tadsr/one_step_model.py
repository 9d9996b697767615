"""TADSR's one-step UNet (docs/tadsr.md §5): TADSR's LoRA and trained conv_in as weight patches on a
clone of an SD 2.1-base MODEL."""
from ...clear_errors import CheckpointError
from ...samplers.tadsr_one_step import TADSR_ATTACHMENT
from .lora import unet_weight_patches


def sd21_base_problem(model) -> str | None:
    """Why a MODEL is not an SD 2.1-base-shaped eps UNet, or None."""
    import comfy.model_base

    base = model.model
    config = getattr(base.model_config, "unet_config", {})
    if not isinstance(base, comfy.model_base.BaseModel) or "context_dim" not in config:
        return f"it is a {type(base).__name__}, not an SD UNet"
    if config.get("adm_in_channels") is not None or config.get("num_classes") is not None:
        return "it is an SDXL-family UNet"
    if not config.get("use_linear_in_transformer", False):
        return f"it looks like SD 1.x (conv attention projections, {config['context_dim']}-wide text context)"
    if base.model_type != comfy.model_base.ModelType.EPS:
        return f"it predicts {base.model_type.name}, but SD 2.1-base predicts eps (the 768-v model is not supported)"
    return None


def tadsr_model(model, ckpt: "TADSRCheckpoint", strength: float = 1.0):
    """A clone of an SD 2.1-base MODEL with TADSR's UNet weights as weight patches scaled by strength
    (LoRA: W + strength * (alpha/r) * B @ A; conv_in: base + strength * (trained - base))."""
    import comfy.utils

    problem = sd21_base_problem(model)
    if problem is not None:
        raise CheckpointError(f"TADSR needs an SD 2.1-base MODEL (v2-1_512-ema-pruned); the MODEL input is not: {problem}")
    config = model.model.model_config.unet_config
    model_keys = {k: "diffusion_model." + v for k, v in comfy.utils.unet_to_diffusers(config).items()}
    hint = f" (context width {config['context_dim']})"
    full, lora = unet_weight_patches(ckpt.unet_lora, ckpt.rank_unet, ckpt.unet_full, model_keys,
                                     model.model.state_dict(), hint)
    m = model.clone()
    m.add_patches(full, strength)
    m.add_patches(lora, strength)
    m.set_attachments(TADSR_ATTACHMENT, True)  # TADSR One-Step refuses a model without it
    return m
