"""The one prepared device check (issue 26): every method at real SD 2.1 size with random weights, one table.

    make gpu-check                       # = python tools/gpu_check.py (CUDA, real sizes, at most 8 minutes on an H100)
    python tools/gpu_check.py [--device cuda|cpu] [--quick] [--json PATH] [--only METHOD ...] [--repeats N]

Per method (rows: METHODS), in ComfyUI in-process as the shipped workflows run it (the pack's nodes and
functions, ComfyUI's samplers, VAE and ControlNet code), from the x4 preprocessor or bicubic upscale to the
decoded image; text conditioning is random and precomputed, loading, Fit/Restore Size and Color Fix are
left out:
  time      min and median of `repeats` runs after one warm-up, torch.cuda.synchronize around each, in the
            dtypes ComfyUI picks on the device by itself (printed: the shipped workflows get the same);
  peak VRAM torch.cuda.max_memory_allocated (and max_memory_reserved, which the 8 GB goal is judged on)
            over the warm-up image, from reset_peak_memory_stats, weights included, every other method's
            models unloaded ("n/a" on CPU). ComfyUI keeps every model loaded on an 80 GB card, so this is
            the peak with all of them resident, not proof that ComfyUI fits the graph in an 8 GB card;
  ratio     the same graph with ComfyUI's own euler sampler (comfy.samplers) on the same model, sigmas,
            size and step count; for TASR the sampling stage alone against plain ControlNet (no adapters),
            same 20 steps, so the ratio is per step;
  fp16/bf16 the decoded image with the diffusion networks in fp16 (--fp16-unet) or bf16 (--bf16-unet) and
            the VAE in bf16 (--bf16-vae), against everything in fp32 (--fp32-unet --fp32-vae): same
            weights, same input and noise; max |difference| and PSNR. The flags are ComfyUI's own dtype
            options, read by every loader of the pack (build_unet, the ControlNets, TASR's adapters, the
            VAEs), so on a GPU the networks really compute in that dtype; on a CPU ComfyUI stores the UNet
            in it but computes in fp32 (unet_manual_cast), and the cell shows the dtypes used. (fp32 is
            torch's default on the GPU: cuDNN may run its convolutions in TF32.)
Goals are printed beside the numbers (GOALS), never asserted. A method that did not run (an exception,
a NaN or infinite output, no CUDA with --device cuda) is named loudly after the table and the exit
status is 1. The table also goes to --json (default gpu_check.json).

--quick: the tests' tiny weights, small images and 1-2 steps, so the whole check runs on a CPU in about
a minute (tests/test_gpu_check.py). --inject-failure METHOD makes that method raise (the failure path's test).
"""
import argparse
import contextlib
import functools
import gc
import json
import math
import pathlib
import statistics
import sys
import time
import traceback
from typing import Callable, NamedTuple

import torch

TOOLS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS.parent / "tests"))  # support/

METHODS = ("TSS", "DoSSR-5", "TADSR", "TASR-20", "ResShift-15", "SinSR-1", "DoSSR 4096² tiled")
GB = 1e9
SEED = 231


class Goal(NamedTuple):
    text: str
    metric: str  # "time", "ratio" or "peak": the row's field it is about
    limit: float


GOALS = {
    "TADSR": Goal("≤ 0.05 s (H100)", "time", 0.05),
    "SinSR-1": Goal("< 0.058 s (H100)", "time", 0.058),
    "DoSSR-5": Goal("≤ 0.15 s (H100)", "time", 0.15),
    "TASR-20": Goal("≤ 1.1x plain CN/step", "ratio", 1.1),
    "DoSSR 4096² tiled": Goal("≤ 8 GB VRAM", "peak", 8 * GB),
}


class Pipelines(NamedTuple):
    """One build of a method: `image()` is the whole graph (what one image costs); the row's ratio is the
    median time of `ours` (None: image) over that of `versus` (None: no ratio), all timed interleaved;
    `dtypes` is what ComfyUI chose."""
    image: Callable[[], torch.Tensor]
    versus: Callable[[], object] | None
    dtypes: str
    ours: Callable[[], object] | None = None


