"""Per-pixel timesteps for SD-family UNets (TSS Spatial Dynamic Sampling, docs/tss.md §2.5).

A sampler puts a per-pixel sigma map S (B×1×h×w, ComfyUI's VE sigmas) in
transformer_options["tss_sigma_map"] and calls the model with an ordinary scalar sigma s, so
CFG, ControlNet timestep ranges, hooks and previews keep seeing a valid sigma. On a clone:

- APPLY_MODEL wrapper: feeds the UNet x / sqrt(S^2 + 1) per pixel (by handing ComfyUI
  x sqrt(s^2 + 1) / sqrt(S^2 + 1)), and forms x0 per pixel from the UNet's eps or v output. Both
  conversions are linear in the model output, so they commute with CFG.
- DIFFUSION_MODEL wrapper: turns the per-pixel timesteps into an embedding map, evaluating the time
  MLP only on the distinct timesteps, plus SDXL's label embedding per pixel.
- Object patches on every ResBlock: with a map active, the block adds the map, resized to its
  resolution, where it used to add the broadcast vector. Without a map the clone computes exactly
  what the original does.
- OUTER_SAMPLE wrapper: for this sampling run only, each ControlNet in the conditioning is replaced
  by a copy whose patcher is a clone with the same ResBlock patches, and whose get_control scales its
  input per pixel and builds the embedding map from the ControlNet's own time MLP. The conds are the
  guider's per-run copies, so nothing outside the run changes.
"""
import contextlib
import contextvars

import torch
import torch.nn.functional as F

from ...clear_errors import InputError
from ...samplers.ddpm import PIXEL_TIMESTEP_WRAPPER_KEY as WRAPPER_KEY
from ...samplers.ddpm import SIGMA_MAP_KEY  # filled by the per-pixel samplers (samplers/pixel_schedule.py)

_active = contextvars.ContextVar("timeaware_sr_spatial_timestep", default=None)


class SpatialEmbLayers(torch.nn.Sequential):
    """A ResBlock's emb_layers (same children, so weight keys and LoRA patches are unchanged) that
    also accepts a channel-last per-pixel embedding B×H×W×C and returns B×C'×H×W."""

    def forward(self, emb):
        out = super().forward(emb)
        return out.movedim(-1, 1) if emb.ndim == 4 else out


def _resblock_forward(block):
    original = block.forward

    def forward(x, emb, *args, **kwargs):
        state = _active.get()
        if state is None or "emb_map" not in state:
            return original(x, emb, *args, **kwargs)
        return original(x, state_emb_at(state, x.shape[-2:]), *args, **kwargs)

    return forward


def state_emb_at(state, size):
    """The embedding map at a feature resolution, channel-last; area-averaged, cached per size."""
    cache = state.setdefault("sizes", {})
    size = tuple(size)
    if size not in cache:
        emb = state["emb_map"]
        if tuple(emb.shape[-2:]) != size:
            emb = F.interpolate(emb, size=size, mode="area") if emb.shape[-1] >= size[-1] else \
                F.interpolate(emb, size=size, mode="nearest")
        cache[size] = emb.movedim(1, -1)
    return cache[size]


def active_embedding_at(size):
    """The per-pixel time embedding map at a feature resolution (size = (h, w)) while a TSS per-pixel
    map is in use in this model call, else None: what other per-block patches (TASR's adapters) take
    in place of the broadcast embedding."""
    state = _active.get()
    if state is None or "emb_map" not in state:
        return None
    return state_emb_at(state, size)


def resblock_paths(diffusion_model) -> list[str]:
    from comfy.ldm.modules.diffusionmodules.openaimodel import ResBlock

    return [name for name, module in diffusion_model.named_modules() if isinstance(module, ResBlock)]


def timestep_map(model_sampling, sigma_map: torch.Tensor) -> torch.Tensor:
    """The model's own (integer) timestep for every pixel's sigma, as ComfyUI computes it for scalars."""
    flat = sigma_map.reshape(-1)
    return model_sampling.timestep(flat).reshape(sigma_map.shape)


def embedding_map(unet, t_map: torch.Tensor, y=None, dtype=torch.float32) -> torch.Tensor:
    """B×C×h×w time embedding, with the time MLP run once per distinct timestep."""
    from comfy.ldm.modules.diffusionmodules.util import timestep_embedding

    values, inverse = torch.unique(t_map.reshape(-1), return_inverse=True)
    emb = unet.time_embed(timestep_embedding(values, unet.model_channels, repeat_only=False).to(dtype))
    emb = emb[inverse].reshape(t_map.shape[0], *t_map.shape[2:], -1).movedim(-1, 1)
    if getattr(unet, "num_classes", None) is not None and y is not None:
        emb = emb + unet.label_emb(y)[:, :, None, None]
    return emb


def _batched_map(sigma_map, x):
    """Repeat the per-image map for each cond/uncond chunk ComfyUI batched together."""
    if sigma_map.shape[-2:] != x.shape[-2:]:
        raise InputError(f"the TSS sigma map is {tuple(sigma_map.shape[-2:])} but the latent is {tuple(x.shape[-2:])} "
                         f"(area conditioning is not supported with per-pixel timesteps)")
    repeats = x.shape[0] // sigma_map.shape[0]
    if repeats * sigma_map.shape[0] != x.shape[0]:
        raise InputError(f"the TSS sigma map has batch {sigma_map.shape[0]}, which does not divide the model batch {x.shape[0]}")
    return sigma_map.repeat(repeats, 1, 1, 1).to(device=x.device, dtype=torch.float32)


