"""Regenerate workflows/*.json from the graph specs in workflow_specs/ (one module per method):
`python tools/make_workflows.py`.

A spec is (nodes, titles) or (nodes, titles, note): nodes = {node_id: (class_type, {input: value or
(node_id, slot)})}, titles = {node_id: title}, note = Markdown for the graph's Note node (what the
workflow does, the model files it needs and where they go, the knobs that matter). A spec module
may also define MODEL_FILES = {file name: {"url", "directory", "sha256"?, "license"}}: every model
file a workflow names gets a `properties.models` entry from it (workflow_specs/__init__.py).
Widget order comes from a live ComfyUI server, so the files match what the editor saves."""
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))  # support/
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # workflow_builder, workflow_specs/
from support import comfy_live  # noqa: E402
from workflow_builder import build_workflow  # noqa: E402
from workflow_specs import all_model_files, all_workflows, frontend_model_entry  # noqa: E402


def main():
    info = comfy_live.fresh_object_info()
    entries = {name: frontend_model_entry(name, entry) for name, entry in all_model_files().items()}
    model_files = {name: entry for name, entry in entries.items() if entry is not None}
    for name, (nodes, titles, *note) in all_workflows().items():
        path = comfy_live.PACK_DIR / "workflows" / f"{name}.json"
        workflow = build_workflow(nodes, info, titles, note[0] if note else None, model_files)
        path.write_text(json.dumps(workflow, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
