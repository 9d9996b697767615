"""Load TADSR: tadsr.pkl's LoRA and conv_in as weight patches on SD 2.1-base, and the time-aware VAE
folder. Layout: docs/tadsr.md §5.1, §5.2."""
import os

import folder_paths
from comfy_api.v0_0_2 import io

from .category import CATEGORY
from .pack_node import PackNode

FOLDER = "tadsr"


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


HINT = "tadsr.pkl and the time_vae/ folder go there, from https://huggingface.co/zty557/TADSR"


class LoadTADSR(PackNode):
    model_files = {"tadsr_name": (FOLDER, HINT)}
    model_folders = (FOLDER,)

    @classmethod
    def file_inputs(cls, values: dict) -> dict[str, str]:
        found = super().file_inputs(values)
        if isinstance(values.get("time_vae"), str):
            found["time_vae"] = time_vae_path(values["time_vae"])
        return found

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
                               tooltip="tadsr.pkl in models/tadsr/: the UNet LoRA, the encoder LoRA and its time layers. "
                               f"An empty list means an empty folder: {HINT}."),
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
    def rule(cls, v) -> bool | str:
        time_vae = v.get("time_vae")
        if time_vae is not None and time_vae not in time_vae_folders():  # the folder as it is now
            return (f"time_vae {time_vae!r} is not a folder with a config.json in models/{FOLDER}/ (or the {FOLDER} "
                    f"paths of extra_model_paths.yaml): download TADSR's time_vae/ folder there")
        return True

    @classmethod
    def execute(cls, model, tadsr_name, time_vae, strength) -> io.NodeOutput:
        from ..model_patches.tadsr.checkpoint import load_tadsr

        path = folder_paths.get_full_path_or_raise(FOLDER, tadsr_name)
        return io.NodeOutput(*load_tadsr(model, path, time_vae_path(time_vae), strength))
