"""ComfyUI importable in-process and the pack importable as `timeaware_sr`.

`setup(cpu=True)` is what the test suite uses (CPU, reproducible); tools pass `cpu=False` to
let ComfyUI pick its device (a benchmark's `--device cuda`). It must run before the first import
of comfy.model_management, which reads the device choice once."""
import importlib.util
import os
import pathlib
import sys

from . import comfy_live

PACK_DIR = comfy_live.PACK_DIR
TESTS_DIR = PACK_DIR / "tests"
_done = None


def setup(cpu: bool = True):
    """Idempotent; returns the ComfyUI folder in use. Refuses a second call that asks otherwise."""
    global _done
    if _done is not None:
        if _done[1] != cpu:
            raise RuntimeError(f"support.env.setup already ran with cpu={_done[1]}; the device is fixed once per process")
        return _done[0]
    comfy_dir = comfy_live.comfyui_dir()
    sys.path.insert(0, str(comfy_dir))
    if cpu:
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    from comfy.cli_args import args

    args.cpu = cpu
    import_pack().register_model_folders()  # as comfy_entrypoint does before ComfyUI reads the schemas
    from . import test_size_models

    test_size_models.register()  # the factories' tiny SD files load like released ones
    _done = (comfy_dir, cpu)
    return comfy_dir


def import_pack(name: str = "timeaware_sr"):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, PACK_DIR / "__init__.py", submodule_search_locations=[str(PACK_DIR)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def device_name() -> str:
    """What ComfyUI will run models on, for tools to print."""
    import comfy.model_management

    return str(comfy.model_management.get_torch_device())
