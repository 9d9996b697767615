"""Build ComfyUI MODEL / VAE / CLIP / UPSCALE_MODEL objects from SD-family weights in the original
LDM layouts, reading every size from the weights.

The UNet is matched against ComfyUI's own list of released models (`comfy.supported_models`), as
ComfyUI's checkpoint loader does; the VAE, text encoder and upscaler read their sizes from the
weights. (The test suite registers its small test sizes in that list: tests/support/test_size_models.py.)
"""
import torch

from ..clear_errors import CheckpointError
from .checkpoint_io import check_keys


def build_unet(unet_sd: dict, model_type=None):
    """A ModelPatcher around ComfyUI's BaseModel for an SD UNet state dict (prefix already removed)."""
    import comfy.model_base
    import comfy.model_detection
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models
    import comfy.utils

    unet_config = comfy.model_detection.detect_unet_config(unet_sd, "")
    if unet_config is None:
        raise CheckpointError("no SD UNet found (input_blocks.0.0.weight is missing)")
    model_config = next((c(unet_config) for c in comfy.supported_models.models if c.matches(unet_config, unet_sd)), None)
    if model_config is None:
        raise CheckpointError(f"the UNet is not a released SD1.x/SD2.x/SDXL size (model_channels "
                              f"{unet_config.get('model_channels')}, context_dim {unet_config.get('context_dim')})")
    if model_type is None:
        model_type = model_config.model_type(unet_sd, "")

    params = comfy.utils.calculate_parameters(unet_sd)
    load_device = mm.get_torch_device()
    dtype = set_comfy_inference_dtype(model_config, params, load_device)
    model = comfy.model_base.BaseModel(model_config, model_type=model_type, device=mm.unet_inital_load_device(params, dtype))
    check_keys("UNet", model.diffusion_model, unet_sd)
    model.diffusion_model.load_state_dict(unet_sd)
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=mm.unet_offload_device())


def set_comfy_inference_dtype(model_config, params: int, load_device):
    """The weight dtype and per-op cast ComfyUI's own loaders give a diffusion network (--fp16-unet,
    --bf16-unet, or what the GPU supports, among model_config.supported_inference_dtypes), set on
    model_config; returns the weight dtype."""
    import comfy.model_management as mm

    supported = list(model_config.supported_inference_dtypes)
    dtype = mm.unet_dtype(model_params=params, supported_dtypes=supported)
    model_config.set_inference_dtype(dtype, mm.unet_manual_cast(dtype, load_device, supported))
    return dtype


def vae_ddconfig(vae_sd: dict) -> tuple[dict, int]:
    """LDM AutoencoderKL config read off the encoder weights: (ddconfig, embed_dim)."""
    ch = vae_sd["encoder.conv_in.weight"].shape[0]
    levels = 1 + max(int(k.split(".")[2]) for k in vae_sd if k.startswith("encoder.down."))
    blocks = 1 + max(int(k.split(".")[4]) for k in vae_sd if k.startswith("encoder.down.0.block."))
    mult = [vae_sd[f"encoder.down.{i}.block.0.conv2.weight"].shape[0] // ch for i in range(levels)]
    z = vae_sd["encoder.conv_out.weight"].shape[0] // 2
    ddconfig = {"double_z": True, "z_channels": z, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": ch,
                "ch_mult": mult, "num_res_blocks": blocks, "attn_resolutions": [], "dropout": 0.0}
    return ddconfig, vae_sd["quant_conv.weight"].shape[0] // 2


def build_vae(vae_sd: dict, component: str = "VAE"):
    """ComfyUI VAE for LDM AutoencoderKL weights (`first_stage_model.` removed)."""
    import comfy.ldm.models.autoencoder
    import comfy.sd

    try:
        ddconfig, embed_dim = vae_ddconfig(vae_sd)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"the {component} weights are incomplete: no {e}") from None
    with torch.device("meta"):
        reference = comfy.ldm.models.autoencoder.AutoencoderKL(ddconfig=ddconfig, embed_dim=embed_dim)
    check_keys(component, reference, vae_sd)
    return comfy.sd.VAE(sd=vae_sd, config={"params": {"ddconfig": ddconfig, "embed_dim": embed_dim}})


