"""Input checks for the pack's nodes, derived from each node's own schema (the one definition of
every range, option list and input kind); nodes/pack_node.py runs them.

ComfyUI 0.3.75 does not check V3 combo values, and it skips its own min/max checks for every
input a node's `validate_inputs(**values)` takes, so the checks are made here: at queue time on the
widget values, and when the node runs on every value. An input fed by a link reaches
validate_inputs without a value (None) and is skipped there; at run time it is known and gets
exactly the same checks, so a linked value can never pass where a widget value would not.
Messages name the node, the input, the value given and what is allowed.
"""
import math
import numbers
import os

from ..clear_errors import InputError

SOCKET_KINDS = {  # io type -> (how to recognise a value, what to connect)
    "IMAGE": (lambda v: _is_tensor(v) and v.ndim == 4, "an IMAGE (batch × height × width × channels)"),
    "MASK": (lambda v: _is_tensor(v) and v.ndim in (2, 3), "a MASK"),
    "LATENT": (lambda v: isinstance(v, dict) and _is_tensor(v.get("samples")), "a LATENT"),
    "SIGMAS": (lambda v: _is_tensor(v) and v.ndim == 1, "SIGMAS (a 1-D list of noise levels)"),
    "MODEL": (lambda v: hasattr(v, "get_model_object"), "a MODEL"),
    "VAE": (lambda v: hasattr(v, "decode") and hasattr(v, "encode"), "a VAE"),
    "CLIP": (lambda v: hasattr(v, "tokenize"), "a CLIP text encoder"),
    "CONDITIONING": (lambda v: isinstance(v, list), "CONDITIONING"),
    "SAMPLER": (lambda v: hasattr(v, "sample"), "a SAMPLER"),
    "CONTROL_NET": (lambda v: hasattr(v, "get_control"), "a CONTROL_NET"),
    "UPSCALE_MODEL": (lambda v: hasattr(v, "scale"), "an UPSCALE_MODEL"),
}
WIDGET_KINDS = {"INT", "FLOAT", "BOOLEAN", "STRING", "COMBO"}  # a null for these is never "not connected"
FINITE_TENSORS = {"IMAGE", "MASK"}  # checked for NaN / inf when the node runs


def _is_tensor(v) -> bool:
    import torch

    return isinstance(v, torch.Tensor)


def _shown(value) -> str:
    """The value as the user would recognise it, short (a tensor by its shape, a huge number cut)."""
    if _is_tensor(value):
        return f"a tensor of shape {tuple(value.shape)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number_range(spec) -> str:
    low = "" if spec.min is None else f"at least {spec.min:g}"
    high = "" if spec.max is None else f"at most {spec.max:g}"
    return " and ".join(p for p in (low, high) if p)


def check_value(spec, value) -> str | None:
    """What is wrong with one known value of one schema input, or None."""
    kind = str(spec.get_io_type())
    name = spec.id
    if kind in ("INT", "FLOAT"):
        whole = kind == "INT"
        is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value) or (whole and float(value) != int(value)):
            what = "a whole number" if whole else "a finite number"
            return f"{name} must be {what} ({_number_range(spec)}), got {_shown(value)}"
        if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
            return f"{name} must be {_number_range(spec)}, got {_shown(value)}"
        return None
    if kind == "BOOLEAN":
        return None if isinstance(value, bool) else f"{name} must be true or false, got {_shown(value)}"
    if kind == "STRING":
        return None if isinstance(value, str) else f"{name} must be text, got {_shown(value)}"
    if kind == "COMBO":
        options = list(spec.options or [])
        if value in options:
            return None
        shown = options if len(options) <= 10 else options[:10] + [f"... ({len(options)} in all)"]
        return f"{name} must be one of {shown}, got {_shown(value)}"
    if kind in SOCKET_KINDS:
        recognise, what = SOCKET_KINDS[kind]
        if not recognise(value):
            return f"{name} must be connected to {what}, got {_shown(value)}"
        if kind in FINITE_TENSORS and not _finite(value):
            return (f"{name} contains NaN or infinite values: the node that made it (often a sampler or "
                    f"VAE Decode) produced them")
    elif isinstance(value, (numbers.Number, str, list, dict)):  # a pack's own socket type: never a JSON literal
        return f"{name} must be connected to a {kind} output, got {_shown(value)}"
    return None


def _finite(tensor) -> bool:
    import torch

    return bool(torch.isfinite(tensor).all())


