"""Every method in the dtypes ComfyUI picks on a modern GPU, on CPU (issue 26).

On a CPU, ComfyUI keeps every model in float32 (`comfy.model_management.should_use_fp16` and
`should_use_bf16` say no for a CPU, so `unet_dtype`, `unet_manual_cast` and `vae_dtype` give float32).
`gpu_choices` makes ComfyUI decide as it does on an Ampere-or-newer NVIDIA GPU, where both answers are
yes, under the flags a user passes (`--fp16-unet` or `--bf16-unet` with `--bf16-vae`) or none (each
network's own first supported dtype): only those two decision functions and the flags are patched,
in the test, so every other choice (the weight dtype each loader gives a network, whether it casts
weights per op, the dtype the latent is handed to the network in) is ComfyUI's own and the pack's
own code. Weights are then stored AND computed in half precision on the CPU, which torch supports
for every op these networks use.

What that proves, per method, for its whole graph (loader -> sampler -> decode, through the nodes'
own execute methods and ComfyUI's sampling, in-process; the shipped workflows' nodes with a bicubic
x4 in place of the ESRGAN/BSRNet preprocessors, fewer steps, and no size fitting or colour fix): it
runs in half precision without a dtype mismatch; every network the graph calls (UNet, ControlNet,
TASR adapters, TADSR's time-aware encoder, the ResShift network, VQ-f4, the starter model, the VAEs)
really computes in the dtype ComfyUI gave it (the input of every convolution and matrix product inside
it is checked, so a silent float32 path fails, and no float32 feature map may appear inside a
half-precision network); no network forward produces a float64 tensor; and the decoded image stays
within a stated distance of the float32 run on the same weights, input and noise.

What it does not prove: GPU kernels round differently (fused attention, TF32), so the bounds are
those of CPU arithmetic; a real GPU run is the device check's job.
"""
import collections
import contextlib

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from support import ckpt_factory as cf
import comfy.model_management as mm
from comfy.cli_args import args
import folder_paths
import nodes as comfy_nodes
from comfy_extras import nodes_custom_sampler as ncs
from timeaware_sr import nodes as pack

FP32, FP16, BF16 = torch.float32, torch.float16, torch.bfloat16
LR_SIZE = 16  # LR pixels; every graph works at x4, 64 x 64


# --- ComfyUI deciding as on a modern GPU ----------------------------------------------------------

# Settings: the flags a user passes on a modern GPU, or none ("gpu_default": ComfyUI then takes, per
# network, the first dtype of its list that the GPU supports: float16 for every diffusion network here,
# the VAE's own working dtypes for the VAE: bfloat16 for SD's VAE, float16 for VQ-f4).
SETTINGS = {"fp32": {}, "fp16": {"fp16_unet": True, "bf16_vae": True}, "bf16": {"bf16_unet": True, "bf16_vae": True},
            "gpu_default": {}}


def expected_dtypes(setting, method):
    """What ComfyUI gives each kind of network under a setting."""
    unet = {"fp32": FP32, "fp16": FP16, "bf16": BF16, "gpu_default": FP16}[setting]
    vae = {"fp32": FP32, "gpu_default": FP16 if method == "resshift" else BF16}.get(setting, BF16)
    return {"unet": unet, "controlnet": unet, "adapters": unet, "vae": vae}


@pytest.fixture
def gpu_choices(monkeypatch):
    """choose(setting): ComfyUI's dtype decisions as on an Ampere-or-newer NVIDIA GPU, with the setting's
    flags; choose("fp32") leaves the CPU's own choices (float32 everywhere)."""

    def choose(setting):
        if setting == "fp32":
            return
        monkeypatch.setattr(mm, "should_use_fp16", lambda *a, **k: True)
        monkeypatch.setattr(mm, "should_use_bf16", lambda *a, **k: True)
        for flag, value in SETTINGS[setting].items():
            monkeypatch.setattr(args, flag, value)

    return choose


# --- which network is running, and what it computes in ---------------------------------------------

def network_kinds():
    """Module class -> the network it is, for every network a graph may call. A call inside another
    network (the adapters inside the UNet) is counted for the innermost one."""
    from comfy.cldm.cldm import ControlNet
    from comfy.ldm.modules.diffusionmodules.model import Decoder, Encoder
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from timeaware_sr.model_patches.resshift.unet_swin import UNetModelSwin
    from timeaware_sr.model_patches.tasr.adapters import TimeAdapter

    # order matters: ControlNet and UNetModelSwin are not UNetModel subclasses, the time-aware encoder is an Encoder
    return [(TimeAdapter, "adapters"), (ControlNet, "controlnet"), (UNetModelSwin, "unet"), (UNetModel, "unet"),
            (Encoder, "vae"), (Decoder, "vae")]


