import os

import folder_paths
from comfy_api.v0_0_2 import io

from .category import CATEGORY
from .validation import check_inputs_then_own, model_file, one_of, raise_unless_valid, require_valid_inputs

FOLDER = "tadsr"
T_S_MIN, T_S_MAX, T_S_DEFAULT = 1, 999, 500  # samplers/tadsr_one_step.py's range
MODES = ["sample", "mean"]
TILE_DEFAULT, TILE_MIN, OVERLAP_DEFAULT = 512, 64, 64  # VAE Encode (Tiled)'s defaults and minimum (tiled_encode.MIN_TILE)
T_S_TOOLTIP = ("TADSR's timestep t_s: how much the model may change the picture. Smaller (100-300) stays faithful "
               "to the input and invents little; larger (700-999) is more generative, with sharper invented texture "
               "that may drift from the input. 500 is the paper's setting. Use the same value in TADSR Encode and "
               "TADSR One-Step.")


def lora_files() -> list[str]:
    return [f for f in folder_paths.get_filename_list(FOLDER) if not os.path.basename(f).startswith("diffusion_pytorch_model")]


def time_vae_folders() -> list[str]:
    """Folders (relative to models/tadsr/) that hold a diffusers config.json."""
    found = set()
    for root in folder_paths.get_folder_paths(FOLDER):
        for path, _dirs, files in os.walk(root, followlinks=True):
            if "config.json" in files and path != root:
                found.add(os.path.relpath(path, root).replace(os.sep, "/"))
    return sorted(found)


def time_vae_path(name: str) -> str:
    for root in folder_paths.get_folder_paths(FOLDER):
        if os.path.isdir(os.path.join(root, name)):
            return os.path.join(root, name)
    return os.path.join(folder_paths.get_folder_paths(FOLDER)[0], name)  # the loader reports it missing


def t_s_range(t_s) -> bool | str:
    if t_s is None or T_S_MIN <= t_s <= T_S_MAX:
        return True
    return f"t_s must be between {T_S_MIN} and {T_S_MAX}, got {t_s}"


class LoadTADSR(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_LoadTADSR",
            display_name="Load TADSR",
            category=f"{CATEGORY}/loaders",
            description="Turns an SD 2.1-base model into TADSR's one-step super-resolution model (its LoRA and "
            "trained input conv, as weight patches on a copy of the model) and loads TADSR's time-aware VAE: an SD VAE "
            "whose encoder knows the timestep t_s. Decode its latents with stock VAE Decode (Tiled).",
            inputs=[
                io.Model.Input("model", tooltip="SD 2.1-base (v2-1_512-ema-pruned) from Load Checkpoint; TADSR's LoRA "
                               "was trained on it, other models give a clear error."),
                io.Combo.Input("tadsr_name", options=lora_files(),
                               tooltip="tadsr.pkl in models/tadsr/: the UNet LoRA, the encoder LoRA and its time layers."),
                io.Combo.Input("time_vae", options=time_vae_folders(),
                               tooltip="The time_vae/ folder in models/tadsr/ (config.json + diffusion_pytorch_model.*)."),
                io.Float.Input("strength", default=1.0, min=0.0, max=2.0, step=0.05,
                               tooltip="How strongly TADSR's UNet weights apply. 1.0 is the paper's model; lower blends "
                               "back toward plain SD 2.1 (softer, less restored); 0 is the base model."),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="SD 2.1-base with TADSR's one-step weights."),
                io.Vae.Output(display_name="VAE", tooltip="Time-aware VAE: encode with TADSR Encode, decode with stock "
                              "VAE Decode or VAE Decode (Tiled) for large outputs."),
            ],
        )

    @classmethod
    def validate_inputs(cls, **values) -> bool | str:
        return check_inputs_then_own(cls, values)

    @classmethod
    def own_checks(cls, tadsr_name=None, time_vae=None, strength=None, **_) -> bool | str:
        checked = model_file("tadsr_name", FOLDER, tadsr_name, "download tadsr.pkl from the TADSR release")
        if checked is not True:
            return checked
        if time_vae is not None and time_vae not in time_vae_folders():
            where = ", ".join(folder_paths.get_folder_paths(FOLDER))
            return f"time_vae {time_vae!r} is not a folder with a config.json in {where}"
        if strength is not None and not 0 <= strength <= 2:
            return f"strength must be between 0 and 2, got {strength}"
        return True

    @classmethod
    def execute(cls, model, tadsr_name, time_vae, strength) -> io.NodeOutput:
        require_valid_inputs(cls, locals())
        from ..model_patches.tadsr.checkpoint import load_tadsr

        raise_unless_valid(cls.own_checks(tadsr_name, time_vae, strength))
        path = folder_paths.get_full_path_or_raise(FOLDER, tadsr_name)
        return io.NodeOutput(*load_tadsr(model, path, time_vae_path(time_vae), strength))


