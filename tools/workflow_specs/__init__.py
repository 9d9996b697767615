"""One module per method, each with WORKFLOWS = {file stem: (nodes, titles[, note])}
(format: make_workflows.py) and optionally MODEL_FILES = {file name: {"url", "directory",
"sha256" (only where known), "license"}} for the model files its graphs name; `all_workflows()` and
`all_model_files()` collect them, so a new method adds a module and touches no other file."""
import importlib
import pathlib


def _modules():
    for path in sorted(pathlib.Path(__file__).parent.glob("*.py")):
        if path.stem != "__init__":
            yield path.stem, importlib.import_module(f"{__name__}.{path.stem}")


def all_workflows() -> dict:
    found = {}
    for stem, module in _modules():
        if stem == "common":
            continue
        for name, spec in module.WORKFLOWS.items():
            if name in found:
                raise ValueError(f"workflow {name!r} is defined twice")
            found[name] = spec
    return found


def all_model_files() -> dict:
    """{file name: {"url", "directory", "sha256"?, "license"}} from every module's MODEL_FILES."""
    found = {}
    for stem, module in _modules():
        for name, entry in getattr(module, "MODEL_FILES", {}).items():
            if name in found and found[name] != entry:
                raise ValueError(f"model file {name!r} is described twice, differently ({stem})")
            found[name] = entry
    return found


def frontend_model_entry(name: str, entry: dict) -> dict | None:
    """A MODEL_FILES entry in the frontend's form (url, directory, hash, hash_type), or None when the editor
    would not download it (tools/frontend_download.py): then the workflow's note gives the page instead."""
    from frontend_download import downloadable

    if not downloadable(name, entry["url"]):
        return None
    out = {"url": entry["url"], "directory": entry["directory"]}
    if entry.get("sha256"):
        out.update(hash=entry["sha256"], hash_type="SHA256")
    return out