class Method(NamedTuple):
    name: str
    size: str  # "128→512": the paper's size (real) or the quick one
    steps: int
    weights: Callable[[], dict]  # random weights, made once and shared by every dtype's build
    build: Callable[[dict], Pipelines]  # under the ComfyUI dtype flags in force
    ratio_label: str | None  # None: the reason there is no ratio is `no_ratio`
    no_ratio: str = ""
    no_dtype_compare: str = ""  # a reason, when the fp16/bf16 comparison is not run


class NotRun(Exception):
    """A method that did not run: the check fails."""


# --- ComfyUI's dtype options -------------------------------------------------------------------------

PRECISIONS = {  # run name -> ComfyUI flags (comfy.cli_args) set while the models are built
    "fp32": {"fp32_unet": True, "fp32_vae": True},
    "fp16": {"fp16_unet": True, "bf16_vae": True},
    "bf16": {"bf16_unet": True, "bf16_vae": True},
}
DTYPE_FLAGS = ("fp32_unet", "fp16_unet", "bf16_unet", "fp32_vae", "fp16_vae", "bf16_vae")


@contextlib.contextmanager
def comfy_dtype_flags(flags: dict):
    """ComfyUI's --fp16-unet / --bf16-vae / ... options for the builds inside (the loaders read them)."""
    from comfy.cli_args import args

    saved = {f: getattr(args, f) for f in DTYPE_FLAGS}
    try:
        for f in DTYPE_FLAGS:
            setattr(args, f, flags.get(f, False))
        yield
    finally:
        for f, v in saved.items():
            setattr(args, f, v)


def short(dtype) -> str:
    return str(dtype).replace("torch.", "").replace("float", "fp").replace("bfp16", "bf16")


def compute_dtype(patcher) -> str:
    """What a ModelPatcher's network computes in: its manual-cast dtype, else its weights' dtype."""
    model = patcher.model
    cast = getattr(model, "manual_cast_dtype", None)
    weights = model.get_dtype() if hasattr(model, "get_dtype") else next(model.parameters()).dtype
    return short(cast or weights) + ("" if cast is None or cast == weights else f" ({short(weights)} weights)")


def dtypes_used(model, vae) -> str:
    return f"net {compute_dtype(model)}, vae {short(vae.vae_dtype)}"


FP32_DTYPES = "net fp32, vae fp32"


# --- shared graph pieces (stock ComfyUI nodes and samplers) -------------------------------------------

def lr_image(side: int) -> torch.Tensor:
    return torch.rand(1, side, side, 3, generator=torch.Generator().manual_seed(1))


def text_cond(width: int, seed: int = 0) -> list:
    return [[torch.randn(1, 77, width, generator=torch.Generator().manual_seed(seed)), {}]]


def bicubic_x4(image):
    import comfy.utils

    h, w = image.shape[1:3]
    return comfy.utils.common_upscale(image.movedim(-1, 1), 4 * w, 4 * h, "bicubic", "disabled").movedim(1, -1).clamp(0, 1)


def esrgan_x4(upscale_model, image):
    from comfy_extras.nodes_upscale_model import ImageUpscaleWithModel

    return ImageUpscaleWithModel.execute(upscale_model, image).result[0]


def with_control(positive, negative, control_net, hint, vae):
    import nodes as comfy_nodes

    return comfy_nodes.ControlNetApplyAdvanced().apply_controlnet(positive, negative, control_net, hint, 1.0, 0.0, 1.0,
                                                                  vae=vae)


def sample(model, sampler, sigmas, positive, negative, latent, cfg=1.0, noise=True):
    """SamplerCustom(Advanced)'s call, noise from the seed as RandomNoise makes it."""
    import comfy.sample

    n = comfy.sample.prepare_noise(latent, SEED) if noise else torch.zeros_like(latent)
    return comfy.sample.sample_custom(model, n, cfg, sampler, sigmas, positive, negative, latent, seed=SEED,
                                      disable_pbar=True)


def euler():
    import comfy.samplers

    return comfy.samplers.sampler_object("euler")


# --- the methods ----------------------------------------------------------------------------------------

@functools.cache
def dossr_weights(size):  # TSS and both DoSSR rows run on one DoSSR checkpoint, as the shipped workflows do
    from support import ckpt_factory as cf
    from timeaware_sr.model_patches.dossr.checkpoint import split_dossr_state_dict

    return split_dossr_state_dict(cf.dossr_state_dict(size), "random DoSSR")


