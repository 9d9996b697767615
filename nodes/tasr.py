"""Load TASR and Apply TASR Adapters: the ControlNet and its timestep-aware gates.
Math and layout: docs/tasr.md §4.1-§4.4; sampling (the tasr_spaced scheduler): docs/tasr.md §4.5."""
import folder_paths
from comfy_api.v0_0_2 import io

from .category import CATEGORY
from .pack_node import PackNode

FOLDER = "tasr"
TASRAdapters = io.Custom("TASR_ADAPTERS")


HINT = "tasr_v1.pth goes there, from https://huggingface.co/SleepyLin/TASR"


class TASRLoader(PackNode):
    model_files = {"tasr_name": (FOLDER, HINT)}

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_TASRLoader",
            display_name="Load TASR",
            category=f"{CATEGORY}/loaders",
            description="Loads TASR's tasr_v1.pth from models/tasr/: its SR ControlNet and the 13 timestep-aware "
            "adapters. Load SD 2.1-base with the stock 'Load Checkpoint', connect the ControlNet to Apply ControlNet "
            "(with the SD VAE on its 'vae' input: TASR encodes the upscaled LR image with it) and the adapters to "
            "'Apply TASR Adapters'. Sample 20 steps with KSampler's 'ddpm' sampler and 'tasr_spaced' scheduler, CFG 4.",
            inputs=[
                io.Combo.Input("tasr_name", options=folder_paths.get_filename_list(FOLDER),
                               tooltip=f"tasr_v1.pth (or a .safetensors copy) in models/tasr/. An empty list means an empty "
                               f"folder: {HINT}."),
            ],
            outputs=[
                io.ControlNet.Output(display_name="CONTROL_NET",
                                     tooltip="TASR's ControlNet: steers SD 2.1 toward the upscaled LR image's content."),
                TASRAdapters.Output(display_name="TASR_ADAPTERS",
                                    tooltip="Decide per pixel and per step how strongly that steering applies: strong "
                                    "early for structure, lighter late so SD 2.1 can add detail."),
            ],
        )

    @classmethod
    def execute(cls, tasr_name) -> io.NodeOutput:
        from ..model_patches.tasr.checkpoint import load_tasr

        return io.NodeOutput(*load_tasr(folder_paths.get_full_path_or_raise(FOLDER, tasr_name)))


class ApplyTASRAdapters(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_ApplyTASRAdapters",
            display_name="Apply TASR Adapters",
            category=f"{CATEGORY}/model_patches",
            description="Makes the model take TASR's ControlNet residuals scaled per pixel by the adapters "
            "(alpha = 2 sigmoid(adapter(features, timestep)), between 0 and 2), as TASR was trained. Without a "
            "ControlNet in the conditioning the model is unchanged. Works with 'TSS Spatial Timestep Patch' "
            "(then every pixel's alpha follows its own timestep).",
            inputs=[
                io.Model.Input("model", tooltip="SD 2.1-base (512), the model TASR was trained on."),
                TASRAdapters.Input("tasr_adapters", tooltip="From 'Load TASR'."),
            ],
            outputs=[io.Model.Output(tooltip="The model with TASR's timestep-aware control: sharper structure "
                                     "from the LR image early on, more generated detail in the last steps.")],
        )

    @classmethod
    def execute(cls, model, tasr_adapters) -> io.NodeOutput:
        from ..model_patches.tasr.adapter_patch import apply_tasr_adapters

        return io.NodeOutput(apply_tasr_adapters(model, tasr_adapters))
