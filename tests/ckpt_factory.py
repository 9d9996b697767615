"""Checkpoints with random weights in the real released key layouts, for tests.

Each layout is built from the same network class the real weights load into (ComfyUI's own
`openaimodel.UNetModel` for the SD family), so its keys are the real keys by construction.
"tiny" variants keep every key and the real block structure but use narrow channels; "real"
variants have the released shapes. Files are cached under a temp folder keyed by the layout
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
# Tiny: same keys, narrow channels (GroupNorm needs multiples of 32). Context and ADM widths stay
# real so ComfyUI's own conditioning (CLIP tokens, SDXL size embeddings) still fits.
TINY_OVERRIDES = {
    "sd15": dict(model_channels=32),
    "sd21": dict(model_channels=32, num_head_channels=16),
    "sdxl": dict(model_channels=32, num_head_channels=16),
}


def unet_config(arch: str, size: str = "tiny") -> dict:
    config = copy.deepcopy(UNET_CONFIGS[arch])
    if size == "tiny":
        config.update(TINY_OVERRIDES[arch])
    elif size != "real":
        raise ValueError(f"size must be 'tiny' or 'real', got {size!r}")
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
        tmp = path.with_suffix(".partial")
        sd = {k: v.contiguous() for k, v in make_state_dict(**params).items()}
        safetensors.torch.save_file(sd, str(tmp))
        tmp.rename(path)
    return path


def tiny_unet_checkpoint(arch: str, prediction: str = "eps", seed: int = 0) -> pathlib.Path:
    return cached_checkpoint(f"tiny_{arch}_{prediction}_unet", unet_state_dict, arch=arch, size="tiny",
                             prediction=prediction, seed=seed)