def dossr_components(parts):
    from timeaware_sr.model_patches.dossr.checkpoint import build_dossr

    return build_dossr(parts, "random DoSSR")


def dossr_method(size, quick, tiled: bool) -> Method:
    from support import ckpt_factory as cf
    from timeaware_sr.nodes.dossr_sampling import DoSSRSampler
    from timeaware_sr.samplers.dossr_schedule import dossr_sigmas

    steps = 2 if quick else 5
    side = (32 if quick else 1024) if tiled else (16 if quick else 128)
    # dossr_x4_large's tiles; --quick scales them down so the small image is still cut into tiles
    encode_tile, decode_tile, vae_overlap = (64, 64, 16) if quick else (1024, 512, 64)
    unet_tile, unet_overlap = (8, 2) if quick else (64, 16)
    width = cf.unet_config("sd21", size)["context_dim"]

    def build(parts):
        import nodes as comfy_nodes
        from timeaware_sr.model_patches.tiling.tiled_model import patch_tiled_diffusion

        c = dossr_components(parts)
        model = patch_tiled_diffusion(c.model, unet_tile, unet_overlap, "gaussian", 4) if tiled else c.model
        lr, cond = lr_image(side), text_cond(width)
        sigmas = dossr_sigmas(model.get_model_object("model_sampling"), steps, 500)
        dossr = DoSSRSampler.execute(3, 500).result[0]

        def graph(sampler):
            up = esrgan_x4(c.upscale_model, lr)
            if tiled:
                latent = comfy_nodes.VAEEncodeTiled().encode(c.vae, up, encode_tile, vae_overlap, 64, 8)[0]["samples"]
            else:
                latent = c.vae.encode(up)
            positive, negative = with_control(cond, cond, c.control_net, up, c.vae)
            out = sample(model, sampler, sigmas, positive, negative, latent)
            if tiled:
                return comfy_nodes.VAEDecodeTiled().decode(c.vae, {"samples": out}, decode_tile, vae_overlap, 64, 8)[0]
            return c.vae.decode(out)

        return Pipelines(lambda: graph(dossr), None if tiled else lambda: graph(euler()), dtypes_used(c.model, c.vae))

    name = "DoSSR 4096² tiled" if tiled else "DoSSR-5"
    return Method(name, f"{side}→{4 * side}", steps, lambda: dossr_weights(size), build,
                  None if tiled else "vs euler (same sigmas)",
                  no_ratio="the goal here is memory; DoSSR-5's row has the sampler ratio",
                  no_dtype_compare="same networks as DoSSR-5's row; a run per dtype at 4096² would not fit "
                                   "the 8 minutes" if tiled else "")


def tss_method(size, quick) -> Method:
    """tss_controlnet_x4: DoSSR's checkpoint, TSS patch, SDS map of the LR, TDS schedule, TSS sampler."""
    from support import ckpt_factory as cf
    from timeaware_sr.nodes.sds_map import SDSVarianceMap
    from timeaware_sr.nodes.tss import TSSSampler, TSSSpatialTimestepPatch
    from timeaware_sr.samplers.tds_schedule import tds_sigmas

    steps, side = (2, 16) if quick else (10, 128)
    width = cf.unet_config("sd21", size)["context_dim"]

    def build(parts):
        c = dossr_components(parts)
        patched = TSSSpatialTimestepPatch.execute(c.model).result[0]
        lr, cond = lr_image(side), text_cond(width)
        variance = SDSVarianceMap.execute(lr).result[1]
        sigmas = tds_sigmas(c.model.get_model_object("model_sampling"), steps, 250.0, 1.0, 499.0, 0.0)
        tss = TSSSampler.execute(variance, "dpmpp_2m", 200.0, 350.0, 1.0, 2.5).result[0]

        def graph(model, sampler):
            up = esrgan_x4(c.upscale_model, lr)
            positive, negative = with_control(cond, cond, c.control_net, up, c.vae)
            return c.vae.decode(sample(model, sampler, sigmas, positive, negative, c.vae.encode(up)))

        return Pipelines(lambda: graph(patched, tss), lambda: graph(c.model, euler()), dtypes_used(c.model, c.vae))

    return Method("TSS", f"{side}→{4 * side}", steps, lambda: dossr_weights(size), build,
                  "vs euler, unpatched UNet (same sigmas)")