def openclip_text_config(te_sd: dict) -> dict:
    """HF CLIPTextModel config for OpenCLIP text-tower weights (SD 2.x: ViT-H/14, 1024 wide, 24 layers)."""
    width = te_sd["token_embedding.weight"].shape[1]
    return {
        "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0,
        "eos_token_id": 49407, "hidden_act": "gelu", "hidden_size": width, "initializer_factor": 1.0,
        "initializer_range": 0.02, "intermediate_size": te_sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        "layer_norm_eps": 1e-05, "max_position_embeddings": te_sd["positional_embedding"].shape[0],
        "model_type": "clip_text_model", "num_attention_heads": width // 64,
        "num_hidden_layers": 1 + max(int(k.split(".")[2]) for k in te_sd if k.startswith("transformer.resblocks.")),
        "pad_token_id": 1, "projection_dim": te_sd["text_projection"].shape[1], "torch_dtype": "float32",
        "vocab_size": te_sd["token_embedding.weight"].shape[0],
    }


def build_sd2_text_encoder(te_sd: dict):
    """ComfyUI CLIP for SD 2.x's OpenCLIP text encoder (penultimate layer), from `cond_stage_model.model.` weights."""
    import comfy.sd
    import comfy.sd1_clip
    import comfy.supported_models_base
    import comfy.text_encoders.sd2_clip
    import comfy.utils
    import folder_paths

    try:
        config = openclip_text_config(te_sd)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"the text encoder weights are incomplete: no {e}") from None

    class OpenCLIPTextEncoder(comfy.sd1_clip.SDClipModel):
        def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
            super().__init__(device=device, layer="hidden", layer_idx=-2, textmodel_json_config=config, dtype=dtype,
                             special_tokens={"start": 49406, "end": 49407, "pad": 0}, return_projected_pooled=True,
                             model_options=model_options)

    class SD2TextEncoder(comfy.sd1_clip.SD1ClipModel):
        def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
            super().__init__(device=device, dtype=dtype, model_options=model_options, clip_name="h",
                             clip_model=OpenCLIPTextEncoder, **kwargs)

    sd = comfy.utils.clip_text_transformers_convert({"clip_h." + k: v for k, v in te_sd.items()}, "clip_h.", "clip_h.transformer.")
    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.sd2_clip.SD2Tokenizer, SD2TextEncoder)
    clip = comfy.sd.CLIP(target, embedding_directory=folder_paths.get_folder_paths("embeddings"),
                         parameters=comfy.utils.calculate_parameters(sd))
    # logit_scale belongs to the image-text head, which SD never uses
    check_keys("text encoder", clip.cond_stage_model, sd, ignore=("clip_h.logit_scale",))
    clip.load_sd(sd, full_model=True)
    return clip


def build_upscale_model(esrgan_sd: dict, component: str = "ESRGAN preprocessor"):
    """spandrel ImageModelDescriptor (ComfyUI's UPSCALE_MODEL) for BasicSR RRDBNet weights."""
    from spandrel import ImageModelDescriptor, ModelLoader

    import comfy.model_management as mm
    import comfy.model_patcher

    try:
        model = ModelLoader().load_from_state_dict(esrgan_sd).eval()
    except Exception as e:
        raise CheckpointError(f"the {component} weights are not a loadable ESRGAN: {str(e)[:200]}") from None
    if not isinstance(model, ImageModelDescriptor):
        raise CheckpointError(f"the {component} weights are not a single-image upscaler")
    # What ComfyUI's own Load Upscale Model adds since July 2026 (0.3.75 does not): stock Upscale Image (using Model)
    # moves the network through this patcher, so the pack's UPSCALE_MODEL must carry one too.
    model.patcher = comfy.model_patcher.ModelPatcher(model.model, load_device=mm.get_torch_device(),
                                                     offload_device=mm.unet_offload_device())
    return model
