"""ComfyUI-TimeAwareSR: time-aware diffusion super-resolution nodes for ComfyUI.

Loading the pack is cheap: this file registers model folders and hands ComfyUI the node
classes (tests/test_pack_loading.py bounds the time); weights are read only when a loader runs.
"""
import os

# Folder name -> what goes there. Each lives under ComfyUI's models/ unless the user already
# configured it (extra_model_paths.yaml), in which case their folders stay first.
MODEL_FOLDERS = {
    "dossr": "DoSSR checkpoints (dossr_default.ckpt, dossr_onestep.ckpt)",
    "tasr": "TASR ControlNet + adapters (tasr_v1.pth)",
    "tadsr": "TADSR LoRA (tadsr.pkl) and time-aware VAE (time_vae/)",
    "resshift": "ResShift / SinSR / TAD-SR networks and the VQGAN f4 autoencoder",
    "timeaware_sr": "the pack's own small starter SR model",
}
# The node library's help pages (web/docs/<node id>.md, made by tools/make_help_pages.py): ComfyUI serves this
# folder at /extensions/<pack folder>/, where the frontend looks for them.
WEB_DIRECTORY = "./web"

# Weights that ship inside the pack (the starter model) are found without any set-up.
BUNDLED_WEIGHTS = {"timeaware_sr": os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_patches", "weights")}


def register_model_folders():
    import folder_paths

    for name in MODEL_FOLDERS:
        default = os.path.join(folder_paths.models_dir, name)
        if name in folder_paths.folder_names_and_paths:
            paths, extensions = folder_paths.folder_names_and_paths[name]
            if default not in paths:
                paths.append(default)
            extensions.update(folder_paths.supported_pt_extensions)
        else:
            folder_paths.folder_names_and_paths[name] = ([default], set(folder_paths.supported_pt_extensions))
        bundled = BUNDLED_WEIGHTS.get(name)
        if bundled and bundled not in folder_paths.folder_names_and_paths[name][0]:
            folder_paths.folder_names_and_paths[name][0].append(bundled)


async def comfy_entrypoint():
    from .nodes import TimeAwareSRExtension

    register_model_folders()
    return TimeAwareSRExtension()
