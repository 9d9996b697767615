"""TADSR's released files (SPEC §5) with random weights, in the official layouts, tiny or real size.

- `time_vae/`: diffusers TimeAwareAutoencoderKL (zty557/TADSR diffusers/models/autoencoders/
  time_autoencoder_kl.py + vae.py): config.json and diffusion_pytorch_model.safetensors or .bin with
  diffusers key names (down_blocks / resnets / conv_shortcut / mid_block.attentions.0.to_q ...),
  `encoder.time_embedding.linear_{1,2}` and `time_emb_proj` in every encoder resnet.
- `tadsr.pkl` (tadsr.py save_model): torch.save of a dict with state_dict_unet (peft keys
  `M.lora_A.<adapter>.weight` / `M.lora_B.<adapter>.weight` for the adapters default_encoder /
  default_decoder / default_others, plus `conv_in.base_layer.{weight,bias}`), state_dict_vae
  (`M.lora_{A,B}.default_encoder.weight`), state_dict_vae_time, the four module-name lists and
  rank_unet / rank_vae (4). The LoRA targets follow the official selection rules below.

The diffusers layout is written here from diffusers' own structure (not from ComfyUI's conversion
table), so loading it through the pack's converter is a real check of that converter.
"""
import json
import pathlib

import torch

from . import ckpt_factory as cf

RANK = 4  # the released model's rank_unet / rank_vae
VAE_CH = cf.VAE_CH  # real 128, tiny 32
TIME_PROJ, TIME_EMB = 128, 256
UNET_ADAPTER_LISTS = {"default_encoder": "unet_lora_encoder_modules", "default_decoder": "unet_lora_decoder_modules",
                      "default_others": "unet_lora_others_modules"}


# --- time_vae/ ------------------------------------------------------------------------------------

def time_vae_config(size: str = "tiny") -> dict:
    ch = VAE_CH[size]
    return {"_class_name": "TimeAwareAutoencoderKL", "_diffusers_version": "0.25.1", "act_fn": "silu",
            "block_out_channels": [ch, 2 * ch, 4 * ch, 4 * ch], "down_block_types": ["DownEncoderBlock2D"] * 4,
            "force_upcast": True, "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
            "out_channels": 3, "sample_size": 768, "scaling_factor": 0.18215, "time_scale_shift": "scale_shift",
            "up_block_types": ["UpDecoderBlock2D"] * 4}


def time_vae_shapes(size: str = "tiny") -> dict[str, tuple]:
    """Every key of a diffusers TimeAwareAutoencoderKL with the SD VAE config, and its shape."""
    bo = time_vae_config(size)["block_out_channels"]
    shapes = {}

    def conv(name, cin, cout, k=3):
        shapes[name + ".weight"], shapes[name + ".bias"] = (cout, cin, k, k), (cout,)

    def norm(name, c):
        shapes[name + ".weight"], shapes[name + ".bias"] = (c,), (c,)

    def linear(name, cin, cout):
        shapes[name + ".weight"], shapes[name + ".bias"] = (cout, cin), (cout,)

    def resnet(name, cin, cout, time):
        norm(name + ".norm1", cin), conv(name + ".conv1", cin, cout), norm(name + ".norm2", cout)
        conv(name + ".conv2", cout, cout)
        if cin != cout:
            conv(name + ".conv_shortcut", cin, cout, 1)
        if time:
            linear(name + ".time_emb_proj", TIME_EMB, 2 * cout)

    def mid(prefix, c, time):
        resnet(prefix + ".mid_block.resnets.0", c, c, time)
        norm(prefix + ".mid_block.attentions.0.group_norm", c)
        for proj in ("to_q", "to_k", "to_v", "to_out.0"):
            linear(f"{prefix}.mid_block.attentions.0.{proj}", c, c)
        resnet(prefix + ".mid_block.resnets.1", c, c, time)

    conv("encoder.conv_in", 3, bo[0])
    linear("encoder.time_embedding.linear_1", TIME_PROJ, TIME_EMB)
    linear("encoder.time_embedding.linear_2", TIME_EMB, TIME_EMB)
    cin = bo[0]
    for i, cout in enumerate(bo):
        for j in range(2):
            resnet(f"encoder.down_blocks.{i}.resnets.{j}", cin if j == 0 else cout, cout, time=True)
        if i < 3:
            conv(f"encoder.down_blocks.{i}.downsamplers.0.conv", cout, cout)
        cin = cout
    mid("encoder", bo[-1], time=True)
    norm("encoder.conv_norm_out", bo[-1]), conv("encoder.conv_out", bo[-1], 8)
    conv("quant_conv", 8, 8, 1), conv("post_quant_conv", 4, 4, 1)
    conv("decoder.conv_in", 4, bo[-1])
    mid("decoder", bo[-1], time=False)
    rev = list(reversed(bo))
    prev = rev[0]
    for i, cout in enumerate(rev):
        for j in range(3):
            resnet(f"decoder.up_blocks.{i}.resnets.{j}", prev if j == 0 else cout, cout, time=False)
        if i < 3:
            conv(f"decoder.up_blocks.{i}.upsamplers.0.conv", cout, cout)
        prev = cout
    norm("decoder.conv_norm_out", bo[0]), conv("decoder.conv_out", bo[0], 3)
    return shapes