def per_pixel_input(sigma_map, x, t):
    """(s, S, x_in): the scalar sigma ComfyUI uses, the per-pixel sigma map in the model batch, and
    the input to hand ComfyUI so that its own division by sqrt(s^2 + 1) leaves x / sqrt(S^2 + 1)."""
    s = t.reshape(-1, 1, 1, 1).float()
    S = _batched_map(sigma_map, x)
    return s, S, x * ((s * s + 1) / (S * S + 1)).sqrt()


@contextlib.contextmanager
def _active_state(state):
    """What the patched ResBlocks read during one model call."""
    token = _active.set(state)
    try:
        yield
    finally:
        _active.reset(token)


def _apply_model_wrapper(executor, x, t, *args, **kwargs):
    transformer_options = args[3] if len(args) > 3 else kwargs.get("transformer_options", {})
    sigma_map = transformer_options.get(SIGMA_MAP_KEY)
    if sigma_map is None:
        return executor(x, t, *args, **kwargs)
    base_model = executor.class_obj
    s, S, x_in = per_pixel_input(sigma_map, x, t)
    with _active_state({"t_map": timestep_map(base_model.model_sampling, S).float()}):
        d_ref = executor(x_in, t, *args, **kwargs)
    if getattr(base_model, "predicts_x0", False):
        return d_ref  # an x0-predictor's output needs no per-pixel re-forming
    return per_pixel_denoised(base_model.model_type, x, x_in, d_ref, s, S)


def per_pixel_denoised(model_type, x, x_in, d_ref, s, S):
    """ComfyUI formed d_ref = D(x_in; s) with one sigma; recover the raw output, then form D per pixel."""
    import comfy.model_base

    if model_type == comfy.model_base.ModelType.EPS:
        eps = (x_in - d_ref) / s
        return x - S * eps
    if model_type == comfy.model_base.ModelType.V_PREDICTION:
        v = (x_in / (s * s + 1) - d_ref) * (s * s + 1).sqrt() / s
        return x / (S * S + 1) - v * S / (S * S + 1).sqrt()
    raise InputError(f"per-pixel timesteps support eps and v-prediction models, not {model_type}")


def _diffusion_model_wrapper(executor, x, timesteps, context, y, control, transformer_options, **kwargs):
    state = _active.get()
    if state is not None and "t_map" in state:
        state["emb_map"] = embedding_map(executor.class_obj, state["t_map"], y, dtype=x.dtype)
    return executor(x, timesteps, context, y, control, transformer_options, **kwargs)


def _patch_resblocks(patcher, network, prefix=""):
    for path in resblock_paths(network):
        block = network.get_submodule(path)
        patcher.add_object_patch(f"{prefix}{path}.forward", _resblock_forward(block))
        patcher.add_object_patch(f"{prefix}{path}.emb_layers", SpatialEmbLayers(*block.emb_layers))


def spatial_control(control):
    """A per-run copy of a ControlNet (and its chain) that runs with per-pixel timesteps."""
    import comfy.controlnet

    if control is None or not isinstance(control, comfy.controlnet.ControlNet) or control.control_model is None:
        return control  # T2I adapters, control LoRAs: left as they are (scalar timestep)
    copy = control.copy()
    copy.set_previous_controlnet(spatial_control(control.previous_controlnet))
    network = control.control_model
    copy.control_model_wrapped = control.control_model_wrapped.clone()
    _patch_resblocks(copy.control_model_wrapped, network)
    scalar_get_control = copy.get_control

    def get_control(x_noisy, t, cond, batched_number, transformer_options):
        sigma_map = transformer_options.get(SIGMA_MAP_KEY)
        if sigma_map is None:
            return scalar_get_control(x_noisy, t, cond, batched_number, transformer_options)
        _, S, x_in = per_pixel_input(sigma_map, x_noisy, t)
        t_map = timestep_map(copy.model_sampling_current, S).float()
        with _active_state({"emb_map": embedding_map(network, t_map, cond.get("y"), dtype=network.dtype)}):
            return scalar_get_control(x_in, t, cond, batched_number, transformer_options)

    copy.get_control = get_control
    return copy


def _outer_sample_wrapper(executor, *args, **kwargs):
    for conds in executor.class_obj.conds.values():
        for cond in conds:
            if cond.get("control") is not None:
                cond["control"] = spatial_control(cond["control"])
    return executor(*args, **kwargs)


def patch_spatial_timesteps(model):
    """MODEL -> a clone that accepts a per-pixel sigma map; refuses non-UNet models."""
    import comfy.model_base
    import comfy.patcher_extension
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = model.get_model_object("diffusion_model")
    if not isinstance(unet, UNetModel):
        family = type(getattr(getattr(model, "model", None), "model_config", None)).__name__
        raise InputError(f"model: per-pixel timesteps need an SD1.x/SD2.x/SDXL UNet model; this MODEL is {family} "
                         f"(network {type(unet).__name__})")
    if model.model.model_type not in (comfy.model_base.ModelType.EPS, comfy.model_base.ModelType.V_PREDICTION):
        raise InputError(f"per-pixel timesteps support eps and v-prediction models, not {model.model.model_type.name}")
    m = model.clone()
    if WRAPPER_KEY in m.wrappers.get(comfy.patcher_extension.WrappersMP.APPLY_MODEL, {}):
        return m  # already patched
    _patch_resblocks(m, unet, "diffusion_model.")
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, _outer_sample_wrapper)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY, _apply_model_wrapper)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY, _diffusion_model_wrapper)
    return m
