"""Errors users read: plain text that names what is wrong, the value and what is allowed.

The pack's error policy, everywhere (nodes, samplers, patches, loaders):
- `InputError` for anything the user fed a node: a value, an image, a latent, sigmas, a model or
  VAE wired to the wrong input. The message names the input and says what to connect or set.
- `CheckpointError` for a model file: missing, unreadable, unsafe, or not the layout expected. The
  message says what the file looks like and what it should hold; the loader node (nodes/pack_node.py)
  puts its own name and the file input's in front and shows no local path.
- `require_finite` / `require_finite_output` where an input tensor or a model's output may hold NaN
  or infinity; every sampler names the model at its first non-finite step.
Other exceptions are bugs of the pack. ComfyUI shows an exception's message and its class's full
name (module + class); the pack's modules are loaded under the install path, so the classes here
give themselves a short fixed module name instead.
"""
import re

import torch

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class InputError(ValueError):
    """A bad input, worded for the user."""

    __module__ = "TimeAwareSR"  # shown by ComfyUI instead of the install path


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or not what the loader expects. `file` is the file or
    folder it is about (a full path, never shown): the loader node names the input that chose it."""

    __module__ = "TimeAwareSR"

    def __init__(self, message: str, file: str | None = None):
        super().__init__(message)
        self.file = file


def plain(text: str) -> str:
    """Text without ANSI colour codes (torch colours some of its messages)."""
    return _ANSI.sub("", str(text))


def require_finite(x: torch.Tensor, what: str, hint: str = ""):
    """Raise InputError unless every value of x is finite; `what` names its source (e.g. "the
    output of the model StarterSRModel at step 3"), `hint` says what the user can do."""
    if x is None or torch.isfinite(x).all():
        return
    bad = x[~torch.isfinite(x)]
    kinds = [name for name, found in (("NaN", torch.isnan(bad).any()), ("+inf", (bad == float("inf")).any()),
                                      ("-inf", (bad == float("-inf")).any())) if found]
    raise InputError(f"{what} contains {' and '.join(kinds)} ({bad.numel()} of {x.numel()} values)"
                     + (f": {hint}" if hint else ""))


def require_finite_output(denoised: torch.Tensor, model, step: int, x: torch.Tensor | None = None):
    """For samplers: the model's estimate at a step must be finite. The error names the model
    (its ComfyUI config class, e.g. SD21 or StarterSRConfig), not the node that would meet the NaN."""
    if torch.isfinite(denoised).all():
        return
    base = getattr(getattr(model, "inner_model", None), "inner_model", None)
    config = getattr(base, "model_config", None)
    name = type(config).__name__ if config is not None else type(base or model).__name__
    largest = f"; the sampler's input reached |x| = {float(x.abs().max()):.3g}" if x is not None else ""
    require_finite(denoised, f"the output of the model ({name}) at step {step + 1}",
                   f"its weights may hold NaN or inf, or its input latent is far outside the usual range{largest}")
