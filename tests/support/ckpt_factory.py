"""Checkpoints with random weights in the real released key layouts, for tests.

Each layout is built from the same network class the real weights load into (ComfyUI's own
`openaimodel.UNetModel` for the SD family), so its keys are the real keys by construction.
"tiny" variants keep every key and the real block structure but use narrow channels; "real"
variants have the released shapes. "stand-in" is tiny without attention at the highest resolution:
the shipped workflows' model stand-ins (write_shipped_models) run at the sample's full size, up to a
96x64 latent (6,144 tokens) for TASR, where that attention was most of a step's cost; the layouts
with every key stay proven by "tiny" and "real". Files are cached under a temp folder keyed by the layout
and this file's source, so a change here rebuilds them.
"""
import copy
import hashlib
import os
import pathlib
import tempfile

import torch

CACHE_DIR = pathlib.Path(os.environ.get("TIMEAWARE_SR_TEST_CACHE", pathlib.Path(tempfile.gettempdir()) / "timeaware_sr_test_ckpts"))
UNET_PREFIX = "model.diffusion_model."
# ComfyUI tells SD2 v-prediction from eps by the spread of this bias (supported_models.SD20.model_type).
SD2_V_MARKER = "output_blocks.11.1.transformer_blocks.0.norm1.bias"

_SD_BLOCKS = dict(
    num_res_blocks=[2, 2, 2, 2],
    channel_mult=[1, 2, 4, 4],
    transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
    transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    transformer_depth_middle=1,
)
_COMMON = dict(image_size=32, in_channels=4, out_channels=4, use_spatial_transformer=True, legacy=False,
               use_checkpoint=False, use_temporal_resblock=False, use_temporal_attention=False)

# Real released UNet configs, in ComfyUI's unet_config form.
UNET_CONFIGS = {
    "sd15": dict(_COMMON, **_SD_BLOCKS, model_channels=320, context_dim=768, use_linear_in_transformer=False,
                 adm_in_channels=None, num_heads=8, num_head_channels=-1),
    "sd21": dict(_COMMON, **_SD_BLOCKS, model_channels=320, context_dim=1024, use_linear_in_transformer=True,
                 adm_in_channels=None, num_heads=-1, num_head_channels=64),
    "sdxl": dict(_COMMON, model_channels=320, num_res_blocks=[2, 2, 2], channel_mult=[1, 2, 4],
                 transformer_depth=[0, 0, 2, 2, 10, 10], transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10],
                 transformer_depth_middle=10, context_dim=2048, use_linear_in_transformer=True,
                 adm_in_channels=2816, num_classes="sequential", num_heads=-1, num_head_channels=64),
}
# Tiny: same keys, narrow channels (GroupNorm needs multiples of 32) and a 64-wide text context to
# match the tiny text encoders. SDXL's ADM width stays real so its size embeddings still fit.
TINY_CONTEXT = 64
TINY_OVERRIDES = {
    "sd15": dict(model_channels=32, context_dim=TINY_CONTEXT),
    "sd21": dict(model_channels=32, num_head_channels=16, context_dim=TINY_CONTEXT),
    "sdxl": dict(model_channels=32, num_head_channels=16, context_dim=TINY_CONTEXT),
}
# Stand-in: no transformer at the first level (input blocks 1-2, output blocks 9-11). Both lists run
# from the first level to the last (UNetModel pops the output list from its end).
STAND_IN_DEPTHS = {"sd21": dict(transformer_depth=[0, 0, 1, 1, 1, 1, 0, 0],
                                transformer_depth_output=[0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0])}
SIZES = ("tiny", "stand-in", "real")


def unet_config(arch: str, size: str = "tiny") -> dict:
    config = copy.deepcopy(UNET_CONFIGS[arch])
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    if size != "real":
        config.update(TINY_OVERRIDES[arch])
    if size == "stand-in":
        config.update(STAND_IN_DEPTHS[arch])
    return config


def build_unet(arch: str, size: str = "tiny", seed: int = 0, device: str = "cpu", dtype=torch.float32):
    """ComfyUI's UNetModel with seeded random weights (on device="meta": the layout alone)."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    import comfy.ops

    unet = UNetModel(**unet_config(arch, size), dtype=dtype, device=device, operations=comfy.ops.disable_weight_init)
    if device != "meta":
        randomize_(unet, seed)
    return unet


def randomize_(module: torch.nn.Module, seed: int):
    """Fan-in scaled normal weights, small biases, near-one norm scales: finite, non-trivial outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)
            elif name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
    return module


