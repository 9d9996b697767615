"""A CPU stand-in for a GPU when checking where the pack's sampling creates and moves tensors.

On a CPU-only machine every tensor is on the CPU, so "made on the wrong device" cannot be seen from
`tensor.device`. DeviceSentinel (a TorchFunctionMode) follows where each tensor WOULD be on a GPU
machine instead:

- "host" tensors: made by a factory without `device=` (torch.tensor, zeros, arange ...), or by
  `.cpu()` / `.to("cpu")`, and everything computed from host tensors only;
- "device" tensors: everything else (the latent, the sigmas, the model's weights, tensors made with
  `device=` or `*_like`), and whatever `.to(<device or tensor>)` returns.

While the per-step path runs (from `start_steps()`: the first network call, or the sampler's start
for one-step methods), an op called from the pack's own code (samplers/, model_patches/, nodes/,
image_ops/) is a violation when it
- makes a tensor without `device=` (on a GPU machine it would be made on the CPU),
- moves a host tensor to the device (a host-to-device copy every step), or copies a device tensor
  of more than one element to the host,
- mixes a host tensor of more than one element with device tensors (a device error on a GPU),
- gives a float64 tensor (MPS has no float64, and the per-step path works in the latent's dtype).

Outside the per-step path the pack may form its schedules in float64, but on the CPU only: float64
from a device tensor is a violation anywhere in the run. `transfers` counts
every host-to-device move the pack makes during the whole run, so a test can check that it does not
grow with the number of steps (moved once per run, not once per step). ComfyUI's own code is not
judged: only calls whose nearest caller outside torch is a pack file count.
"""
import os
import sys
import weakref

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from . import comfy_live

PACK_CODE = tuple(str(comfy_live.PACK_DIR / d) + os.sep for d in ("samplers", "model_patches", "nodes", "image_ops"))
TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
FACTORIES = {torch.tensor, torch.as_tensor, torch.zeros, torch.ones, torch.full, torch.empty, torch.arange,
             torch.linspace, torch.logspace, torch.rand, torch.randn, torch.randint, torch.eye, torch.scalar_tensor,
             torch.from_numpy}
TO_HOST = {torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.tolist}


def _pack_caller():
    """'file:line' of the nearest caller outside torch, if it is pack code; else None."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(TORCH_DIR):
        frame = frame.f_back
    if frame is None or not frame.f_code.co_filename.startswith(PACK_CODE):
        return None
    return f"{os.path.relpath(frame.f_code.co_filename, comfy_live.PACK_DIR)}:{frame.f_lineno}"


def _moves_to_device(args, kwargs) -> bool | None:
    """For Tensor.to: True (to a device or another tensor's), False (to "cpu"), None (dtype only)."""
    targets = [a for a in args[1:] if isinstance(a, (torch.device, str, torch.Tensor))]
    if "device" in kwargs and kwargs["device"] is not None:
        targets.append(kwargs["device"])
    if not targets:
        return None
    target = targets[0]
    return not (isinstance(target, str) and target.startswith("cpu"))


def _copy_of(out, source):
    """On the CPU a move to the CPU returns its source itself; on a GPU machine it is another tensor in
    another place. A view stands in for that tensor, so the source keeps its own place."""
    return out.view_as(out) if out is source else out


class DeviceSentinel(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.host = {}  # id -> weakref of host tensors
        self.in_steps = False
        self.violations = []
        self.transfers = []  # where the pack moved a host tensor to the device, over the whole run
        self.pack_ops_in_steps = 0  # proof that the per-step path was watched

    def start_steps(self):
        self.in_steps = True

    def is_host(self, t) -> bool:
        ref = self.host.get(id(t))
        return ref is not None and ref() is t

    def _mark(self, out, host: bool):
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                if host:
                    self.host[id(t)] = weakref.ref(t)
                else:
                    self.host.pop(id(t), None)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        where = _pack_caller()
        watched = where is not None and self.in_steps
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        hosts = [t for t in inputs if self.is_host(t)]
        name = getattr(func, "__name__", str(func))
        if watched:
            self.pack_ops_in_steps += 1
        if func in FACTORIES:
            host = kwargs.get("device") is None
            if watched and host:
                self.violations.append(f"{where}: torch.{name} without device= (made on the CPU on a GPU machine)")
        elif func in TO_HOST:
            host, out = True, _copy_of(out, args[0])
            if watched and not hosts and inputs and inputs[0].numel() > 1:
                self.violations.append(f"{where}: Tensor.{name} copies a device tensor to the host every step")
        elif func is torch.Tensor.to and _moves_to_device(args, kwargs) is not None:
            host, out = not _moves_to_device(args, kwargs), _copy_of(out, args[0])
            if not host and self.is_host(args[0]):
                if where is not None:
                    self.transfers.append(where)
                if watched:
                    self.violations.append(f"{where}: Tensor.to moves a CPU-made tensor to the device every step")
        else:
            host = bool(hosts) and len(hosts) == len(inputs)
            if watched and hosts and not host and any(t.numel() > 1 for t in hosts):
                self.violations.append(f"{where}: {name} mixes a CPU-made tensor with device tensors")
        if where is not None and any(isinstance(t, torch.Tensor) and t.dtype == torch.float64 for t in tree_flatten(out)[0]):
            if watched:
                self.violations.append(f"{where}: {name} gives float64 in the per-step path")
            elif not host:
                self.violations.append(f"{where}: {name} gives float64 on the device (MPS has none): go to the CPU first")
        self._mark(out, host)
        return out


def watch_network(patcher, sentinel: DeviceSentinel):
    """Starts the sentinel's per-step path at the first call of the patcher's network; returns the hook
    handle (remove it after the run)."""
    return patcher.model.diffusion_model.register_forward_pre_hook(lambda module, args: sentinel.start_steps())