def random_tensors(shapes: dict, seed: int, device="cpu") -> dict:
    """Fan-in scaled weights, near-one norm scales, small biases (as ckpt_factory.randomize_)."""
    if device == "meta":
        return {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in shapes.items():
        if len(shape) >= 2:
            out[k] = torch.randn(shape, generator=g) / (torch.tensor(shape[1:]).prod().item() ** 0.5)
        elif "norm" in k and k.endswith("weight"):
            out[k] = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            out[k] = 0.02 * torch.randn(shape, generator=g)
    return out


def time_vae_state_dict(size: str = "tiny", seed: int = 0, time: str = "random", device="cpu") -> dict:
    """time="zero" zeroes the time path (then the TAE is the plain SD encoder)."""
    sd = random_tensors(time_vae_shapes(size), seed, device)
    if time == "zero":
        sd.update({k: torch.zeros_like(v) for k, v in sd.items() if "time" in k})
    return sd


def write_time_vae(folder, size: str = "tiny", seed: int = 0, fmt: str = "safetensors", sd: dict | None = None):
    import safetensors.torch

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(time_vae_config(size), indent=2))
    sd = time_vae_state_dict(size, seed) if sd is None else sd
    if fmt == "safetensors":
        safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "diffusion_pytorch_model.safetensors"))
    else:
        torch.save(sd, str(folder / "diffusion_pytorch_model.bin"))
    return folder


# --- tadsr.pkl ------------------------------------------------------------------------------------

def vae_lora_modules(vae_keys) -> list[str]:
    """tadsr.initialize_vae_time's rule: encoder weights matching conv/attention names, no bias,
    norm or time layers, plus quant_conv (not post_quant_conv)."""
    grep = ["conv1", "conv2", "conv_in", "conv_shortcut", "conv", "conv_out", "to_k", "to_q", "to_v", "to_out.0"]
    found = []
    for n in vae_keys:
        if "bias" in n or "norm" in n:
            continue
        for pattern in grep:
            if pattern in n and "encoder" in n and "time" not in n:
                found.append(n.replace(".weight", ""))
            elif "quant_conv" in n and "post_quant_conv" not in n:
                found.append(n.replace(".weight", ""))
    return list(dict.fromkeys(found))


def unet_lora_modules(unet_keys) -> dict[str, list[str]]:
    """tadsr.initialize_unet's rule, per adapter (first matching pattern decides)."""
    grep = ["to_k", "to_q", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_in", "conv_shortcut", "conv_out",
            "proj_out", "proj_in", "ff.net.2", "ff.net.0.proj"]
    out = {a: [] for a in UNET_ADAPTER_LISTS}
    for n in unet_keys:
        if "bias" in n or "norm" in n:
            continue
        for pattern in grep:
            if pattern in n and ("down_blocks" in n or "conv_in" in n):
                out["default_encoder"].append(n.replace(".weight", ""))
                break
            elif pattern in n and ("up_blocks" in n or "conv_out" in n):
                out["default_decoder"].append(n.replace(".weight", ""))
                break
            elif pattern in n:
                out["default_others"].append(n.replace(".weight", ""))
                break
    return out


