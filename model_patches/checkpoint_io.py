"""Reading released checkpoints safely, and saying clearly what is wrong with one.

Files are read in safe mode, as ComfyUI's loader reads them: safetensors, or torch.load(weights_only=True)
(so a pickle that would run code is refused, never executed) with ComfyUI's unwrapping of a 'state_dict'
or single entry. Whatever a file holds, its loader's error says it in words: `read_checkpoint` refuses
content that is no dictionary (a list, a tensor, a number, None), `named_tensors` (every loader's shared
check) a dictionary without named tensors (empty, nested one level deeper, non-tensor values, numbered
keys), `sizes_from_weights` tensors of another rank than a network's sizes are read from. Errors carry
the file (`CheckpointError.file`); the loader node names its input (nodes/validation.py).
"""
import contextlib
import os
import re

import torch

from ..clear_errors import CheckpointError, InputError

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


def read_checkpoint(path: str, holds: str = "") -> dict:
    """The file's dictionary, with any `state_dict` wrapper and training-wrapper prefixes removed; a file
    that is not a dictionary (a list, a tensor, a number, ...) is refused in words, `holds` saying what it
    should hold. Every CheckpointError raised here carries the path as its `file`."""
    import comfy.utils

    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{name} was not found", file=path)
    problem = what_is_wrong_with(path)
    if problem:
        raise CheckpointError(problem, file=path)
    try:
        if name.lower().endswith(SAFETENSORS_EXTENSIONS):
            content = comfy.utils.load_torch_file(path, safe_load=True)
        else:
            content = load_pickle(path)
    except Exception as e:  # torch and safetensors raise many types for bad files
        raise CheckpointError(load_failure_message(name, path, e), file=path) from None
    content, where = unwrap(content)
    if not isinstance(content, dict):
        raise CheckpointError(f"{name} holds {what_it_is(content)}{where}, not a dictionary of named tensors"
                              + should_hold(holds), file=path)
    return strip_wrappers(content)


def load_pickle(path: str):
    """torch.load in safe mode (weights_only: tensors and plain data, never code), as ComfyUI's
    load_torch_file(safe_load=True) reads a PyTorch file, without its unwrapping (`unwrap`)."""
    import comfy.utils

    mmap = {"mmap": True} if getattr(comfy.utils, "MMAP_TORCH_FILES", False) else {}
    return torch.load(path, map_location="cpu", weights_only=True, **mmap)


def unwrap(content) -> tuple[object, str]:
    """ComfyUI's load_torch_file rule: a dictionary's 'state_dict' entry, or the one entry of a
    one-entry dictionary when that entry is a dictionary; and where it was, in words, for messages.
    Anything else (a list, a tensor, a number) is returned as it is, to be refused by name."""
    if isinstance(content, dict):
        if "state_dict" in content:
            return content["state_dict"], " under 'state_dict'"
        if len(content) == 1:
            (key, value), = content.items()
            if isinstance(value, dict):
                return value, f" under {str(key)!r}"
    return content, ""


def what_it_is(value) -> str:
    """A value read from a file, in words: 'a list of 3 items', 'a single tensor of shape (4, 4)', ..."""
    if isinstance(value, torch.Tensor):
        return f"a single tensor of shape {tuple(value.shape)}"
    if value is None:
        return "nothing (None)"
    if isinstance(value, bool):
        return f"the truth value {value}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes of raw data"
    kinds = {list: "a list", tuple: "a tuple", set: "a set", dict: "a dictionary"}
    for kind, words in kinds.items():
        if isinstance(value, kind):
            return f"{words} of {len(value)} item{'s' if len(value) != 1 else ''}"
    return f"a {type(value).__name__} value"


def should_hold(holds: str) -> str:
    return f". It should hold {holds}" if holds else ""


def named_tensors(content, subject: str, holds: str = "", file: str | None = None) -> dict:
    """The tensors of a dictionary of named tensors (entries that are not a named tensor are left out,
    as no loader reads them), or a CheckpointError in words saying what `subject` (e.g. 'model.pth',
    "tadsr.pkl: its state_dict_vae") holds instead and what it should hold: the shared check of every
    loader, before it reads any key."""
    if not isinstance(content, dict):
        problem = f"holds {what_it_is(content)}, not a dictionary of named tensors"
    else:
        tensors = {k: v for k, v in content.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
        nested = [k for k, v in content.items() if isinstance(v, dict)
                  and any(isinstance(x, (torch.Tensor, dict)) for x in v.values())]
        unnamed = [k for k, v in content.items() if not isinstance(k, str) and isinstance(v, torch.Tensor)]
        if not content:
            problem = "is an empty dictionary: it holds no tensors"
        elif nested:
            problem = (f"holds no tensors at its top level: they are nested one level deeper, under "
                       f"{', '.join(repr(str(k)) for k in nested[:4])}")
        elif unnamed:
            problem = (f"holds tensors without names: its keys are {', '.join(what_it_is(k) for k in unnamed[:3])}, "
                       f"not weight names")
        else:
            shown = "; ".join(f"{str(k)!r} is {what_it_is(v)}" for k, v in list(content.items())[:3])
            problem = f"holds no tensors ({shown}{'; ...' if len(content) > 3 else ''})"
    raise CheckpointError(f"{subject} {problem}{should_hold(holds)}", file=file)


def read_weights(path: str, holds: str) -> dict:
    """read_checkpoint, then named_tensors: the file's named tensors, or why the file has none."""
    return named_tensors(read_checkpoint(path, holds), os.path.basename(path), holds, file=path)


@contextlib.contextmanager
def about_file(path: str):
    """CheckpointErrors raised inside without a file are about `path` (for the node to name its input)."""
    try:
        yield
    except CheckpointError as e:
        if e.file is None:
            e.file = path
        raise


@contextlib.contextmanager
def sizes_from_weights(subject: str):
    """Reading a network's sizes off its weights: a missing key, or a tensor of another rank or size than
    the layout has (the index and arithmetic errors that gives), becomes a CheckpointError in words."""
    try:
        yield
    except (CheckpointError, InputError):
        raise
    except KeyError as e:
        raise CheckpointError(f"{subject} are incomplete: no {e.args[0] if e.args else 'expected key'}") from e
    except (IndexError, ValueError, TypeError, ZeroDivisionError, AttributeError) as e:
        raise CheckpointError(f"{subject} do not have the expected layout: some tensor has another number of "
                              f"dimensions or another size than that layout gives it") from e


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
    return f"{name} is corrupt or not a checkpoint: PyTorch cannot read it ({first_line})"


def describe(sd: dict) -> str:
    """A short human description of what a state dict looks like."""
    if not sd:
        return "it is an empty dictionary (no tensors)"
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
