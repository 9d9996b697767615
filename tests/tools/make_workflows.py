"""Regenerate workflows/*.json from the graph specs in workflow_specs/ (one module per method):
`python tests/tools/make_workflows.py`.

A spec is (nodes, titles) or (nodes, titles, note): nodes = {node_id: (class_type, {input: value or
(node_id, slot)})}, titles = {node_id: title}, note = Markdown for the graph's Note node (what the
workflow does, the model files it needs and where they go, the knobs that matter).
Widget order comes from a live ComfyUI server, so the files match what the editor saves."""
import json
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from support import comfy_live  # noqa: E402
from support.workflow_builder import build_workflow  # noqa: E402
from workflow_specs import all_workflows  # noqa: E402


def main():
    with tempfile.TemporaryDirectory() as work:
        server = comfy_live.ComfyServer(pathlib.Path(work), {})
        try:
            info = server.start().object_info()
        finally:
            server.stop()
    for name, (nodes, titles, *_note) in all_workflows().items():  # the note: issue 16
        path = comfy_live.PACK_DIR / "workflows" / f"{name}.json"
        path.write_text(json.dumps(build_workflow(nodes, info, titles), indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
