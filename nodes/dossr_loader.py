"""Load DoSSR Checkpoint: the official .ckpt as SD 2.1, its SR ControlNet and the ESRGAN preprocessor.
Layout: docs/dossr.md §3.7."""
import folder_paths
from comfy_api.v0_0_2 import io

from .category import CATEGORY
from .pack_node import PackNode

FOLDER = "dossr"


HINT = ("dossr_default.ckpt (or dossr_onestep.ckpt) goes there, from the DoSSR Google Drive folder "
        "https://drive.google.com/drive/folders/1BTGRbAqXDSNWjyUnTLgDfmjd2xyu8GvP")


class DoSSRCheckpointLoader(PackNode):
    model_files = {"ckpt_name": (FOLDER, HINT)}

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_DoSSRCheckpointLoader",
            display_name="Load DoSSR Checkpoint",
            category=f"{CATEGORY}/loaders",
            description="Loads an official DoSSR checkpoint (dossr_default.ckpt or dossr_onestep.ckpt, from "
            "models/dossr/) and splits it into the parts a DoSSR graph needs: the SD 2.1 model, its text encoder "
            "and VAE, the DoSSR ControlNet (it encodes its hint image with its own encoder, so any VAE may be "
            "wired to the apply node), and the ESRGAN preprocessor as an upscale model.",
            inputs=[
                io.Combo.Input("ckpt_name", options=folder_paths.get_filename_list(FOLDER),
                               tooltip="DoSSR checkpoint in models/dossr/ (.ckpt, .pth or .safetensors). An empty list "
                               f"means an empty folder: {HINT}."),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="The SD 2.1 diffusion model that draws the detail."),
                io.Clip.Output(display_name="CLIP", tooltip="SD 2.1's text encoder, for the prompt."),
                io.Vae.Output(display_name="VAE", tooltip="SD 2.1's VAE: encodes the upscaled image, decodes the "
                                                          "result."),
                io.ControlNet.Output(display_name="CONTROL_NET", tooltip="DoSSR's SR ControlNet: keeps the result "
                                                                         "faithful to the input image."),
                io.UpscaleModel.Output(display_name="ESRGAN", tooltip="The x4 preprocessor: a clean but soft upscale "
                                                                      "that DoSSR starts from."),
            ],
        )

    @classmethod
    def execute(cls, ckpt_name) -> io.NodeOutput:
        from ..model_patches.dossr.checkpoint import load_dossr

        return io.NodeOutput(*load_dossr(folder_paths.get_full_path_or_raise(FOLDER, ckpt_name)))