def encode_inputs() -> list:
    """The inputs TADSR Encode and TADSR Encode (Tiled) share."""
    return [
        io.Image.Input("image", tooltip="The upscaled LR image (e.g. bicubic x4). Grayscale is used as RGB, "
                       "alpha is dropped."),
        io.Vae.Input("vae", tooltip="The time-aware VAE from Load TADSR."),
        io.Int.Input("t_s", default=T_S_DEFAULT, min=T_S_MIN, max=T_S_MAX, tooltip=T_S_TOOLTIP),
        io.Combo.Input("mode", options=MODES, default="sample",
                       tooltip="sample: mean + std * noise from the seed, as the official code (a slightly "
                       "different result per seed; tiled or not, the same noise). mean: the posterior mean, "
                       "deterministic."),
        io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="Noise seed for 'sample' (changes fine grain only); unused for 'mean'."),
    ]


class TADSREncode(io.ComfyNode):
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
            outputs=[io.Latent.Output(tooltip="The LR latent for TADSR One-Step.")],
        )

    @classmethod
    def validate_inputs(cls, **values) -> bool | str:
        return check_inputs_then_own(cls, values)

    @classmethod
    def own_checks(cls, t_s=None, mode=None, **_) -> bool | str:
        checked = t_s_range(t_s)
        return one_of("mode", mode, MODES) if checked is True else checked

    @classmethod
    def execute(cls, image, vae, t_s, mode, seed) -> io.NodeOutput:
        require_valid_inputs(cls, locals())
        raise_unless_valid(cls.own_checks(t_s, mode))
        return io.NodeOutput({"samples": encode_latent(image, vae, t_s, mode, seed)})


def encode_latent(image, vae, t_s, mode, seed, tile=None, overlap=0):
    """TADSR Encode's work, whole (tile None) or in tiles: checks, RGB, moments, then the latent."""
    from ..model_patches.tadsr.time_aware_vae import TimeAwareEncoder, encode_moments, latent_from_moments

    if not isinstance(getattr(getattr(vae, "first_stage_model", None), "encoder", None), TimeAwareEncoder):
        raise ValueError("the vae input is not TADSR's time-aware VAE: connect the VAE output of Load TADSR")
    if image.shape[-1] == 1:
        image = image.expand(*image.shape[:-1], 3)
    elif image.shape[-1] == 4:
        image = image[..., :3]
    elif image.shape[-1] != 3:
        raise ValueError(f"image must have 1, 3 or 4 channels, got {image.shape[-1]}")
    if image.shape[1] < 8 or image.shape[2] < 8:
        raise ValueError(f"image is {image.shape[2]}x{image.shape[1]}; TADSR Encode needs at least 8x8 pixels")
    moments = encode_moments(vae, image, t_s, tile, overlap)
    # the noise is drawn once over the whole latent: tiled or not, the same seed gives the same noise
    return latent_from_moments(moments, seed if mode == "sample" else None)


class TADSREncodeTiled(io.ComfyNode):
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
                io.Int.Input("tile_size", default=TILE_DEFAULT, min=TILE_MIN, max=4096, step=64,
                             tooltip="Tile side in pixels (a multiple of 16). Smaller tiles use less memory; larger "
                             "tiles see more context, so faint tile borders are rarer."),
                io.Int.Input("overlap", default=OVERLAP_DEFAULT, min=0, max=4096, step=32,
                             tooltip="Pixels shared by neighbouring tiles (a multiple of 8, below tile_size / 2), "
                             "blended smoothly so tile borders do not show. More overlap costs more time."),
            ],
            outputs=[io.Latent.Output(tooltip="The LR latent for TADSR One-Step, the same size as TADSR Encode's.")],
        )

    @classmethod
    def validate_inputs(cls, **values) -> bool | str:
        return check_inputs_then_own(cls, values)

    @classmethod
    def own_checks(cls, t_s=None, mode=None, tile_size=None, overlap=None, **_) -> bool | str:
        from ..model_patches.tiling.tiled_encode import check_tiles

        checked = TADSREncode.own_checks(t_s, mode)
        return check_tiles(tile_size, overlap) if checked is True else checked

    @classmethod
    def execute(cls, image, vae, t_s, mode, seed, tile_size, overlap) -> io.NodeOutput:
        require_valid_inputs(cls, locals())
        raise_unless_valid(cls.own_checks(t_s, mode, tile_size, overlap))
        return io.NodeOutput({"samples": encode_latent(image, vae, t_s, mode, seed, tile_size, overlap)})


class TADSROneStep(io.ComfyNode):
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
                io.Int.Input("t_s", default=T_S_DEFAULT, min=T_S_MIN, max=T_S_MAX, tooltip=T_S_TOOLTIP),
            ],
            outputs=[
                io.Sampler.Output(tooltip="The one-step TADSR sampler."),
                io.Sigmas.Output(tooltip="[sigma(t_s), 0]: one step at t_s."),
            ],
        )

    @classmethod
    def validate_inputs(cls, **values) -> bool | str:
        return check_inputs_then_own(cls, values)

    @classmethod
    def own_checks(cls, t_s=None, **_) -> bool | str:
        return t_s_range(t_s)

    @classmethod
    def execute(cls, model, t_s) -> io.NodeOutput:
        require_valid_inputs(cls, locals())
        import comfy.samplers

        from ..samplers.tadsr_one_step import sample_tadsr_one_step, tadsr_sigmas

        raise_unless_valid(cls.own_checks(t_s))
        sigmas = tadsr_sigmas(model.get_model_object("model_sampling"), t_s)
        return io.NodeOutput(comfy.samplers.KSAMPLER(sample_tadsr_one_step), sigmas)