def tadsr_method(size, quick) -> Method:
    """tadsr_x4: bicubic x4, TADSR's time-aware encoder at t_s 500, one UNet call, decode."""
    import comfy.diffusers_convert
    import comfy.model_base
    import comfy.samplers
    from support import ckpt_factory as cf
    from support import tadsr_factory as tf
    from timeaware_sr.model_patches.sd_components import build_unet, build_vae
    from timeaware_sr.model_patches.tadsr import checkpoint as ck
    from timeaware_sr.model_patches.tadsr.encode import encode_image
    from timeaware_sr.model_patches.tadsr.one_step_model import tadsr_model
    from timeaware_sr.model_patches.tadsr.time_vae_folder import time_aware_vae
    from timeaware_sr.samplers.tadsr_one_step import sample_tadsr_one_step, tadsr_sigmas

    side = 16 if quick else 128
    width = cf.unet_config("sd21", size)["context_dim"]

    def weights():
        unet = cf.unet_state_dict("sd21", size, "eps")  # common.random_sd21_unet's weights, made once
        return {"unet": {k[len(cf.UNET_PREFIX):]: v for k, v in unet.items()}, "tadsr": tf.tadsr_pkl_dict(size),
                "vae": tf.time_vae_state_dict(size)}

    def build(w):
        ckpt = ck.parse_tadsr_checkpoint(w["tadsr"])
        model = tadsr_model(build_unet(w["unet"], comfy.model_base.ModelType.EPS), ckpt)
        vae = time_aware_vae(w["vae"], ckpt)
        stock_vae = build_vae(comfy.diffusers_convert.convert_vae_state_dict(
            {k: v for k, v in w["vae"].items() if "time" not in k}))
        lr, cond = lr_image(side), text_cond(width)
        sigmas = tadsr_sigmas(model.get_model_object("model_sampling"), 500)
        one_step = comfy.samplers.KSAMPLER(sample_tadsr_one_step)

        def tadsr():
            latent = encode_image(vae, bicubic_x4(lr), 500, 42)
            return vae.decode(sample(model, one_step, sigmas, cond, cond, latent, noise=False))

        def ksampler():  # stock VAE Encode, one euler step, stock decode
            latent = stock_vae.encode(bicubic_x4(lr))
            return stock_vae.decode(sample(model, euler(), sigmas, cond, cond, latent, noise=False))

        return Pipelines(tadsr, ksampler, dtypes_used(model, vae))

    return Method("TADSR", f"{side}→{4 * side}", 1, weights, build, "vs stock VAE + euler 1 step")


def tasr_method(size, quick) -> Method:
    """tasr_x4: x4 upscale (bicubic standing in for BSRNet), TASR ControlNet + adapters, KSampler ddpm /
    tasr_spaced, CFG 4, decode."""
    import comfy.model_base
    import comfy.samplers
    from support import ckpt_factory as cf
    from support import tasr_factory as tf
    from timeaware_sr.model_patches.sd_components import build_unet, build_vae
    from timeaware_sr.model_patches.tasr.adapter_patch import apply_tasr_adapters
    from timeaware_sr.samplers.tasr_schedule import spaced_ddpm_sigmas

    steps, side = (2, 16) if quick else (20, 128)
    width = tf.sd21_config(size)["context_dim"]

    def weights():
        from timeaware_sr.model_patches.tasr.checkpoint import split_tasr_state_dict

        return {"unet": tf.sd21_unet_state_dict(size), "vae": cf.vae_state_dict(size),
                "tasr": split_tasr_state_dict(tf.tasr_state_dict(size), "random TASR")}

    def build(w):
        from timeaware_sr.model_patches.tasr.checkpoint import build_tasr

        model = build_unet(w["unet"], comfy.model_base.ModelType.EPS)
        vae = build_vae(w["vae"])
        control_net, adapters = build_tasr(*w["tasr"], "random TASR")
        gated = apply_tasr_adapters(model, adapters)
        lr = lr_image(side)
        up = bicubic_x4(lr)
        positive, negative = with_control(text_cond(width, 0), text_cond(width, 1), control_net, up, vae)
        sigmas = spaced_ddpm_sigmas(model.get_model_object("model_sampling"), steps)
        ddpm = comfy.samplers.sampler_object("ddpm")

        latent = vae.encode(up) * 0.0  # outside the timed stage: both sides of the per-step ratio sample only

        def sampling(m):
            return sample(m, ddpm, sigmas, positive, negative, latent, cfg=4.0)

        return Pipelines(lambda: vae.decode(sampling(gated)), lambda: sampling(model), dtypes_used(model, vae),
                         ours=lambda: sampling(gated))

    return Method("TASR-20", f"{side}→{4 * side}", steps, weights, build,
                  "per step vs plain ControlNet (sampling)")


