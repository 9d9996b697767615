"""Tiny random-weight stand-ins, in the official formats, for every model file the shipped
workflows name. Each method's factory module (support/*_factory.py, and ckpt_factory for DoSSR)
may define `write_shipped_models(model_dirs)`; `write_all` calls every one, so adding a method
adds no lines here."""
import importlib
import pathlib


def write_all(model_dirs: dict[str, pathlib.Path]):
    here = pathlib.Path(__file__).parent
    names = ["ckpt_factory"] + sorted(p.stem for p in here.glob("*_factory.py"))
    for name in names:
        module = importlib.import_module(f"support.{name}")
        writer = getattr(module, "write_shipped_models", None)
        if writer is not None:
            writer(model_dirs)
