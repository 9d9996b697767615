"""Load Starter SR Model: the bundled pixel-space x4 model, sampled by the DoSSR solvers
(docs/dossr.md §3); how it was trained is in the README's 'Starter model'."""
import folder_paths
from comfy_api.v0_0_2 import io

from .category import CATEGORY
from .pack_node import PackNode

FOLDER = "timeaware_sr"
DEFAULT = "starter_sr.safetensors"


class StarterModelLoader(PackNode):
    model_files = {"model_name": (FOLDER, "the bundled file is model_patches/weights/" + DEFAULT)}

    @classmethod
    def define_schema(cls) -> io.Schema:
        names = folder_paths.get_filename_list(FOLDER)
        return io.Schema(
            node_id="TimeAwareSR_StarterModelLoader",
            display_name="Load Starter SR Model",
            category=f"{CATEGORY}/loaders",
            description="Loads the pack's small built-in SR diffusion model (pixel space, x2-x4, trained with DoSSR's "
            "objective). It needs no download: use it with the DoSSR Scheduler and Sampler, or KSampler with the "
            "dossr sampler and scheduler, on the VAE-encoded bicubic upscale of the LR image.",
            inputs=[
                io.Combo.Input("model_name", options=names, default=DEFAULT if DEFAULT in names else None,
                               tooltip="The starter model file; the bundled one ships with the pack."),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="The starter SR diffusion model that sharpens the "
                                                              "upscale."),
                io.Vae.Output(display_name="VAE", tooltip="Pass-through pixel VAE: the 'latent' is the image itself."),
                io.Conditioning.Output(display_name="CONDITIONING",
                                       tooltip="Neutral conditioning for the sampler's positive and negative inputs: "
                                       "the model has no text input, the LR image is its only condition."),
            ],
        )

    @classmethod
    def execute(cls, model_name) -> io.NodeOutput:
        from ..model_patches.starter.starter_sr import load_starter

        return io.NodeOutput(*load_starter(folder_paths.get_full_path_or_raise(FOLDER, model_name)))
