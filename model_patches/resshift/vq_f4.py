"""ResShift's VQGAN f4 autoencoder (`autoencoder_vq_f4.pth`, ResShift `ldm/models/autoencoder.py`
VQModelTorch) as a ComfyUI VAE that stock VAE Encode / Decode and their tiled versions accept.

As the official code (docs/resshift.md §6): encode = quant_conv(encoder(x)) with NO quantization (the diffusion
runs on the continuous latent); decode snaps each latent vector to its nearest codebook entry, then
post_quant_conv and the decoder. Scale factor 1.0. The encoder/decoder are ComfyUI's LDM ones, which
match the official layout key for key.
"""
import torch
from torch import nn

import comfy.ops
from comfy.ldm.modules.diffusionmodules.model import Decoder, Encoder

from ..interrupt import make_vae_interruptible

# configs/realsr_swinunet_realesrgan256*.yaml, autoencoder.params
REAL_CONFIG = {"embed_dim": 3, "n_embed": 8192, "ddconfig": {
    "double_z": False, "z_channels": 3, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
    "ch_mult": [1, 2, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}}


def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Each latent vector (channel dim 1) replaced by its nearest codebook row in squared distance."""
    b, c, h, w = z.shape
    flat = z.permute(0, 2, 3, 1).reshape(-1, c).float()  # distances in fp32 even for an fp16 VAE
    book = codebook.float()
    dist = flat.pow(2).sum(1, keepdim=True) + book.pow(2).sum(1)[None] - 2 * flat @ book.t()
    return codebook[dist.argmin(1)].to(z.dtype).view(b, h, w, c).permute(0, 3, 1, 2)


class VQModelF4(nn.Module):
    def __init__(self, ddconfig: dict, n_embed: int, embed_dim: int):
        super().__init__()
        ops = comfy.ops.disable_weight_init
        self.encoder = Encoder(**ddconfig)
        self.decoder = Decoder(**ddconfig)
        self.quantize = nn.Module()
        self.quantize.embedding = nn.Embedding(n_embed, embed_dim)
        self.quant_conv = ops.Conv2d(ddconfig["z_channels"], embed_dim, 1)
        self.post_quant_conv = ops.Conv2d(embed_dim, ddconfig["z_channels"], 1)
        # Cancel within seconds on large or long-strip images: a check per layer, the mid attention chunked
        make_vae_interruptible(self)

    def encode(self, x):
        return self.quant_conv(self.encoder(x))

    def decode(self, z, quantize: bool = True):
        if quantize:  # the codebook is read directly, not through a layer: partial loading leaves it offloaded
            z = nearest_code(z, self.quantize.embedding.weight.to(z.device))
        return self.decoder(self.post_quant_conv(z))


def vq_config_from_weights(sd: dict) -> dict:
    """The VQModelF4 config read off the weights (any size with the official structure)."""
    ch = sd["encoder.conv_in.weight"].shape[0]
    levels = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.down."))
    blocks = 1 + max(int(k.split(".")[4]) for k in sd if k.startswith("encoder.down.0.block."))
    mult = [sd[f"encoder.down.{i}.block.0.conv2.weight"].shape[0] // ch for i in range(levels)]
    n_embed, embed_dim = sd["quantize.embedding.weight"].shape
    ddconfig = {**REAL_CONFIG["ddconfig"], "z_channels": sd["encoder.conv_out.weight"].shape[0], "ch": ch,
                "ch_mult": mult, "num_res_blocks": blocks}
    return {"ddconfig": ddconfig, "n_embed": n_embed, "embed_dim": embed_dim}


def build_vq_f4_vae(module: VQModelF4):
    """A ComfyUI VAE around the VQ model: 4x down/up, 3 latent channels, images in [-1, 1]."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.sd

    vae = comfy.sd.VAE(sd={"pixel_space_vae": torch.tensor(1.0)})  # ComfyUI's generic VAE plumbing
    vae.first_stage_model = module.eval()
    vae.downscale_ratio = vae.upscale_ratio = 2 ** (len(module.encoder.down) - 1)
    vae.latent_channels = module.quant_conv.weight.shape[0]
    ch = module.encoder.conv_in.weight.shape[0]
    # like ComfyUI's estimates for LDM autoencoders, scaled by the width (the decoder runs at full resolution)
    vae.memory_used_encode = lambda shape, dtype: 1767 * (ch / 128) * shape[2] * shape[3] * mm.dtype_size(dtype)
    vae.memory_used_decode = lambda shape, dtype: 2178 * (ch / 128) * shape[2] * shape[3] * 16 * mm.dtype_size(dtype)
    vae.working_dtypes = [torch.float16, torch.bfloat16, torch.float32]  # ResShift runs it in fp16 (use_fp16)
    vae.vae_dtype = mm.vae_dtype(vae.device, vae.working_dtypes)
    module.to(vae.vae_dtype)
    vae.patcher = comfy.model_patcher.ModelPatcher(module, load_device=vae.device, offload_device=mm.vae_offload_device())
    vae.size = None
    vae.model_size()
    return vae
