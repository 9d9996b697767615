"""Per-pixel TDS schedules (TSS, docs/tss.md §1-2), shared by the TSS and DoSSR samplers.

Each pixel follows its own TDS schedule t_k(i,j) = f(t_k; a(v_ij), n(v_ij)) over a sampler's
timesteps t_k, with a(v), n(v) linear in the SDS variance map v. Samplers call the model with the
scalar sigma and put the pixel's sigma map in transformer_options, which the per-pixel timestep
patch (model_patches/tss/spatial_timestep.py) reads.

Where the maps live (docs/shared.md §8): they are formed on the CPU in float64 (MPS has no float64,
and DoSSR's coefficients need it), cast and moved to the model's device in chunks of steps, one
transfer per chunk (DeviceSteps). A chunk holds at most DEVICE_CHUNK_ELEMENTS map elements, so a
run of any usual size is one chunk moved before its first step, and no input (steps, image size)
makes memory grow with steps x pixels.
"""
from collections.abc import Sequence

import torch

from ..clear_errors import InputError
from ..image_ops.sds_map import to_latent_size
from .ddpm import PIXEL_TIMESTEP_WRAPPER_KEY, SIGMA_MAP_KEY
from .tds_schedule import tds_remap_interval


class LazySteps(Sequence):
    """steps[k] = make(k), built when first asked and only the last `keep` kept, so a sampler holds
    a few per-pixel maps at any time: memory stays flat in the number of steps."""

    def __init__(self, make, length: int, keep: int = 4):
        self.make, self.length, self.keep, self.cache = make, length, keep, {}

    def __len__(self):
        return self.length

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(self.length))]
        k = range(self.length)[k]  # negative indices, and IndexError past the end
        if k not in self.cache:
            if len(self.cache) >= self.keep:
                del self.cache[next(iter(self.cache))]  # oldest first (dicts keep insertion order)
            self.cache[k] = self.make(k)
        return self.cache[k]


DEVICE_CHUNK_ELEMENTS = 2**24  # 64 MB of float32 maps on the device at most: one chunk for any usual run


class DeviceSteps(Sequence):
    """steps[k] = make(k) (a tuple of equally shaped CPU float64 maps), as float32 views on `device`.

    Consecutive steps are made on the CPU and moved together in one transfer, as many per chunk as
    fit DEVICE_CHUNK_ELEMENTS; only the current chunk is held. Samplers ask for steps in order, so a
    run moves its maps ceil(steps / chunk) times, not once a step."""

    def __init__(self, make, length: int, device, chunk_elements: int = DEVICE_CHUNK_ELEMENTS):
        self.make, self.length, self.device, self.chunk_elements = make, length, device, chunk_elements
        self.start, self.chunk = 0, None

    def __len__(self):
        return self.length

    def __getitem__(self, k):
        k = range(self.length)[k]
        if self.chunk is None or not self.start <= k < self.start + len(self.chunk):
            self.start, self.chunk = k, self._move(k)
        return self.chunk[k - self.start].unbind(0)

    def _move(self, k):
        first = torch.stack(self.make(k)).float()
        per_step = max(first.numel(), 1)
        end = min(self.length, k + max(1, self.chunk_elements // per_step))
        maps = [first] + [torch.stack(self.make(j)).float() for j in range(k + 1, end)]
        return torch.stack(maps).to(self.device)


def pixel_schedule(model_sampling, sigmas: torch.Tensor, timesteps: torch.Tensor, variance: torch.Tensor,
                   a_range, n_range) -> LazySteps:
    """schedule[k] = (t_map, sigma_map), float64 B×1×h×w: each pixel's TDS remap of timesteps[k] on
    the interval [timesteps[-1], timesteps[0]] (both ends shared by all pixels) and its sigma there;
    `variance` is B×1×h×w in [0, 1]. sigma_map is 0 where sigmas[k] is 0, and sigmas[k] itself when
    the interval is a single timestep. Maps are built when a step asks for them."""
    t = timesteps.cpu().double()  # to the CPU first: MPS has no float64
    v = variance.cpu().double()
    t_start, t_end = float(t[0]), float(t[-1])
    a = a_range[0] + v * (a_range[1] - a_range[0])
    n = n_range[0] + v * (n_range[1] - n_range[0])
    # f divides by (a - t_end)^(n-1) and (t_start - a)^(n-1): a must sit strictly inside the interval.
    # A user's a_max at t1 - 1 (DoSSR) would hit t_start; 0.1% of the interval keeps both divisors
    # positive while moving a by under one timestep on any interval shorter than 1000.
    margin = 1e-3 * (t_start - t_end)
    a = a.clamp(t_end + margin, t_start - margin)

    def maps(k):
        sigma = float(sigmas[k])
        if t_start == t_end or sigma <= 0:
            return torch.full_like(v, float(t[k])), torch.full_like(v, max(sigma, 0.0))
        t_map = tds_remap_interval(t[k], a, n, t_start, t_end)
        return t_map, model_sampling.sigma(t_map.float().flatten()).cpu().double().view(v.shape)

    return LazySteps(maps, len(sigmas))


def variance_at_latent(variance: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """SDS map (B×H×W, image size) -> B×1×h×w matching the latent batch."""
    if not torch.isfinite(variance).all():
        raise InputError("the TSS variance map contains NaN or infinite values")
    v = to_latent_size(variance.float().clamp(0, 1), *x.shape[-2:])
    if v.shape[0] == 1:
        return v.expand(x.shape[0], -1, -1, -1)
    if v.shape[0] != x.shape[0]:
        raise InputError(f"the variance map has batch {v.shape[0]}; it must be 1 or the latent batch {x.shape[0]}")
    return v


def with_sigma_map(extra_args, sigma_map):
    """extra_args whose transformer_options carry this step's per-pixel sigma map."""
    options = dict(extra_args.get("model_options", {}))
    options["transformer_options"] = dict(options.get("transformer_options", {}), **{SIGMA_MAP_KEY: sigma_map})
    return dict(extra_args, model_options=options)


def require_patched(model, sampler: str = "TSS sampler"):
    """The model_sampling of a model that carries the per-pixel timestep patch, or a clear error."""
    import comfy.patcher_extension

    patcher = model.inner_model.model_patcher
    wrappers = patcher.wrappers.get(comfy.patcher_extension.WrappersMP.APPLY_MODEL, {})
    if PIXEL_TIMESTEP_WRAPPER_KEY not in wrappers:
        raise InputError(f"the {sampler} needs its model patched for per-pixel timesteps: put the "
                         "'TSS Spatial Timestep Patch' node between the model loader and the sampler")
    return patcher.get_model_object("model_sampling")