def unet_state_dict(arch: str, size: str = "tiny", prediction: str = "eps", seed: int = 0,
                    device: str = "cpu", dtype=torch.float32) -> dict:
    """UNet weights under the original LDM checkpoint prefix `model.diffusion_model.`."""
    unet = build_unet(arch, size, seed, device, dtype)
    sd = {UNET_PREFIX + k: v for k, v in unet.state_dict().items()}
    if arch == "sd21" and device != "meta":
        if UNET_PREFIX + SD2_V_MARKER not in sd:  # the stand-in has no first-level attention: eps by ComfyUI's rule
            assert prediction == "eps", f"a {size} SD 2.1 UNet has no {SD2_V_MARKER} to mark v-prediction"
            return sd
        g = torch.Generator().manual_seed(seed + 1)
        spread = {"v": 0.2, "eps": 0.01}[prediction]  # ComfyUI's threshold is 0.09
        marker = sd[UNET_PREFIX + SD2_V_MARKER]
        sd[UNET_PREFIX + SD2_V_MARKER] = (spread * torch.randn(marker.shape, generator=g)).to(marker.dtype)
    return sd


def cached_checkpoint(name: str, make_state_dict, **params) -> pathlib.Path:
    """Write make_state_dict(**params) once as <name>.safetensors; reuse it while nothing changed."""
    import safetensors.torch

    key = hashlib.sha1((pathlib.Path(__file__).read_text() + repr(sorted(params.items()))).encode()).hexdigest()[:12]
    path = CACHE_DIR / key / f"{name}.safetensors"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.partial")  # suites side by side write their own, then one rename wins
        sd = {k: v.contiguous() for k, v in make_state_dict(**params).items()}
        safetensors.torch.save_file(sd, str(tmp))
        tmp.rename(path)
    return path


def tiny_unet_checkpoint(arch: str, prediction: str = "eps", seed: int = 0) -> pathlib.Path:
    return cached_checkpoint(f"tiny_{arch}_{prediction}_unet", unet_state_dict, arch=arch, size="tiny",
                             prediction=prediction, seed=seed)


def sd3_mmdit_state_dict(seed: int = 0) -> dict:
    """A tiny SD3-layout MMDiT (one joint block, hidden 64) as a bare diffusion-model file: a
    non-UNet MODEL that stock UNETLoader detects as SD3 (flow matching, 16-channel latents)."""
    from comfy.ldm.modules.diffusionmodules.mmdit import MMDiT
    import comfy.ops

    net = MMDiT(patch_size=2, in_channels=16, out_channels=16, depth=1, adm_in_channels=32,
                context_embedder_config={"target": "torch.nn.Linear", "params": {"in_features": 64, "out_features": 64}},
                pos_embed_max_size=16, num_patches=256, operations=comfy.ops.disable_weight_init)
    sd = randomize_(net, seed).state_dict()
    sd["pos_embed"] = 0.02 * torch.randn(sd["pos_embed"].shape, generator=torch.Generator().manual_seed(seed))
    return sd  # pos_embed is an uninitialised buffer in the module


# --- DoSSR (SPEC §3): a whole ControlLDM in one file --------------------------------------------

VAE_CH = {"real": 128, "tiny": 32}
OPENCLIP = {"real": dict(width=1024, layers=24, embed=1024), "tiny": dict(width=TINY_CONTEXT, layers=3, embed=TINY_CONTEXT)}
RRDB = {"real": dict(nf=64, nb=23, gc=32), "tiny": dict(nf=8, nb=1, gc=32)}  # spandrel assumes gc = 32
for _table in (VAE_CH, OPENCLIP, RRDB):
    _table["stand-in"] = _table["tiny"]  # the stand-ins differ from tiny in the UNet's attention only