def resshift_method(size, quick, one_step: bool) -> Method:
    """resshift_x4 / sinsr_onestep_x4: pad + bicubic x4, VQ-f4 encode, ResShift sampler, decode, crop."""
    from support import resshift_factory as factory
    from timeaware_sr.model_patches.resshift.checkpoint import build_resshift_model
    from timeaware_sr.model_patches.resshift.lr_image import crop_output, prepare_lr
    from timeaware_sr.model_patches.resshift.model import LQ_KEY
    from timeaware_sr.model_patches.resshift.vq_f4 import VQModelF4, build_vq_f4_vae, vq_config_from_weights
    from timeaware_sr.nodes.resshift_sampling import ResShiftSampler
    from timeaware_sr.samplers.resshift_schedule import resshift_sigmas

    preset, steps = ("sinsr", 1) if one_step else ("resshift_v1", 2 if quick else 15)
    side = 16 if quick else 64

    def weights():
        return {"net": factory.unet_state_dict(size), "vq": factory.vq_state_dict(size)}

    def build(w):
        model = build_resshift_model(w["net"], preset, "random ResShift")
        vq = VQModelF4(**vq_config_from_weights(w["vq"]))
        vq.load_state_dict(w["vq"])
        vae = build_vq_f4_vae(vq)
        sigmas = resshift_sigmas(model.get_model_object("model_sampling"), steps)
        lr = lr_image(side)

        def graph(sampler):
            upscaled, lq = prepare_lr(lr)
            cond = [[torch.zeros(1, 1, 1), {LQ_KEY: lq}]]
            return crop_output(vae.decode(sample(model, sampler, sigmas, cond, cond, vae.encode(upscaled))), side, side)

        ours = ResShiftSampler.execute().result[0]
        return Pipelines(lambda: graph(ours), lambda: graph(euler()), dtypes_used(model, vae))

    name = "SinSR-1" if one_step else "ResShift-15"
    return Method(name, f"{side}→{4 * side}", steps, weights, build, "vs euler (same sigmas)")


def methods(quick: bool) -> dict:
    size = "tiny" if quick else "real"
    return {m.name: m for m in (
        tss_method(size, quick), dossr_method(size, quick, tiled=False), tadsr_method(size, quick),
        tasr_method(size, quick), resshift_method(size, quick, one_step=False),
        resshift_method(size, quick, one_step=True), dossr_method(size, quick, tiled=True))}


# --- measuring --------------------------------------------------------------------------------------------

def cuda() -> bool:
    import comfy.model_management as mm

    return mm.get_torch_device().type == "cuda"


def synchronize():
    if cuda():
        torch.cuda.synchronize()