# Ops whose arithmetic sets the precision: their inputs must be in the network's dtype.
COMPUTE_OPS = {"conv1d", "conv2d", "convolution", "addmm", "mm", "bmm", "baddbmm", "matmul", "linear", "einsum",
               "_scaled_dot_product_flash_attention_for_cpu", "scaled_dot_product_attention"}


class NetworkOps(TorchDispatchMode):
    """Records, while a network forward runs (UNet, ControlNet, TASR adapter, ResShift network, VAE
    encoder or decoder, the time-aware one included), the input dtype of every compute op, every op
    that produces a float64 tensor, and every op that produces a float32 B x C x H x W tensor (a latent
    or feature map upcast inside a half-precision network). Outside network forwards (the samplers'
    own schedule math) nothing is recorded."""

    def __init__(self):
        super().__init__()
        self.running = []  # stack of network kinds
        self.compute = collections.defaultdict(collections.Counter)  # kind -> {dtype: count}
        self.float64 = collections.Counter()  # (kind, op) -> count
        self.float32_maps = collections.Counter()  # (kind, op) -> count of float32 B x C x H x W results

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.running:
            kind = self.running[-1]
            name = func.overloadpacket.__name__
            if name in COMPUTE_OPS:
                first = next(a for a in tree_flatten(args)[0] if isinstance(a, torch.Tensor))
                self.compute[kind][first.dtype] += 1
            if any(isinstance(t, torch.Tensor) and t.dtype == torch.float64 for t in tree_flatten(out)[0]):
                self.float64[(kind, name)] += 1
            if any(isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.ndim >= 4 for t in tree_flatten(out)[0]):
                self.float32_maps[(kind, name)] += 1
        return out


@contextlib.contextmanager
def watch_networks():
    kinds = network_kinds()
    ops = NetworkOps()

    def kind_of(module):
        return next((kind for cls, kind in kinds if isinstance(module, cls)), None)

    def before(module, _args):
        kind = kind_of(module)
        if kind is not None:
            ops.running.append(kind)

    def after(module, _args, _out):
        if kind_of(module) is not None:
            ops.running.pop()

    pre = torch.nn.modules.module.register_module_forward_pre_hook(before)
    post = torch.nn.modules.module.register_module_forward_hook(after)
    try:
        with ops:
            yield ops
    finally:
        pre.remove()
        post.remove()


# --- running nodes in-process -------------------------------------------------------------------

def run(node_class, **inputs):
    """A node's outputs, as ComfyUI's executor gets them: V3 nodes through execute, V1 through FUNCTION."""
    if hasattr(node_class, "FUNCTION"):
        return getattr(node_class(), node_class.FUNCTION)(**inputs)
    return node_class.execute(**inputs).result


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Test-size networks make thousands of tiny ops per step: on a busy shared CPU, torch's second
    intra-op thread is mostly waited for (measured: DoSSR's three runs 1.5-2 s each with one thread,
    11-34 s with two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory):
    """The shipped workflows' stand-in model files (support/shipped_models.py), in folders ComfyUI's
    folder_paths lists first, for the loader nodes' file inputs."""
    import timeaware_sr
    from support import shipped_models

    root = tmp_path_factory.mktemp("half_models")
    dirs = {name: root / name for name in ["checkpoints", "upscale_models", *timeaware_sr.MODEL_FOLDERS]}
    for path in dirs.values():
        path.mkdir()
    shipped_models.write_all(dirs)
    with pytest.MonkeyPatch.context() as mp:
        for name, path in dirs.items():
            paths, extensions = folder_paths.folder_names_and_paths[name]
            mp.setitem(folder_paths.folder_names_and_paths, name, ([str(path), *paths], extensions))
        yield dirs