LDM_SCHEDULE_BUFFERS = ["betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                        "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                        "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                        "posterior_mean_coef1", "posterior_mean_coef2"]


def vae_state_dict(size="tiny", seed=0, dtype=torch.float32, device="cpu") -> dict:
    """LDM AutoencoderKL (SD's f8 VAE), built with ComfyUI's own class."""
    from comfy.ldm.models.autoencoder import AutoencoderKL

    ddconfig = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3,
                "ch": VAE_CH[size], "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
    with torch.device(device):
        vae = AutoencoderKL(ddconfig=ddconfig, embed_dim=4)
    if device != "meta":
        randomize_(vae, seed)
    return {k: v.to(dtype) for k, v in vae.state_dict().items()}


def zeros_like_layout(sd: dict) -> dict:
    """Zero tensors of a (meta) state dict's shapes and dtypes: a real-size file where only the layout
    is under test, without the random fill of every weight (and its float32 copy)."""
    return {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in sd.items()}


def _random(shape, g, dtype, scale=None, device="cpu"):
    if device == "meta":
        return torch.empty(shape, dtype=dtype, device="meta")
    fan_in = int(torch.tensor(shape[1:]).prod()) if len(shape) > 1 else 1
    return (torch.randn(shape, generator=g) * (scale if scale is not None else fan_in ** -0.5)).to(dtype)


def openclip_text_state_dict(size="tiny", seed=0, dtype=torch.float32, device="cpu") -> dict:
    """OpenCLIP text tower as SD 2.x stores it under cond_stage_model.model. (visual tower removed)."""
    w, layers, embed = OPENCLIP[size]["width"], OPENCLIP[size]["layers"], OPENCLIP[size]["embed"]
    g = torch.Generator().manual_seed(seed)
    shapes = {"token_embedding.weight": (49408, w), "positional_embedding": (77, w), "ln_final.weight": (w,),
              "ln_final.bias": (w,), "text_projection": (w, embed), "logit_scale": ()}
    for i in range(layers):
        b = f"transformer.resblocks.{i}."
        shapes.update({b + "ln_1.weight": (w,), b + "ln_1.bias": (w,), b + "attn.in_proj_weight": (3 * w, w),
                       b + "attn.in_proj_bias": (3 * w,), b + "attn.out_proj.weight": (w, w), b + "attn.out_proj.bias": (w,),
                       b + "ln_2.weight": (w,), b + "ln_2.bias": (w,), b + "mlp.c_fc.weight": (4 * w, w),
                       b + "mlp.c_fc.bias": (4 * w,), b + "mlp.c_proj.weight": (w, 4 * w), b + "mlp.c_proj.bias": (w,)})
    sd = {}
    for k, shape in shapes.items():
        if device == "meta":
            sd[k] = _random(shape, g, dtype, device=device)
        elif k.endswith(("ln_1.weight", "ln_2.weight", "ln_final.weight")):
            sd[k] = (1 + 0.1 * torch.randn(shape, generator=g)).to(dtype)
        elif k == "logit_scale":
            sd[k] = torch.tensor(4.6052, dtype=dtype)
        elif len(shape) == 1:
            sd[k] = _random(shape, g, dtype, 0.02)
        else:
            sd[k] = _random(shape, g, dtype, 0.02 if "embedding" in k else None)
    return sd


def rrdbnet_state_dict(size="tiny", seed=0, dtype=torch.float32, device="cpu") -> dict:
    """BasicSR RRDBNet x4 (DoSSR's esrgan.RRDBNet_arch): conv_first, body.N.rdbK.convM, conv_up1/2, conv_hr, conv_last."""
    nf, nb, gc = RRDB[size]["nf"], RRDB[size]["nb"], RRDB[size]["gc"]
    g = torch.Generator().manual_seed(seed)
    convs = {"conv_first": (nf, 3)}
    for i in range(nb):
        for r in (1, 2, 3):
            for m in range(1, 6):
                convs[f"body.{i}.rdb{r}.conv{m}"] = (nf if m == 5 else gc, nf + (m - 1) * gc)
    convs.update({"conv_body": (nf, nf), "conv_up1": (nf, nf), "conv_up2": (nf, nf), "conv_hr": (nf, nf), "conv_last": (3, nf)})
    sd = {}
    for name, (cout, cin) in convs.items():
        scale = 0.1 * (cin * 9) ** -0.5 if ".rdb" in name else (cin * 9) ** -0.5
        sd[name + ".weight"] = _random((cout, cin, 3, 3), g, dtype, scale, device)
        sd[name + ".bias"] = torch.zeros(cout, dtype=dtype, device=device)
    return sd


def latent_controlnet_state_dict(size="tiny", seed=0, dtype=torch.float32, device="cpu") -> dict:
    """The DiffBIR/DoSSR ControlNet: ComfyUI's (= lllyasviel's) ControlNet keys with an 8-channel first conv
    and no input_hint_block."""
    from comfy.cldm.cldm import ControlNet
    import comfy.ops

    config = unet_config("sd21", size)
    for key in ("out_channels", "transformer_depth_output", "use_temporal_resblock", "use_temporal_attention"):
        config.pop(key)
    config["in_channels"] = 8
    net = ControlNet(hint_channels=4, **config, device=device, operations=comfy.ops.disable_weight_init)
    if device != "meta":
        randomize_(net, seed)
    return {k: v.to(dtype) for k, v in net.state_dict().items() if not k.startswith("input_hint_block.")}


def dossr_state_dict(size="tiny", seed=0, dtype=torch.float32, device="cpu") -> dict:
    """dossr_default.ckpt's layout: every official prefix, plus the LDM schedule buffers. device="meta":
    the layout alone (zeros_like_layout makes it a file's worth of zeros)."""
    sd = {k: v.to(dtype) for k, v in unet_state_dict("sd21", size, "eps", seed, device, dtype).items()}
    parts = {
        "first_stage_model.": vae_state_dict(size, seed + 1, dtype, device),
        "cond_stage_model.model.": openclip_text_state_dict(size, seed + 2, dtype, device),
        "control_model.": latent_controlnet_state_dict(size, seed + 3, dtype, device),
        "preprocess_model.": rrdbnet_state_dict(size, seed + 4, dtype, device),
    }
    cond_encoder = vae_state_dict(size, seed + 5, dtype, device)  # its own weights, not the VAE's
    parts["cond_encoder."] = {k: v for k, v in cond_encoder.items() if k.startswith(("encoder.", "quant_conv."))}
    for prefix, weights in parts.items():
        sd.update({prefix + k: v for k, v in weights.items()})
    for name in LDM_SCHEDULE_BUFFERS:
        sd[name] = torch.linspace(0.001, 0.999, 1000, dtype=torch.float32, device=device)
    return sd


def write_torch_checkpoint(path, sd: dict, wrap: str = "state_dict"):
    """As the official training code saves it: torch.save of {'state_dict': ...}, or 'module.'-prefixed."""
    if wrap == "module":
        sd = {"module." + k: v for k, v in sd.items()}
    torch.save({"state_dict": sd} if wrap == "state_dict" else sd, str(path))
    return path


def tiny_dossr_checkpoint(seed: int = 0) -> pathlib.Path:
    return cached_checkpoint(f"tiny_dossr_{seed}", dossr_state_dict, size="tiny", seed=seed)




SD21_BASE_FILE = "v2-1_512-ema-pruned.safetensors"  # SD 2.1-base's released single-file name


def sd21_base_state_dict(size="tiny", seed=0, dtype=torch.float32) -> dict:
    """An SD 2.1-base single-file checkpoint (UNet, VAE, OpenCLIP text tower) as ComfyUI's stock
    Load Checkpoint reads it. The VAE is real-size for "tiny"; the "stand-in" one is 32 wide, which
    ComfyUI's VAE class (built at the released width whatever the weights say) loads through the
    test-size VAE hook, as the narrow UNet and text tower load through the test-size config; both
    are registered by support/test_size_models.py. At the TASR workflow's 768x512 the real-size VAE
    took a minute per encode + decode on 2 cores."""
    sd = unet_state_dict("sd21", size, "eps", seed, dtype=dtype)
    parts = {"first_stage_model.": vae_state_dict("real" if size == "tiny" else size, seed + 1, dtype),
             "cond_stage_model.model.": openclip_text_state_dict(size, seed + 2, dtype)}
    for prefix, weights in parts.items():
        sd.update({prefix + k: v for k, v in weights.items()})
    return sd


def sd21_base_checkpoint(size="tiny", seed=0) -> pathlib.Path:
    return cached_checkpoint(f"{size}_sd21_base_{seed}", sd21_base_state_dict, size=size, seed=seed)


def link_into(folder: pathlib.Path, name: str, cached: pathlib.Path) -> pathlib.Path:
    """Put a cached checkpoint into a model folder under the file name a workflow uses (a link,
    so large files are not copied per test session)."""
    target = folder / name
    if not target.exists():
        target.symlink_to(cached)
    return target


def write_shipped_models(model_dirs):
    """The DoSSR checkpoint the shipped DoSSR/TSS workflows name (official layout), and an SD 2.1-base
    for stock Load Checkpoint (the TADSR and TASR workflows start from it); both at the stand-in size."""
    target = model_dirs["dossr"] / "dossr_default.ckpt"
    if not target.exists():
        write_torch_checkpoint(target, dossr_state_dict("stand-in"))
    link_into(model_dirs["checkpoints"], SD21_BASE_FILE, sd21_base_checkpoint("stand-in"))
