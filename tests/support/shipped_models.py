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


def fingerprints(model_dirs: dict[str, pathlib.Path]) -> list[str]:
    """'folder/file digest' for every stand-in: the file's bytes, or for a pickle its tensors (the bytes
    of a torch.save archive hold the archive's own name)."""
    import hashlib

    import torch

    lines = []
    for name, folder in sorted(model_dirs.items()):
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".partial" not in p.name):
            if path.suffix in (".safetensors", ".json"):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                digest = hashlib.sha256(repr(_tensor_bytes(torch.load(path, map_location="cpu",
                                                                      weights_only=True))).encode()).hexdigest()
            lines.append(f"{name}/{path.relative_to(folder)} {digest}")
    return lines


def _tensor_bytes(value):
    import torch

    if isinstance(value, torch.Tensor):
        return (str(value.dtype), tuple(value.shape), value.cpu().numpy().tobytes())
    if isinstance(value, dict):
        return sorted((str(k), _tensor_bytes(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_tensor_bytes(v) for v in value]
    return value
