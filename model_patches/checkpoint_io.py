"""Reading released checkpoints safely, and saying clearly what is wrong with one.

Files are read with ComfyUI's loader in safe mode: safetensors, or torch.load(weights_only=True),
so a pickle that would run code is refused, never executed.
"""
import os

import torch

# Prefix -> what a file with keys under it is, for telling users what they gave us.
KNOWN_LAYOUTS = [
    ("control_model.", "a ControlNet (ControlLDM) checkpoint"),
    ("cond_encoder.", "a DiffBIR/DoSSR condition encoder"),
    ("preprocess_model.", "a DiffBIR/DoSSR ESRGAN preprocessor"),
    ("model.diffusion_model.", "a Stable Diffusion checkpoint (UNet)"),
    ("first_stage_model.", "a Stable Diffusion VAE"),
    ("cond_stage_model.", "a Stable Diffusion text encoder"),
    ("checkpoint_controlnet", "a TASR checkpoint"),
    ("state_dict_unet", "a TADSR LoRA checkpoint"),
    ("input_blocks.", "a bare UNet or ControlNet state dict"),
    ("conv_first.", "a bare ESRGAN/RRDBNet"),
    ("encoder.down.", "a bare VAE"),
    ("timeaware_sr.", "a TimeAwareSR starter model"),
]


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or not what the loader expects."""


def read_checkpoint(path: str) -> dict:
    """The file's tensors, with any `state_dict` wrapper and DataParallel `module.` prefix removed."""
    import comfy.utils

    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{name} is empty (0 bytes): the download or copy did not finish")
    try:
        sd = comfy.utils.load_torch_file(path, safe_load=True)
    except Exception as e:  # torch and safetensors raise many types for bad files
        text = str(e).split("\n")[0][:300]
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise CheckpointError(
                f"{name} contains pickled Python objects, not just tensors; it is refused because loading it "
                f"would run code. Convert it to .safetensors with a trusted tool. ({text})"
            ) from None
        raise CheckpointError(f"{name} is truncated, corrupt or not a checkpoint ({type(e).__name__}: {text})") from None
    if not isinstance(sd, dict):
        raise CheckpointError(f"{name} holds a {type(sd).__name__}, not a dictionary of weights")
    if sd and all(isinstance(k, str) and k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def describe(sd: dict) -> str:
    """A short human description of what a state dict looks like."""
    found = [what for prefix, what in KNOWN_LAYOUTS if any(isinstance(k, str) and k.startswith(prefix) for k in sd)]
    tensors = sum(isinstance(v, torch.Tensor) for v in sd.values())
    if found:
        return "it looks like " + " + ".join(found) + f" ({tensors} tensors)"
    return f"its {len(sd)} keys match no known layout (first keys: {sorted(map(str, sd))[:4]})"


def with_prefix(sd: dict, prefix: str) -> dict:
    """The entries under `prefix`, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def check_keys(component: str, module: torch.nn.Module, sd: dict, ignore=()):
    """Refuse a component whose weights do not match its network exactly, naming a few keys."""
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.startswith(tuple(ignore))}
    expected = set(shapes)
    given = {k for k in sd if not k.startswith(tuple(ignore))}
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        raise CheckpointError(f"the {component} weights do not match: " + "; ".join(parts))
    mismatched = sorted(k for k in expected if tuple(sd[k].shape) != shapes[k])
    if mismatched:
        k = mismatched[0]
        raise CheckpointError(f"the {component} weights have wrong shapes, e.g. {k}: {tuple(sd[k].shape)} in the file, "
                              f"{shapes[k]} expected")
