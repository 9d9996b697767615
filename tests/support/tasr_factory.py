"""TASR checkpoints (SPEC §4) with random weights in the official `tasr_v1.pth` layout.

tasr_v1.pth is torch.save({"checkpoint_controlnet": ControlNet weights, "checkpoint_adapter": the 13
adapters' weights}). The ControlNet is built with ComfyUI's ControlNet class (its keys are the
official ones, as DoSSR's checkpoint shows), the adapters with the pack's TASRAdapters, whose keys
are the official adapter_list's own: `{k}.0.<layer>`. "real" has SD 2.1-base's shapes (build it on
device="meta" to check the layout without 4.5 GB of memory); "tiny" keeps every key with 64-wide
channels, where every adapter keeps the official group counts (GroupNorm(16, C/4) needs C/4 divisible
by 16). The shipped tiny tasr_v1.pth instead fits ckpt_factory's 32-wide test-size SD 2.1-base that
stock Load Checkpoint reads (`width=`), where four adapters use fewer groups (adapters.norm_groups).
"""
import copy

import torch

from . import ckpt_factory

TINY_MODEL_CHANNELS = 64
CONTROLNET, ADAPTERS = "checkpoint_controlnet", "checkpoint_adapter"


def sd21_config(size: str = "tiny", width: int | None = None) -> dict:
    """SD 2.1-base's UNet config; tiny: 64 wide (or `width`), ckpt_factory's tiny heads and text context."""
    config = ckpt_factory.unet_config("sd21", size)
    if size != "real":
        config["model_channels"] = width or TINY_MODEL_CHANNELS
    return config


def sd21_unet_state_dict(size: str = "tiny", seed: int = 0) -> dict:
    """An SD 2.1 UNet (bare keys) that the TASR adapters of the same size fit."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    import comfy.ops

    unet = UNetModel(**sd21_config(size), operations=comfy.ops.disable_weight_init)
    return ckpt_factory.randomize_(unet, seed).state_dict()


def controlnet_state_dict(size: str = "tiny", seed: int = 0, device: str = "cpu", width: int | None = None) -> dict:
    """TASR's ControlNet: SD 2.1's encoder half with an 8-channel first conv (x_t and the hint latent)."""
    from comfy.cldm.cldm import ControlNet
    import comfy.ops

    config = copy.deepcopy(sd21_config(size, width))
    for key in ("out_channels", "transformer_depth_output", "use_temporal_resblock", "use_temporal_attention"):
        config.pop(key)
    config["in_channels"] = 8
    net = ControlNet(hint_channels=4, **config, device=device, operations=comfy.ops.disable_weight_init)
    if device != "meta":
        ckpt_factory.randomize_(net, seed)
    return {k: v for k, v in net.state_dict().items() if not k.startswith("input_hint_block.")}


def adapter_channels(size: str = "tiny", width: int | None = None) -> list[int]:
    from timeaware_sr.model_patches.tasr.adapters import adapter_channels as channels

    config = sd21_config(size, width)
    return channels(config["model_channels"], config["channel_mult"], config["num_res_blocks"])


def adapters_module(size: str = "tiny", seed: int = 0, init: str = "random", device: str = "cpu", width: int | None = None):
    """TASRAdapters. init="random": every weight random (alpha spans roughly (0.3, 1.7));
    init="zero": random except the zero-initialised last conv, as training starts (alpha = 1)."""
    from timeaware_sr.model_patches.tasr.adapters import TASRAdapters
    import comfy.ops

    emb = 4 * sd21_config(size, width)["model_channels"]
    adapters = TASRAdapters(adapter_channels(size, width), emb, device=device, operations=comfy.ops.disable_weight_init)
    if device == "meta":
        return adapters
    ckpt_factory.randomize_(adapters, seed)
    with torch.no_grad():
        for pair in adapters:
            last = pair[0].out_layers[4]
            if init == "zero":
                last.weight.zero_()
                last.bias.zero_()
            elif init == "random":
                last.weight.mul_(4.0)  # a gate that varies visibly across pixels and timesteps
            else:
                raise ValueError(f"init must be 'random' or 'zero', got {init!r}")
    return adapters


def tasr_state_dict(size: str = "tiny", seed: int = 0, init: str = "random", device: str = "cpu",
                    width: int | None = None) -> dict:
    """The official nested layout: {"checkpoint_controlnet": {...}, "checkpoint_adapter": {...}}."""
    return {CONTROLNET: controlnet_state_dict(size, seed, device, width),
            ADAPTERS: adapters_module(size, seed + 1, init, device, width).state_dict()}


def flat(sd: dict) -> dict:
    """The nested layout flattened as a .safetensors copy holds it: `checkpoint_controlnet.<key>`, ..."""
    return {f"{part}.{k}": v for part, weights in sd.items() for k, v in weights.items()}


def write_tasr(path, sd: dict):
    """Save like the official code (torch.save of the nested dict), or flattened for .safetensors."""
    import safetensors.torch

    if str(path).endswith(".safetensors"):
        safetensors.torch.save_file({k: v.contiguous() for k, v in flat(sd).items()}, str(path))
    else:
        torch.save(sd, str(path))
    return path


def write_shipped_models(model_dirs):
    """tasr_v1.pth for the shipped TASR workflows (stand-in size, random adapters, fitting the stand-in SD
    2.1-base that ckpt_factory ships for stock Load Checkpoint), and the BSRNet x4 preprocessor (BasicSR
    RRDBNet) where the stock Upscale Model Loader looks, if that folder is served."""
    target = model_dirs["tasr"] / "tasr_v1.pth"
    if not target.exists():
        width = ckpt_factory.unet_config("sd21", "stand-in")["model_channels"]
        write_tasr(target, tasr_state_dict("stand-in", width=width))
    if "upscale_models" in model_dirs:
        bsrnet = model_dirs["upscale_models"] / "BSRNet.pth"
        if not bsrnet.exists():
            torch.save(ckpt_factory.rrdbnet_state_dict("tiny", seed=5), str(bsrnet))
