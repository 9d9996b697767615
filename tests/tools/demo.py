"""`make demo`: super-resolve a sample photo with a shipped workflow on a real ComfyUI server.

    python tests/tools/demo.py [--workflow workflows/X.json] [--image photo.png] [--out demo_output]

Starts ComfyUI headless (--cpu), queues the workflow file as users would load it, and copies the
saved PNG to --out. Prints the output path and the time taken.
"""
import argparse
import pathlib
import shutil
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from support import comfy_live  # noqa: E402

PACK_DIR = comfy_live.PACK_DIR
DEFAULT_WORKFLOW = PACK_DIR / "workflows" / "starter_sr_x4.json"
DEFAULT_IMAGE = PACK_DIR / "workflows" / "assets" / "chelsea_lr.png"


def run_demo(workflow: pathlib.Path, image: pathlib.Path, out_dir: pathlib.Path, model_folders=None) -> list[pathlib.Path]:
    with tempfile.TemporaryDirectory(prefix="timeaware_sr_demo_") as work:
        server = comfy_live.ComfyServer(pathlib.Path(work), model_folders or {}, test_models=False)
        try:
            client = server.start()
            shutil.copy(image, client.input_dir / image.name)
            wf = comfy_live.load_workflow(workflow)
            loaders = [n["id"] for n in wf["nodes"] if n["type"] == "LoadImage"]
            overrides = {(node_id, "image"): image.name for node_id in loaders}
            prompt = comfy_live.workflow_to_prompt(wf, client.object_info(), overrides)
            outputs = client.run(prompt)
        except Exception:
            print(server.log_tail(8000), file=sys.stderr)
            raise
        finally:
            server.stop()
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for node_id in outputs:
            for src in client.output_images(outputs, node_id):
                dst = out_dir / f"{image.stem}_{workflow.stem}_{src.name}"
                shutil.copy(src, dst)
                written.append(dst)
        return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflow", type=pathlib.Path, default=DEFAULT_WORKFLOW)
    parser.add_argument("--image", type=pathlib.Path, default=DEFAULT_IMAGE)
    parser.add_argument("--out", type=pathlib.Path, default=PACK_DIR / "demo_output")
    args = parser.parse_args(argv)
    start = time.monotonic()
    written = run_demo(args.workflow.resolve(), args.image.resolve(), args.out.resolve())
    if not written:
        sys.exit("the workflow saved no image")
    for path in written:
        print(f"wrote {path}")
    print(f"time: {time.monotonic() - start:.1f} s (server start included)")


if __name__ == "__main__":
    main()
