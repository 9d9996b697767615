"""One module per method, each with WORKFLOWS = {file stem: (nodes, titles[, note])}
(format: make_workflows.py); `all_workflows()`
collects them, so a new method adds a module and touches no other file."""
import importlib
import pathlib


def all_workflows() -> dict:
    found = {}
    for path in sorted(pathlib.Path(__file__).parent.glob("*.py")):
        if path.stem in ("__init__", "common"):
            continue
        for name, spec in importlib.import_module(f"{__name__}.{path.stem}").WORKFLOWS.items():
            if name in found:
                raise ValueError(f"workflow {name!r} is defined twice")
            found[name] = spec
    return found
