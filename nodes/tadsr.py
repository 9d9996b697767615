"""TADSR Encode (whole or tiled) and TADSR One-Step: the time-aware encoder at t_s, then
x0 = z_L / sqrt(abar_ts) - UNet(z_L, t_s). Math: docs/tadsr.md §5.1, §5.3, §5.4."""
from comfy_api.v0_0_2 import io

from ..model_patches.tiling.tiled_encode import MIN_TILE
from ..samplers.tadsr_one_step import DEFAULT_T_S, T_MAX, T_MIN
from .category import CATEGORY
from .pack_node import PackNode

MODES = ["sample", "mean"]
TILE_DEFAULT, OVERLAP_DEFAULT = 512, 64  # VAE Encode (Tiled)'s defaults
T_S_TOOLTIP = ("TADSR's timestep t_s: how much the model may change the picture. Smaller (100-300) stays faithful "
               "to the input and invents little; larger (700-999) is more generative, with sharper invented texture "
               "that may drift from the input. 500 is the paper's setting. Set it on TADSR Encode: its t_s output "
               "drives TADSR One-Step, so the two cannot disagree.")


def encode_inputs() -> list:
    """The inputs TADSR Encode and TADSR Encode (Tiled) share."""
    return [
        io.Image.Input("image", tooltip="The upscaled LR image (e.g. bicubic x4). Grayscale is used as RGB, "
                       "alpha is dropped."),
        io.Vae.Input("vae", tooltip="The time-aware VAE from Load TADSR."),
        io.Int.Input("t_s", default=DEFAULT_T_S, min=T_MIN, max=T_MAX, tooltip=T_S_TOOLTIP),
        io.Combo.Input("mode", options=MODES, default="sample",
                       tooltip="sample: mean + std * noise from the seed, as the official code (a slightly "
                       "different result per seed; tiled or not, the same noise). mean: the posterior mean, "
                       "deterministic."),
        io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="Noise seed for 'sample' (changes fine grain only); unused for 'mean'."),
    ]


def t_s_output():
    return io.Int.Output(display_name="t_s", tooltip="The t_s this latent was encoded at: connect it to TADSR "
                         "One-Step's t_s, so the step runs at the same timestep.")


class TADSREncode(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_TADSREncode",
            display_name="TADSR Encode",
            category=f"{CATEGORY}/latent",
            description="Encodes the upscaled low-resolution image with TADSR's time-aware encoder at timestep t_s. "
            "Feed it the x4 (bicubic) upscale; sizes are cropped to a multiple of 8 like VAE Encode. For large images "
            "use TADSR Encode (Tiled).",
            inputs=encode_inputs(),
            outputs=[io.Latent.Output(tooltip="The LR latent for TADSR One-Step."), t_s_output()],
        )

    @classmethod
    def execute(cls, image, vae, t_s, mode, seed) -> io.NodeOutput:
        from ..model_patches.tadsr.encode import encode_image

        return io.NodeOutput({"samples": encode_image(vae, image, t_s, seed if mode == "sample" else None)}, t_s)


class TADSREncodeTiled(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_TADSREncodeTiled",
            display_name="TADSR Encode (Tiled)",
            category=f"{CATEGORY}/latent",
            description="TADSR Encode for large images: the time-aware encoder runs on overlapping pixel tiles and "
            "their latents are blended, as stock VAE Encode (Tiled) does (three tile layouts averaged), so memory "
            "stays that of one tile. An image no larger than one tile gives exactly TADSR Encode's result.",
            inputs=[
                *encode_inputs(),
                io.Int.Input("tile_size", default=TILE_DEFAULT, min=MIN_TILE, max=4096, step=64,
                             tooltip="Tile side in pixels (a multiple of 16). Smaller tiles use less memory; larger "
                             "tiles see more context, so faint tile borders are rarer."),
                io.Int.Input("overlap", default=OVERLAP_DEFAULT, min=0, max=4096, step=32,
                             tooltip="Pixels shared by neighbouring tiles (a multiple of 8, below tile_size / 2), "
                             "blended smoothly so tile borders do not show. More overlap costs more time."),
            ],
            outputs=[io.Latent.Output(tooltip="The LR latent for TADSR One-Step, the same size as TADSR Encode's."),
                     t_s_output()],
        )

    @classmethod
    def rule(cls, v) -> bool | str:
        from ..model_patches.tiling.tiled_encode import check_tiles

        return check_tiles(v.get("tile_size"), v.get("overlap"))

    @classmethod
    def execute(cls, image, vae, t_s, mode, seed, tile_size, overlap) -> io.NodeOutput:
        from ..model_patches.tadsr.encode import encode_image

        seed = seed if mode == "sample" else None
        return io.NodeOutput({"samples": encode_image(vae, image, t_s, seed, tile_size, overlap)}, t_s)


class TADSROneStep(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_TADSROneStep",
            display_name="TADSR One-Step",
            category=f"{CATEGORY}/sampling",
            description="TADSR's single model call: x0 = z_L / sqrt(abar_ts) - UNet(z_L, t_s). Wire the SAMPLER and "
            "SIGMAS into SamplerCustom (add_noise off, cfg 1) with the latent from TADSR Encode; progress, previews "
            "and cancel work as usual. CFG above 1 with a negative prompt also works.",
            inputs=[
                io.Model.Input("model", tooltip="The MODEL from Load TADSR (its noise levels give sigma(t_s))."),
                io.Int.Input("t_s", default=DEFAULT_T_S, min=T_MIN, max=T_MAX,
                             tooltip="Connect TADSR Encode's t_s output here (the shipped workflows do): the step "
                             "must run at the t_s the latent was encoded at. As a widget it must equal the encoder's."),
            ],
            outputs=[
                io.Sampler.Output(tooltip="The one-step TADSR sampler."),
                io.Sigmas.Output(tooltip="[sigma(t_s), 0]: one step at t_s."),
            ],
        )

    @classmethod
    def execute(cls, model, t_s) -> io.NodeOutput:
        import comfy.samplers

        from ..samplers.tadsr_one_step import require_tadsr_patcher, sample_tadsr_one_step, tadsr_sigmas

        require_tadsr_patcher(model, "its model input")
        sigmas = tadsr_sigmas(model.get_model_object("model_sampling"), t_s)
        return io.NodeOutput(comfy.samplers.KSAMPLER(sample_tadsr_one_step), sigmas)