def check_inputs(node_cls, values: dict, at_run: bool = False) -> bool | str:
    """True, or the first problem as "<node>: <input> must be ..., got ...". Values of None are
    linked (skipped) at queue time; at run time a None for a required input is an error. Inputs
    named in the node's `model_files` are checked against their folder; then `node_cls.rule(known)`
    checks what lies between inputs: it sees None for linked values not known yet, and no key for
    an optional input left unconnected."""
    schema = node_cls.define_schema()
    model_files = getattr(node_cls, "model_files", {})
    known = {}
    for spec in schema.inputs:
        if spec.id not in values:
            continue
        value = values[spec.id]
        if value is None:
            if at_run and (not spec.optional or str(spec.get_io_type()) in WIDGET_KINDS):
                return f"{schema.display_name}: {spec.id} got no value (null); it needs one"
            if not at_run:  # linked: present but not known yet (an unconnected optional input is absent)
                known[spec.id] = None
            continue
        if spec.id in model_files:
            problem = model_file(spec.id, *model_files[spec.id], value)
            problem = None if problem is True else problem
        else:
            problem = check_value(spec, value)
        if problem:
            return f"{schema.display_name}: {problem}"
        known[spec.id] = value
    rule = getattr(node_cls, "rule", None)
    problem = rule(known) if rule is not None else True
    if problem is not True and problem is not None:
        return f"{schema.display_name}: {problem}"
    return True


def require_valid_inputs(node_cls, values: dict):
    """Run-time check of every input (names not in the schema are ignored)."""
    raise_unless_valid(check_inputs(node_cls, values, at_run=True))


def raise_unless_valid(result: bool | str):
    if result is not True:
        raise InputError(result)


def model_file(name: str, folder: str, hint: str, value) -> bool | str:
    """The model file must be in one of the folder's configured paths (as they are now, not when the
    schema was built). The message names the folder as models/<folder>, not the user's local paths."""
    import folder_paths

    present = folder_paths.get_filename_list(folder)
    if value in present:
        return True
    where = f"models/{folder}/ (or the {folder} paths of extra_model_paths.yaml)"
    if not present:  # a new install: say what goes there, not only that the value is missing
        return f"{name}: {where} is empty or missing. " + (f"{hint[0].upper()}{hint[1:]}." if hint else "")
    return f"{name} {_shown(value)} is not in {where}" + (f" ({hint})" if hint else "")


def tss_ranges_rule(a_min, a_max, n_min, n_max, a_limit) -> bool | str:
    """The rule between a TSS node's per-pixel schedule ranges: a_min <= a_max < a_limit (None: no
    limit) and n_min <= n_max; None (a value not known yet) is skipped. Each bound alone is the schema's."""
    a_known = [a for a in (a_min, a_max) if a is not None]
    if (len(a_known) == 2 and a_min > a_max) or (a_limit is not None and any(a >= a_limit for a in a_known)):
        return (f"a_min and a_max must satisfy 0 < a_min <= a_max < {a_limit or 'T'}, got a_min {a_min}, "
                f"a_max {a_max}")
    if None not in (n_min, n_max) and n_min > n_max:
        return f"n_min and n_max must satisfy 1 <= n_min <= n_max <= 10, got n_min {n_min}, n_max {n_max}"
    return True


def word_checkpoint_error(node_cls, values: dict, error) -> None:
    """Put the node's name and the file input's name and value in front of a CheckpointError raised
    while the node ran (in place, once), and replace any local path in it by models/<folder>/.

    The input is the one whose file (or folder) the error is about (`error.file`, set by
    model_patches/checkpoint_io.py), else the node's only file input; a message that starts with the
    file's name is continued from the input ("ckpt_name 'x.pth' holds a list ..."). An error about no
    file (a preset, a MODEL input) gets the node's name only: its message names its input itself."""
    if getattr(error, "worded", False):
        return
    files = node_cls.file_inputs(values)
    named = None
    if error.file is not None:
        named = next((name for name, path in files.items() if _same_or_inside(error.file, path)), None)
    elif len(files) == 1:
        named = next(iter(files))
    message = str(error)
    if named is not None:
        shown = f"{named} {_shown(values[named])}"
        base = os.path.basename(os.path.normpath(files[named]))
        if message.startswith(base) and message[len(base):len(base) + 1] in (" ", ":"):
            message = shown + message[len(base):]
        else:
            message = f"{shown}: {message}"
    message = _without_paths(message, node_cls, error.file)
    error.args = (f"{node_cls.define_schema().display_name}: {message}",)
    error.worded = True


def _same_or_inside(path: str, root: str) -> bool:
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _without_paths(message: str, node_cls, file) -> str:
    """Local paths in a message as models/<folder>/... (the node's model folders) or the file's name."""
    import folder_paths

    folders = {folder for folder, _hint in getattr(node_cls, "model_files", {}).values()}
    folders |= set(getattr(node_cls, "model_folders", ()))
    roots = [(root, folder) for folder in folders for root in folder_paths.get_folder_paths(folder)]
    for root, folder in sorted(roots, key=lambda r: -len(r[0])):  # the longest first: nested roots
        for form in {root, os.path.realpath(root)}:
            message = message.replace(form.rstrip(os.sep) + os.sep, f"models/{folder}/")
            message = message.replace(form, f"models/{folder}")
    if file is not None:
        message = message.replace(file, os.path.basename(file))
    return message
