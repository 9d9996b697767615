"""TADSR's time-aware VAE encoder (TAE, docs/tadsr.md §5): ComfyUI's own SD VAE encoder plus a time path.

The time path is the only new math: t -> sinusoidal(128, cos first) -> Linear, SiLU, Linear (256),
and in every encoder ResnetBlock (4 levels x 2 blocks + the 2 mid blocks) a Linear(SiLU(temb)) ->
(scale, shift) that modulates norm2's output: norm2(h) * (1 + scale) + shift, before SiLU and conv2
(diffusers' "scale_shift"). Everything else is ComfyUI's stock `Encoder`, run by its own forward:
the modulation is a forward hook on each block's norm2, so the stock blocks and key names stay.
"""
import torch

from comfy.ldm.modules.diffusionmodules.model import Encoder, ResnetBlock, ops
from comfy.ldm.modules.diffusionmodules.util import timestep_embedding

from ...samplers.tadsr_one_step import DEFAULT_T_S  # what stock VAE Encode uses on this VAE
from ..interrupt import make_vae_interruptible

TIME_PROJ_DIM = 128  # diffusers Timesteps(max(128, block_out_channels[0]))
TIME_EMBED_DIM = 256  # TimeAwareEncoder's temb_channels


class TimestepMLP(torch.nn.Module):
    """diffusers TimestepEmbedding: linear_1, SiLU, linear_2 (its key names)."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear_1 = ops.Linear(in_dim, dim)  # ComfyUI's VAE ops: cast and streamed like its other layers
        self.linear_2 = ops.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(torch.nn.functional.silu(self.linear_1(x)))


class TimeAwareEncoder(Encoder):
    """ComfyUI's SD VAE Encoder whose ResnetBlocks also see the timestep t_s."""

    def __init__(self, time_proj_dim: int = TIME_PROJ_DIM, time_embed_dim: int = TIME_EMBED_DIM, **ddconfig):
        super().__init__(**ddconfig)
        self.time_proj_dim = time_proj_dim
        self.time_embedding = TimestepMLP(time_proj_dim, time_embed_dim)
        self.timestep = DEFAULT_T_S  # used when called without t (stock VAE Encode)
        self._modulation = None  # {block: (scale, shift)} during one forward call
        for block in self.time_blocks():
            block.time_emb_proj = ops.Linear(time_embed_dim, 2 * block.out_channels)
            block.norm2.register_forward_hook(self._scale_shift_hook(block))
        make_vae_interruptible(self)  # Cancel within seconds on a large image: a check per layer, attention chunked

    def time_blocks(self) -> list[ResnetBlock]:
        return [m for m in self.modules() if isinstance(m, ResnetBlock)]

    def _scale_shift_hook(self, block):
        def hook(norm, args, h):
            if self._modulation is None:
                raise RuntimeError("the time-aware encoder's blocks ran outside its forward (no timestep)")
            scale, shift = self._modulation[block]
            return h * (1 + scale) + shift
        return hook

    def forward(self, x, timestep=None):
        t = self.timestep if timestep is None else timestep
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        dtype = self.time_embedding.linear_1.weight.dtype
        temb = self.time_embedding(timestep_embedding(t, self.time_proj_dim).to(dtype))
        act = torch.nn.functional.silu(temb)
        self._modulation = {b: b.time_emb_proj(act)[:, :, None, None].to(x.dtype).chunk(2, dim=1) for b in self.time_blocks()}
        try:
            return super().forward(x)
        finally:
            self._modulation = None


def time_keys(sd: dict) -> dict:
    """The time path's weights in an encoder state dict (LDM names, `encoder.` removed)."""
    return {k: v for k, v in sd.items() if k.startswith("time_embedding.") or ".time_emb_proj." in k}


def install_time_aware_encoder(vae, encoder_sd: dict):
    """Replace a ComfyUI SD VAE's encoder with a TAE loaded from encoder_sd (stock + time keys,
    LDM names without `encoder.`), and rebuild the VAE's patcher around the new module."""
    import comfy.model_patcher

    from ..checkpoint_io import check_keys

    old = vae.first_stage_model.encoder
    ddconfig = dict(ch=old.ch, out_ch=3, ch_mult=[b.block[0].out_channels // old.ch for b in old.down],
                    num_res_blocks=old.num_res_blocks, attn_resolutions=[], in_channels=old.in_channels,
                    resolution=old.resolution, z_channels=old.conv_out.out_channels // 2, double_z=True)
    with torch.device("meta"):
        tae = TimeAwareEncoder(**ddconfig)
    check_keys("time-aware VAE encoder", tae, encoder_sd)
    tae.load_state_dict(encoder_sd, assign=True)
    tae = tae.to(dtype=old.conv_in.weight.dtype).eval()
    vae.first_stage_model.encoder = tae
    vae.patcher = comfy.model_patcher.ModelPatcher(vae.first_stage_model, load_device=vae.device,
                                                   offload_device=vae.patcher.offload_device)
    return vae