def diffusers_unet_shapes(size: str = "tiny") -> dict[str, tuple]:
    """diffusers UNet2DConditionModel keys of SD 2.1 (via ComfyUI's diffusers map) and their shapes."""
    import comfy.utils

    unet = cf.build_unet("sd21", size, device="meta")
    shapes = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    # sorted: ComfyUI builds this map from sets, whose order changes with PYTHONHASHSEED, and the random
    # LoRA weights are drawn in this order (unsorted, every process made a different stand-in)
    pairs = sorted(comfy.utils.unet_to_diffusers(cf.unet_config("sd21", size)).items())
    return {d: shapes[c] for d, c in pairs if c in shapes}


def lora_pair(weight_shape, g, device, scale=0.5):
    """(lora_A, lora_B) shapes as peft makes them: A carries the kernel, B is 1x1 (conv) or r-wide."""
    a_shape = (RANK, weight_shape[1], *weight_shape[2:])
    b_shape = (weight_shape[0], RANK, *([1, 1] if len(weight_shape) == 4 else []))
    if device == "meta":
        return torch.empty(a_shape, device="meta"), torch.empty(b_shape, device="meta")
    a = torch.randn(a_shape, generator=g) / RANK  # peft "gaussian" init: std 1/r
    b = scale * torch.randn(b_shape, generator=g) / (RANK * torch.tensor(weight_shape[1:]).prod().item()) ** 0.5
    return a, b


def tadsr_pkl_dict(size: str = "tiny", seed: int = 0, device="cpu") -> dict:
    g = torch.Generator().manual_seed(seed)
    unet_shapes = diffusers_unet_shapes(size)
    unet_lists = unet_lora_modules(unet_shapes)
    state_dict_unet = {}
    for adapter, modules in unet_lists.items():
        for m in modules:
            a, b = lora_pair(unet_shapes[m + ".weight"], g, device)
            state_dict_unet[f"{m}.lora_A.{adapter}.weight"] = a
            state_dict_unet[f"{m}.lora_B.{adapter}.weight"] = b
    conv_in = random_tensors({"conv_in.base_layer.weight": unet_shapes["conv_in.weight"],
                              "conv_in.base_layer.bias": unet_shapes["conv_in.bias"]}, seed + 1, device)
    state_dict_unet.update(conv_in)
    vae_shapes = time_vae_shapes(size)
    vae_modules = vae_lora_modules(vae_shapes)
    state_dict_vae = {}
    for m in vae_modules:
        a, b = lora_pair(vae_shapes[m + ".weight"], g, device)
        state_dict_vae[f"{m}.lora_A.default_encoder.weight"] = a
        state_dict_vae[f"{m}.lora_B.default_encoder.weight"] = b
    time_sd = {k: v for k, v in time_vae_state_dict(size, seed + 2, device=device).items() if "time" in k}
    return {"state_dict_vae_time": time_sd, "vae_lora_encoder_modules": vae_modules,
            "unet_lora_encoder_modules": unet_lists["default_encoder"],
            "unet_lora_decoder_modules": unet_lists["default_decoder"],
            "unet_lora_others_modules": unet_lists["default_others"], "rank_unet": RANK, "rank_vae": RANK,
            "state_dict_unet": state_dict_unet, "state_dict_vae": state_dict_vae}


def write_tadsr_pkl(path, size: str = "tiny", seed: int = 0, sd: dict | None = None):
    torch.save(tadsr_pkl_dict(size, seed) if sd is None else sd, str(path))
    return pathlib.Path(path)


def write_shipped_models(model_dirs):
    """tadsr.pkl + time_vae/ in models/tadsr, fitting the stand-in SD 2.1-base that ckpt_factory ships."""
    folder = model_dirs["tadsr"]
    if not (folder / "tadsr.pkl").exists():
        write_tadsr_pkl(folder / "tadsr.pkl", size="stand-in")
    if not (folder / "time_vae" / "config.json").exists():
        write_time_vae(folder / "time_vae")
