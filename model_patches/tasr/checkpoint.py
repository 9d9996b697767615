"""TASR's `tasr_v1.pth` (docs/tasr.md §4) -> a CONTROL_NET and the TASR adapters.

The official file is torch.save({"checkpoint_controlnet": {...}, "checkpoint_adapter": {...}}): the
DiffBIR-style latent-concat ControlNet and the 13 adapters; the SD 2.1-base model comes separately.
A .safetensors copy holds the same tensors flattened, as `checkpoint_controlnet.<key>` and
`checkpoint_adapter.<key>`. Either part may carry a DataParallel `module.` prefix.
"""
import os
from typing import NamedTuple

from ...clear_errors import CheckpointError, InputError
from ..checkpoint_io import (about_file, check_keys, describe, named_tensors, read_checkpoint, sizes_from_weights,
                             strip_wrappers, with_prefix)
from ..latent_hint_controlnet import LatentHintControlNet, build_latent_hint_controlnet
from .adapters import ADAPTER_COUNT, TASRAdapters, adapter_channels, adapter_layout

CONTROLNET, ADAPTERS = "checkpoint_controlnet", "checkpoint_adapter"
HOLDS = (f"TASR's tasr_v1.pth: a dictionary with '{CONTROLNET}' (the ControlNet's tensors) and '{ADAPTERS}' (the 13 "
         f"adapters' tensors), or a .safetensors copy with the same tensors named {CONTROLNET}.* and {ADAPTERS}.*")


class SDVAEHintControlNet(LatentHintControlNet):
    """The latent-concat ControlNet whose hint is encoded by the SD VAE that the apply node passes
    (TASR: c_img = VAE mode x 0.18215), not by an encoder of its own."""

    def set_cond_hint(self, cond_hint, strength=1.0, timestep_percent_range=(0.0, 1.0), vae=None, extra_concat=[]):
        import comfy.controlnet

        if vae is None:
            raise InputError("vae: the TASR ControlNet encodes its hint image with the SD 2.1 VAE; connect the VAE "
                             "to the 'vae' input of Apply ControlNet")
        return comfy.controlnet.ControlNet.set_cond_hint(self, cond_hint, strength, timestep_percent_range, vae=vae,
                                                         extra_concat=extra_concat)


class TASRComponents(NamedTuple):
    control_net: object  # SDVAEHintControlNet
    adapters: object  # ModelPatcher around TASRAdapters


def split_tasr_state_dict(sd: dict, name: str = "checkpoint") -> tuple[dict, dict]:
    """(ControlNet weights, adapter weights) of a TASR checkpoint, or a clear error saying what is wrong."""
    if sd.get(CONTROLNET) is not None or sd.get(ADAPTERS) is not None:  # the official nested layout
        control, adapters = ({} if sd.get(part) is None else named_tensors(sd[part], f"{name}: its '{part}'", HOLDS)
                             for part in (CONTROLNET, ADAPTERS))
    else:
        sd = named_tensors(sd, name, HOLDS)
        control, adapters = with_prefix(sd, CONTROLNET + "."), with_prefix(sd, ADAPTERS + ".")
    control, adapters = strip_wrappers(control), strip_wrappers(adapters)
    bare_controlnet = "input_blocks.0.0.weight" in sd and "zero_convs.0.0.weight" in sd
    if bare_controlnet or (control and not adapters):
        raise CheckpointError(
            f"{name} holds a ControlNet but no TASR adapters (no '{ADAPTERS}' part): TASR needs both. The official "
            f"tasr_v1.pth is a dict with '{CONTROLNET}' and '{ADAPTERS}'; a plain DiffBIR ControlNet is not enough")
    if not control and not adapters:
        raise CheckpointError(
            f"{name} is not a TASR checkpoint: {describe(sd)}. It should hold {HOLDS}")
    if not control:
        raise CheckpointError(f"{name} holds TASR adapters but no ControlNet (no '{CONTROLNET}' part); it may be a "
                              f"partial export")
    return control, adapters


def controlled_model_config(control_sd: dict):
    """The config of the SD model this ControlNet steers, matched against ComfyUI's list of released
    models as ComfyUI's own ControlNet loader does; it gives the attention heads, which carry no weights."""
    import comfy.model_detection

    config = comfy.model_detection.detect_unet_config(control_sd, "")
    model_config = comfy.model_detection.model_config_from_unet_config(config, control_sd) if config else None
    if model_config is None:
        raise CheckpointError(f"the ControlNet fits no SD model ComfyUI knows (model_channels "
                              f"{(config or {}).get('model_channels')}, context_dim {(config or {}).get('context_dim')}); "
                              f"TASR's ControlNet is SD 2.1-base's")
    return model_config


def build_adapters(adapter_sd: dict, control_model, device=None, dtype=None, operations=None):
    """TASRAdapters from official weights, checked against the channel layout the ControlNet's UNet has."""
    import comfy.ops

    with sizes_from_weights("the TASR adapter weights"):
        channels, emb_channels = adapter_layout(adapter_sd)
    expected = adapter_channels(control_model.model_channels, control_model.channel_mult, control_model.num_res_blocks)
    emb_expected = control_model.time_embed[-1].weight.shape[0]
    if channels != expected or emb_channels != emb_expected:
        raise CheckpointError(
            f"the TASR adapters have another channel layout than the ControlNet beside them: {len(channels)} adapters "
            f"with input channels {channels} and a {emb_channels}-wide time embedding; a UNet like this ControlNet "
            f"needs {ADAPTER_COUNT} with {expected} and {emb_expected}")
    adapters = TASRAdapters(channels, emb_channels, dtype=dtype, device=device,
                            operations=operations or comfy.ops.disable_weight_init)
    check_keys("TASR adapters", adapters, adapter_sd)
    adapters.load_state_dict(adapter_sd)
    return adapters


def load_tasr(path: str) -> TASRComponents:
    name = os.path.basename(path)
    with about_file(path):
        return build_tasr(*split_tasr_state_dict(read_checkpoint(path, HOLDS), name), name)


def build_tasr(control_sd: dict, adapter_sd: dict, name: str) -> TASRComponents:
    import comfy.model_management as mm
    import comfy.model_patcher

    try:
        if "input_blocks.0.0.weight" not in control_sd:
            raise CheckpointError(f"the ControlNet weights are incomplete: no input_blocks.0.0.weight ({describe(control_sd)})")
        with sizes_from_weights("the ControlNet weights"):
            loaded = build_latent_hint_controlnet(control_sd, None, controlled_model_config(control_sd))
        control_net = SDVAEHintControlNet(loaded.control_model, None, loaded.load_device, loaded.manual_cast_dtype)
        with sizes_from_weights("the TASR adapter weights"):
            adapters = build_adapters(adapter_sd, loaded.control_model, dtype=loaded.control_model.dtype,
                                      operations=_operations(loaded.manual_cast_dtype))
    except CheckpointError as e:
        e.args = (f"{name}: {e}",)  # in place: a size error keeps its cause for the log
        raise
    patcher = comfy.model_patcher.ModelPatcher(adapters, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())
    return TASRComponents(control_net, patcher)


def _operations(manual_cast_dtype):
    import comfy.ops

    return comfy.ops.disable_weight_init if manual_cast_dtype is None else comfy.ops.manual_cast
