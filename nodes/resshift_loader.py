"""Load ResShift / SinSR / TAD-SR: the Swin UNet, the VQ-f4 autoencoder and the schedule preset.
Layouts: docs/resshift.md §6.3, §6.4, §6.7."""
import folder_paths
from comfy_api.v0_0_2 import io

from .category import CATEGORY
from .pack_node import PackNode

FOLDER = "resshift"
PRESET_OPTIONS = ["auto", "resshift_v1", "resshift_v3", "sinsr", "tad_sr"]


HINT = ("autoencoder_vq_f4.pth and the ResShift networks go there, from https://github.com/zsyOAOA/ResShift/releases; "
        "SinSR_v1.pth from https://github.com/wyf0912/SinSR/releases")


class ResShiftLoader(PackNode):
    model_files = {name: (FOLDER, HINT) for name in ("ckpt_name", "vae_name")}

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_ResShiftLoader",
            display_name="Load ResShift / SinSR / TAD-SR",
            category=f"{CATEGORY}/loaders",
            description="Loads a residual-shifting x4 super-resolution network (ResShift v1/v2/v3, SinSR, TAD-SR; "
            "official .pth files in models/resshift/) and ResShift's VQGAN f4 autoencoder as a VAE. The preset sets "
            "the noise schedule and the default step count. Use with 'ResShift Prepare LR', the ResShift Scheduler "
            "and Sampler (or KSampler's 'resshift' entries) and 'ResShift Crop Output'.",
            inputs=[
                io.Combo.Input("ckpt_name", options=folder_paths.get_filename_list(FOLDER),
                               tooltip="The network: resshift_realsrx4_s15_v1.pth, resshift_realsrx4_s4_v3.pth, "
                               f"SinSR_v1.pth or a TAD-SR file, in models/resshift/. An empty list means an empty folder: {HINT}."),
                io.Combo.Input("vae_name", options=folder_paths.get_filename_list(FOLDER),
                               tooltip="autoencoder_vq_f4.pth from the ResShift release; every network here was trained "
                               "on its latents, so any other VAE gives garbage. An empty list means an empty folder: "
                               f"{HINT}."),
                io.Combo.Input("preset", options=PRESET_OPTIONS, default="auto",
                               tooltip="The schedule the network was trained with: resshift_v1 (15 steps, also v2), "
                               "resshift_v3 (4 steps), sinsr and tad_sr (1 step). 'auto' reads it from the file name. "
                               "A wrong preset gives blurry or noisy pictures."),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="The super-resolution network with its noise schedule."),
                io.Vae.Output(display_name="VAE", tooltip="The VQ-f4 autoencoder: encode the upscaled LR image with it, "
                              "and decode the sampler's result."),
            ],
        )

    @classmethod
    def execute(cls, ckpt_name, vae_name, preset="auto") -> io.NodeOutput:
        from ..model_patches.resshift.checkpoint import load_resshift

        model, vae, _ = load_resshift(folder_paths.get_full_path_or_raise(FOLDER, ckpt_name),
                                      folder_paths.get_full_path_or_raise(FOLDER, vae_name), preset)
        return io.NodeOutput(model, vae)