def finite_image(out, what: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise NotRun(f"{what}: no image came back ({type(out).__name__})")
    out = out.float().cpu()
    if not torch.isfinite(out).all():
        raise NotRun(f"{what}: the output holds {int((~torch.isfinite(out)).sum())} NaN or infinite values")
    return out


def timed(fn) -> tuple[float, object]:
    synchronize()
    start = time.perf_counter()
    out = fn()
    synchronize()
    return time.perf_counter() - start, out


def release_models():
    """Unload everything between builds, so one method's weights do not count in the next one's peak."""
    import comfy.model_management as mm

    mm.unload_all_models()
    gc.collect()
    mm.soft_empty_cache()


def measure_default(method: Method, weights, repeats: int) -> dict:
    """Time, peak memory and ratio in the dtypes ComfyUI picks by itself."""
    with torch.inference_mode():
        p = method.build(weights)
        others = [fn for fn in (p.ours, p.versus) if fn is not None]
        if cuda():
            torch.cuda.reset_peak_memory_stats()
        reference = finite_image(p.image(), "warm-up")  # warm-up: model loads, kernel choices
        # the peak of one image with its own models only (the comparison pipelines load more)
        peak = (torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()) if cuda() else (None, None)
        for fn in others:
            fn()
        times = {fn: [] for fn in [p.image, *others]}
        for _ in range(repeats):  # interleaved, so drift on a busy machine hits every pipeline alike
            for fn, runs in times.items():
                seconds, out = timed(fn)
                runs.append(seconds)
                if fn is p.image:
                    finite_image(out, "timed run")
    runs = times[p.image]
    row = {"time_min_s": min(runs), "time_median_s": statistics.median(runs), "runs_s": runs,
           "peak_vram_bytes": peak[0], "peak_reserved_bytes": peak[1], "dtypes": p.dtypes}
    if p.versus is not None:
        row["ratio"] = statistics.median(times[p.ours or p.image]) / statistics.median(times[p.versus])
    del p
    release_models()
    return row, reference


def decoded(method: Method, weights, precision: str) -> tuple[torch.Tensor, str]:
    with comfy_dtype_flags(PRECISIONS[precision]):
        p = method.build(weights)  # ComfyUI reads the flags when it builds the models
    with torch.inference_mode():
        out = finite_image(p.image(), f"{precision} run")
    dtypes = p.dtypes
    del p
    release_models()
    return out, dtypes


def difference(out, reference) -> dict:
    diff = (out - reference).abs()
    mse = float((out.clamp(0, 1) - reference.clamp(0, 1)).pow(2).mean())
    return {"max_abs": float(diff.max()), "psnr_db": math.inf if mse == 0 else 10 * math.log10(1 / mse)}


def measure(method: Method, args) -> dict:
    row = {"method": method.name, "size": method.size, "steps": method.steps, "ratio_label": method.ratio_label,
           "goal": GOALS[method.name].text if method.name in GOALS else None, "error": None}
    try:
        if method.name == args.inject_failure:
            raise NotRun("failure injected by --inject-failure")
        weights = method.weights()
        default, image = measure_default(method, weights, args.repeats if "4096" not in method.name else 1)
        row.update(default)
        if method.ratio_label is None:
            row["ratio_reason"] = method.no_ratio
        if method.no_dtype_compare:
            row["fp16"] = row["bf16"] = {"reason": method.no_dtype_compare}
            return row
        if row["dtypes"] == FP32_DTYPES:  # ComfyUI chose fp32 for everything itself (a CPU): that run is the reference
            reference, row["fp32_dtypes"] = image, row["dtypes"]
        else:
            reference, row["fp32_dtypes"] = decoded(method, weights, "fp32")
        for precision in ("fp16", "bf16"):
            try:
                out, dtypes = decoded(method, weights, precision)
                row[precision] = {**difference(out, reference), "dtypes": dtypes}
            except Exception as e:  # on CPU only a reason; on a GPU the method did not run in that dtype
                if cuda():
                    raise NotRun(f"{precision}: {type(e).__name__}: {e}") from e
                row[precision] = {"reason": f"not on this CPU: {type(e).__name__}: {str(e)[:120]}"}
    except Exception as e:
        traceback.print_exc()
        row["error"] = f"{type(e).__name__}: {e}"
        try:  # after a device-side error every CUDA call fails: keep the table and the JSON anyway
            release_models()
        except Exception as cleanup:
            row["error"] += f" (then release_models: {type(cleanup).__name__}: {cleanup})"
    return row


def goal_status(row, args) -> str:
    goal = GOALS.get(row["method"])
    if goal is None or row["error"]:
        return "-"
    value = {"time": row.get("time_median_s"), "ratio": row.get("ratio"), "peak": row.get("peak_reserved_bytes")}[goal.metric]
    if value is None or args.quick or (goal.metric != "ratio" and args.device != "cuda"):
        return "n/a here"  # goals are for real sizes; time and VRAM goals for an H100
    return "pass" if value <= goal.limit and (goal.text[0] != "<" or value < goal.limit) else "MISS"


# --- the table ----------------------------------------------------------------------------------------

def precision_cell(cell) -> str:
    if cell is None:
        return "-"
    if "reason" in cell:
        return "n/a: " + cell["reason"]
    return f"max {cell['max_abs']:.2e}, {cell['psnr_db']:.1f} dB"


def table_lines(rows) -> list[str]:
    head = ("method", "size", "steps", "s/image min", "median", "goal", "status", "peak VRAM", "ratio",
            "fp16 vs fp32", "bf16 vs fp32", "dtypes (timed)")
    lines = []
    for r in rows:
        if r["error"]:
            lines.append((r["method"], r["size"], str(r["steps"]), "DID NOT RUN", "", r["goal"] or "-", "-", "", "", "",
                          "", r["error"][:60]))
            continue
        peak = "n/a" if r["peak_vram_bytes"] is None else \
            f"{r['peak_vram_bytes'] / GB:.2f} GB ({r['peak_reserved_bytes'] / GB:.2f} reserved)"
        ratio = f"{r['ratio']:.3f} {r['ratio_label']}" if "ratio" in r else "n/a: " + r.get("ratio_reason", "")
        lines.append((r["method"], r["size"], str(r["steps"]), f"{r['time_min_s']:.4f}", f"{r['time_median_s']:.4f}",
                      r["goal"] or "-", r["goal_status"], peak, ratio, precision_cell(r.get("fp16")),
                      precision_cell(r.get("bf16")), r["dtypes"]))
    widths = [max(len(x[i]) for x in [head, *lines]) for i in range(len(head))]
    fmt = lambda cells: " | ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return [fmt(head), "-+-".join("-" * w for w in widths), *map(fmt, lines)]


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--quick", action="store_true", help="tiny test-size weights, small images, 1-2 steps")
    ap.add_argument("--json", default="gpu_check.json", help="where the table goes as JSON")
    ap.add_argument("--only", choices=METHODS, action="append", help="run this method only (repeatable; debugging)")
    ap.add_argument("--repeats", type=positive_int, help="timed runs per method after the warm-up (default 3, --quick 1)")
    ap.add_argument("--inject-failure", metavar="METHOD", choices=METHODS,
                    help="make METHOD raise, to test that a method that does not run fails the check")
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    args.repeats = args.repeats or (1 if args.quick else 3)
    names = [m for m in METHODS if m in args.only] if args.only else list(METHODS)
    report = {"device": args.device, "quick": args.quick, "torch": torch.__version__, "rows": []}
    if args.device == "cuda" and not torch.cuda.is_available():
        failures = [f"{n}: CUDA is not available (torch.cuda.is_available() is False); use --device cpu" for n in names]
    else:
        try:
            from support import env

            env.setup(cpu=args.device == "cpu")  # as tools/benchmarks/common.parse_args does
            report["device"] = f"{env.device_name()}" + (f" ({torch.cuda.get_device_name()})" if cuda() else "")
            print(f"device: {report['device']}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
                  f"{'quick (tiny weights)' if args.quick else 'real SD 2.1 sizes, random weights'}", flush=True)
            table = methods(args.quick)
            for name in names:
                start = time.perf_counter()
                report["rows"].append(measure(table[name], args))
                pathlib.Path(args.json).write_text(json.dumps(report, indent=1, default=str))  # kept if killed later
                print(f"  {name}: {time.perf_counter() - start:.1f} s", flush=True)
            failures = [f"{r['method']}: {r['error']}" for r in report["rows"] if r["error"]]
        except Exception as e:  # set-up or import: the methods not measured did not run
            traceback.print_exc()
            measured = {r["method"] for r in report["rows"]}
            failures = [f"{r['method']}: {r['error']}" for r in report["rows"] if r["error"]]
            failures += [f"{n}: did not start: {type(e).__name__}: {e}" for n in names if n not in measured]
    for r in report["rows"]:
        r["goal_status"] = goal_status(r, args)
    report["failures"] = failures
    pathlib.Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    print("\n".join(table_lines(report["rows"])))
    print(f"(JSON: {args.json})")
    if failures:
        print("\n" + "!" * 78 + "\nGPU CHECK FAILED: these methods DID NOT RUN\n" + "\n".join("  " + f for f in failures)
              + "\n" + "!" * 78, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