def lr_image(seed=0):
    """A smooth LR picture with some texture, B x H x W x C in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 4, 4, generator=g)
    image = torch.nn.functional.interpolate(coarse, size=(LR_SIZE, LR_SIZE), mode="bilinear", align_corners=False)
    image = (image + 0.15 * torch.rand(1, 3, LR_SIZE, LR_SIZE, generator=g)).clamp(0, 1)
    return image.movedim(1, -1)


def x4(image):
    return run(comfy_nodes.ImageScaleBy, image=image, upscale_method="bicubic", scale_by=4.0)[0]


def dossr_front(image):
    """Load DoSSR Checkpoint, the x4 image encoded, prompts, the ControlNet applied (as dossr_x4.json)."""
    model, clip, vae, control_net, _esrgan = run(pack.DoSSRCheckpointLoader, ckpt_name="dossr_default.ckpt")
    upscaled = x4(image)
    latent = run(comfy_nodes.VAEEncode, pixels=upscaled, vae=vae)[0]
    positive = run(comfy_nodes.CLIPTextEncode, text="clean, high-resolution, 8k", clip=clip)[0]
    negative = run(comfy_nodes.CLIPTextEncode, text="", clip=clip)[0]
    positive, negative = run(comfy_nodes.ControlNetApplyAdvanced, positive=positive, negative=negative,
                             control_net=control_net, image=upscaled, strength=1.0, start_percent=0.0,
                             end_percent=1.0, vae=vae)
    return model, vae, latent, positive, negative


def sample_advanced(model, positive, negative, cfg, sampler, sigmas, latent, seed=231):
    guider = run(ncs.CFGGuider, model=model, positive=positive, negative=negative, cfg=cfg)[0]
    noise = run(ncs.RandomNoise, noise_seed=seed)[0]
    return run(ncs.SamplerCustomAdvanced, noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
               latent_image=latent)[0]


def dossr_graph(image):
    """dossr_x4.json: 3 DoS-SDE steps (orders 1, 2, 3) from t1 = 500 with the SR ControlNet."""
    model, vae, latent, positive, negative = dossr_front(image)
    sigmas = run(pack.DoSSRScheduler, model=model, steps=3, t1=500)[0]
    sampler = run(pack.DoSSRSampler, order=3, t1=500)[0]
    out = sample_advanced(model, positive, negative, 1.0, sampler, sigmas, latent)
    return run(comfy_nodes.VAEDecode, samples=out, vae=vae)[0]


def tss_graph(image):
    """tss_controlnet_x4.json: per-pixel TDS schedules on the UNet and the ControlNet, CFG 2."""
    model, vae, latent, positive, negative = dossr_front(image)
    patched = run(pack.TSSSpatialTimestepPatch, model=model)[0]
    _, variance = run(pack.SDSVarianceMap, image=image, size=None)
    sigmas = run(pack.TDSScheduler, model=patched, steps=2, a=250.0, n=1.0, start=499.0, end=0.0)[0]
    sampler = run(pack.TSSSampler, variance_map=variance, base="euler", a_min=200.0, a_max=350.0, n_min=1.0,
                  n_max=2.5)[0]
    out = sample_advanced(patched, positive, negative, 2.0, sampler, sigmas, latent)
    return run(comfy_nodes.VAEDecode, samples=out, vae=vae)[0]


def tasr_graph(image):
    """tasr_x4.json: SD 2.1 from Load Checkpoint, Load TASR, the adapters applied, KSampler ddpm /
    tasr_spaced at CFG 4 from pure noise (2 steps), the hint encoded by the SD VAE."""
    model, clip, vae = run(comfy_nodes.CheckpointLoaderSimple, ckpt_name=cf.SD21_BASE_FILE)
    control_net, adapters = run(pack.TASRLoader, tasr_name="tasr_v1.pth")
    gated = run(pack.ApplyTASRAdapters, model=model, tasr_adapters=adapters)[0]
    upscaled = x4(image)
    positive = run(comfy_nodes.CLIPTextEncode, text="", clip=clip)[0]
    negative = run(comfy_nodes.CLIPTextEncode, text="low quality, blurry", clip=clip)[0]
    positive, negative = run(comfy_nodes.ControlNetApplyAdvanced, positive=positive, negative=negative,
                             control_net=control_net, image=upscaled, strength=1.0, start_percent=0.0,
                             end_percent=1.0, vae=vae)
    latent = run(comfy_nodes.EmptyLatentImage, width=4 * LR_SIZE, height=4 * LR_SIZE, batch_size=1)[0]
    out = run(comfy_nodes.KSampler, model=gated, seed=231, steps=2, cfg=4.0, sampler_name="ddpm",
              scheduler="tasr_spaced", positive=positive, negative=negative, latent_image=latent, denoise=1.0)[0]
    return run(comfy_nodes.VAEDecode, samples=out, vae=vae)[0]


def tadsr_graph(image):
    """tadsr_x4.json: Load TADSR on SD 2.1, TADSR Encode (time-aware encoder, sampled) at t_s 500, one
    UNet call through SamplerCustom, decode."""
    model, clip, _sd_vae = run(comfy_nodes.CheckpointLoaderSimple, ckpt_name=cf.SD21_BASE_FILE)
    model, tadsr_vae = run(pack.LoadTADSR, model=model, tadsr_name="tadsr.pkl", time_vae="time_vae", strength=1.0)
    upscaled = run(pack.ImageScalePIL, image=image, scale_by=4.0)[0]
    latent, t_s = run(pack.TADSREncode, image=upscaled, vae=tadsr_vae, t_s=500, mode="sample", seed=42)
    sampler, sigmas = run(pack.TADSROneStep, model=model, t_s=t_s)
    positive = run(comfy_nodes.CLIPTextEncode, text="", clip=clip)[0]
    out = run(ncs.SamplerCustom, model=model, add_noise=False, noise_seed=0, cfg=1.0, positive=positive,
              negative=positive, sampler=sampler, sigmas=sigmas, latent_image=latent)[0]
    return run(comfy_nodes.VAEDecode, samples=out, vae=tadsr_vae)[0]


def resshift_graph(image):
    """resshift_x4.json on the 4-step v3 network: Load ResShift, Prepare LR, VQ-f4 encode, 4 posterior
    steps, decode (quantized), crop."""
    model, vae = run(pack.ResShiftLoader, ckpt_name="resshift_realsrx4_s4_v3.pth", vae_name="autoencoder_vq_f4.pth",
                     preset="auto")
    upscaled, conditioning = run(pack.ResShiftPrepareLR, image=image)
    latent = run(comfy_nodes.VAEEncode, pixels=upscaled, vae=vae)[0]
    guider = run(ncs.BasicGuider, model=model, conditioning=conditioning)[0]
    sigmas = run(pack.ResShiftScheduler, model=model, steps=0)[0]
    sampler = run(pack.ResShiftSampler)[0]
    noise = run(ncs.RandomNoise, noise_seed=42)[0]
    out = run(ncs.SamplerCustomAdvanced, noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
              latent_image=latent)[0]
    decoded = run(comfy_nodes.VAEDecode, samples=out, vae=vae)[0]
    return run(pack.ResShiftCropOutput, image=decoded, lr_image=image)[0]


def starter_graph(image):
    """starter_sr_x4.json: the bundled starter model, one DoSSR step from the bicubic x4 image."""
    model, vae, conditioning = run(pack.StarterModelLoader, model_name="starter_sr.safetensors")
    upscaled = x4(image)
    latent = run(comfy_nodes.VAEEncode, pixels=upscaled, vae=vae)[0]
    sigmas = run(pack.DoSSRScheduler, model=model, steps=1, t1=500, final_clean=True)[0]
    sampler = run(pack.DoSSRSampler, order=3, t1=500)[0]
    out = sample_advanced(model, conditioning, conditioning, 1.0, sampler, sigmas, latent, seed=0)
    return run(comfy_nodes.VAEDecode, samples=out, vae=vae)[0]


GRAPHS = {"tss": tss_graph, "dossr": dossr_graph, "tadsr": tadsr_graph, "tasr": tasr_graph,
          "resshift": resshift_graph, "starter": starter_graph}


def run_graph(method, setting, choose):
    """(decoded image, the networks' recorded ops) for one method's graph under ComfyUI's choices."""
    choose(setting)
    try:
        with torch.inference_mode(), watch_networks() as ops:
            image = GRAPHS[method](lr_image())
    finally:
        mm.unload_all_models()  # the next run loads its own copies in its own dtype
    return image, ops


# The networks each graph must call (a method whose network silently did not run would pass otherwise).
NETWORKS = {"tss": {"unet", "controlnet", "vae"}, "dossr": {"unet", "controlnet", "vae"}, "tadsr": {"unet", "vae"},
            "tasr": {"unet", "controlnet", "adapters", "vae"}, "resshift": {"unet", "vae"}, "starter": {"unet"}}


def check_network_dtypes(method, ops, setting):
    """Every network computed in the dtype ComfyUI gave it, and none produced a float64 tensor."""
    expected = expected_dtypes(setting, method)
    assert not ops.float64, f"{method}: float64 tensors inside network forwards (network, op): {dict(ops.float64)}"
    assert set(ops.compute) == NETWORKS[method], f"{method}: networks that ran: {sorted(ops.compute)}"
    for kind, dtypes in ops.compute.items():
        assert set(dtypes) == {expected[kind]}, f"{method}: the {kind} computed in {dict(dtypes)}, not {expected[kind]}"


# Bounds on |half - float32| of the decoded image (0..1), as (largest pixel, mean). float16 keeps 11
# significant bits (relative rounding 2^-11 = 4.9e-4 per op), bfloat16 8 (2^-8 = 3.9e-3: about 3
# significant digits); with --bf16-vae the VAEs are bfloat16 in the fp16 runs too, so those carry the
# VAE's bfloat16 rounding as well. The networks are random test-size ones (no training has made them
# smooth) and their rounding accumulates over ~30 layers, the sampler's steps, CFG (TSS 2, TASR 4 from
# pure noise) and the decoder, so the image differs by about 1e-2 at its worst pixel. Each bound is
# about 4x what was measured on this CPU (torch 2.14), written beside it as (max, mean).
BOUNDS = {  # method: {setting: (max, mean)}
    "tss": {"fp16": (0.08, 0.01), "bf16": (0.15, 0.02), "gpu_default": (0.08, 0.01)},
    # measured fp16 (1.9e-2, 2.4e-3), bf16 (3.3e-2, 4.4e-3), gpu_default (1.9e-2, 2.4e-3)
    "dossr": {"fp16": (0.08, 0.01), "bf16": (0.1, 0.015), "gpu_default": (0.08, 0.01)},
    # (1.8e-2, 2.3e-3), (2.4e-2, 3.2e-3), (1.8e-2, 2.3e-3)
    "tadsr": {"fp16": (0.15, 0.02), "bf16": (0.2, 0.03), "gpu_default": (0.15, 0.02)},
    # (3.9e-2, 5.0e-3), (4.6e-2, 6.8e-3), (3.9e-2, 5.0e-3)
    "tasr": {"fp16": (0.08, 0.01), "bf16": (0.3, 0.035), "gpu_default": (0.08, 0.01)},
    # (1.9e-2, 2.1e-3), (8.8e-2, 8.3e-3), (1.9e-2, 2.1e-3)
    # VQ-f4's decoder snaps each latent pixel to its nearest code (64 random codes here): a latent near the
    # midpoint of two codes may snap to the other one, which moves a 4x4 pixel block a long way, so the
    # largest pixel is bounded loosely and the mean carries the check.
    "resshift": {"fp16": (0.5, 0.035), "bf16": (0.6, 0.055), "gpu_default": (0.3, 0.01)},
    # (0.16, 8.3e-3), (0.22, 1.4e-2), (7.5e-2, 2.0e-3): gpu_default runs VQ-f4 in float16, not bfloat16
    # pixel space: the pixel "VAE" only rounds the bicubic image to its dtype (half an 8-bit level at most)
    "starter": {"fp16": (0.008, 0.0015), "bf16": (0.012, 0.0015), "gpu_default": (0.008, 0.0015)},
    # (2.0e-3, 3.4e-4), (2.8e-3, 3.5e-4), (2.0e-3, 3.4e-4)
}


@pytest.fixture(scope="module")
def fp32_images(model_folders):
    """Each method's float32 image (the CPU's own choices), made once and checked as the half runs are."""
    return {}


@pytest.mark.parametrize("method", list(GRAPHS))
@pytest.mark.parametrize("setting", ["fp16", "bf16", "gpu_default"])
def test_half_precision_graph_matches_float32(method, setting, gpu_choices, fp32_images, report_table):
    if method not in fp32_images:
        fp32_images[method], ops = run_graph(method, "fp32", gpu_choices)
        check_network_dtypes(method, ops, "fp32")
    reference = fp32_images[method]
    image, ops = run_graph(method, setting, gpu_choices)
    check_network_dtypes(method, ops, setting)
    assert not ops.float32_maps, f"{method}: float32 feature maps inside half networks (network, op): {dict(ops.float32_maps)}"
    diff = (image - reference).abs()
    report_table(f"half precision {method} {setting}: |image - float32| max {diff.max().item():.1e}, "
                 f"mean {diff.mean().item():.1e}; compute ops {({k: sum(v.values()) for k, v in ops.compute.items()})}")
    assert image.dtype == FP32 and image.shape == reference.shape == (1, 4 * LR_SIZE, 4 * LR_SIZE, 3)
    assert torch.isfinite(image).all()
    largest, mean = BOUNDS[method][setting]
    assert diff.max() > 0, f"{method}: the {setting} image equals the float32 one bit for bit: half precision did not run"
    assert diff.max() <= largest and diff.mean() <= mean, (
        f"{method} {setting}: |image - float32| max {diff.max().item():.2e} (bound {largest}), "
        f"mean {diff.mean().item():.2e} (bound {mean})")
