"""Reading released checkpoints safely, and saying clearly what is wrong with one.

Files are read with ComfyUI's loader in safe mode: safetensors, or torch.load(weights_only=True),
so a pickle that would run code is refused, never executed.
"""
import os
import re

import torch

from ..clear_errors import CheckpointError

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


WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DistributedDataParallel, torch.compile


def strip_wrappers(sd: dict) -> dict:
    """The keys without the prefixes that training wrappers put on every key (each one, if all keys have it)."""
    for prefix in WRAPPER_PREFIXES:
        if sd and all(isinstance(k, str) and k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def read_checkpoint(path: str) -> dict:
    """The file's tensors, with any `state_dict` wrapper and training-wrapper prefixes removed."""
    import comfy.utils

    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    problem = what_is_wrong_with(path)
    if problem:
        raise CheckpointError(problem)
    try:
        sd = comfy.utils.load_torch_file(path, safe_load=True)
    except Exception as e:  # torch and safetensors raise many types for bad files
        raise CheckpointError(load_failure_message(name, path, e)) from None
    if not isinstance(sd, dict):
        raise CheckpointError(f"{name} holds a {type(sd).__name__}, not a dictionary of weights")
    return strip_wrappers(sd)


SAFETENSORS_EXTENSIONS = (".safetensors", ".sft")
LFS_POINTER = b"version https://git-lfs"
ZIP_START, ZIP_END = b"PK\x03\x04", b"PK\x05\x06"


def what_is_wrong_with(path: str) -> str | None:
    """What a file that cannot be a checkpoint is (empty, a Git LFS pointer, an HTML page, text, a
    truncated safetensors or zip, random bytes), from its bytes alone; None if it may be one."""
    name = os.path.basename(path)
    size = os.path.getsize(path)
    if size == 0:
        return f"{name} is empty (0 bytes): the download or copy did not finish; download it again"
    with open(path, "rb") as f:
        head = f.read(1024)
    if head.startswith(LFS_POINTER):
        return (f"{name} is a Git LFS pointer ({size} bytes of text that stand for the real file), not the weights: "
                f"run `git lfs pull` in the repository you cloned, or download the file itself")
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")):
        return (f"{name} is an HTML page, not a checkpoint: the download went wrong (an error, login or "
                f"confirmation page was saved instead); download the file again from its release page")
    safetensors_name = name.lower().endswith(SAFETENSORS_EXTENSIONS)
    if head.startswith(ZIP_START):
        if safetensors_name:
            return f"{name} is a PyTorch checkpoint (zip), not safetensors: rename it to .ckpt or .pth"
        return _truncated_zip(path, name, size)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):  # a pickle's PROTO opcode
        if safetensors_name:
            return f"{name} is a PyTorch (pickle) checkpoint, not safetensors: rename it to .ckpt or .pth"
        return None  # legacy torch.save format: torch.load tells truncation apart (load_failure_message)
    header = _safetensors_header(head, size)
    if header is not None or safetensors_name:
        return _truncated_safetensors(path, name, size)
    if _is_text(head):
        return f"{name} is a text file, not a checkpoint (it starts with {head[:40].decode(errors='replace')!r})"
    return (f"{name} is not a checkpoint: it is neither safetensors, a PyTorch zip archive nor a pickle "
            f"(it starts with bytes {head[:8].hex(' ')})")


def _is_text(head: bytes) -> bool:
    """Mostly printable ASCII (a README, JSON or error message saved under a model's name)."""
    return sum(32 <= b < 127 or b in (9, 10, 13) for b in head) > 0.95 * len(head)


def _safetensors_header(head: bytes, size: int) -> int | None:
    """The JSON header length, if the first bytes look like a safetensors file's."""
    if len(head) < 9:
        return None
    n = int.from_bytes(head[:8], "little")
    return n if 2 <= n < 100_000_000 and head[8:9] == b"{" else None


def _truncated_safetensors(path: str, name: str, size: int) -> str | None:
    import json

    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if size < 8 or not 2 <= n < 100_000_000:
            return f"{name} is not a valid safetensors file: its first 8 bytes do not give a header length"
        if 8 + n > size:
            return (f"{name} is a truncated safetensors file: its header alone needs {8 + n} bytes, the file has "
                    f"{size}; download it again")
        try:
            header = json.loads(f.read(n))
        except ValueError:
            return f"{name} is not a valid safetensors file: its header is not readable JSON"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
            and "data_offsets" in v]
    expected = 8 + n + max(ends, default=0)
    if size < expected:
        return (f"{name} is a truncated safetensors file: it has {size} bytes, its header describes {expected}; "
                f"download it again")
    return None


def _truncated_zip(path: str, name: str, size: int) -> str | None:
    with open(path, "rb") as f:
        f.seek(max(0, size - 65_536 - 22))  # the end record sits in the last 64 KiB + 22 bytes
        tail = f.read()
    if ZIP_END not in tail:
        return (f"{name} is a truncated PyTorch checkpoint (a zip archive without its end); download it again")
    return None


def load_failure_message(name: str, path: str, error: Exception) -> str:
    """Why ComfyUI's safe loader refused a file, in plain words, without local paths or colour codes."""
    from ..clear_errors import plain

    text = plain(error).replace(path, name)
    if "weights_only" in text or "Unsupported global" in text:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        example = f" (e.g. {found.group(1)})" if found else ""
        return (f"{name} contains pickled Python objects{example}, not just tensors; it is refused because loading "
                f"it would run code. Convert it to .safetensors with a trusted tool")
    if isinstance(error, EOFError) or any(
            sign in text for sign in ("truncated", "Ran out of input", "central directory", "unexpected EOF")):
        return f"{name} is a truncated checkpoint: it ends before its data does; download it again"
    first_line = text.strip().split("\n")[0][:200]
    return f"{name} is corrupt or not a checkpoint ({type(error).__name__}: {first_line})"


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
