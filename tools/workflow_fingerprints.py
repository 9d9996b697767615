"""Fingerprints of every shipped workflow's output on the sample image, to prove a refactor changed no
picture: run it before and after, then compare.

    python tools/workflow_fingerprints.py --out before.json      # on the old tree
    python tools/workflow_fingerprints.py --out after.json       # on the new tree
    python tools/workflow_fingerprints.py --compare before.json after.json

Each workflow is queued as the tests queue it (the test-size model stand-ins of tests/support, the sample
workflows/assets/chelsea_lr.png) on a fresh headless ComfyUI; the fingerprint is the SHA-256 of every
saved image's decoded pixels (not of the PNG file, whose metadata holds the prompt).
"""
import argparse
import hashlib
import json
import pathlib
import shutil
import sys
import tempfile

PACK_DIR = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PACK_DIR / "tests"))


def fingerprints() -> dict[str, list[str]]:
    import numpy as np
    from PIL import Image

    from support import comfy_live, env, shipped_models

    env.setup(cpu=True)
    import timeaware_sr

    sample = PACK_DIR / "workflows" / "assets" / "chelsea_lr.png"
    found = {}
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        folders = {name: work / "models" / name
                   for name in ["checkpoints", "diffusion_models", "upscale_models", *timeaware_sr.MODEL_FOLDERS]}
        for folder in folders.values():
            folder.mkdir(parents=True)
        shipped_models.write_all(folders)
        server = comfy_live.ComfyServer(work / "server", folders)
        try:
            client = server.start()
            shutil.copy(sample, client.input_dir / sample.name)
            for path in sorted((PACK_DIR / "workflows").glob("*.json")):
                wf = comfy_live.load_workflow(path)
                overrides = {(n["id"], "image"): sample.name for n in wf["nodes"] if n["type"] == "LoadImage"}
                outputs = client.run(comfy_live.workflow_to_prompt(wf, client.object_info(), overrides))
                images = [p for node_id in sorted(outputs) for p in client.output_images(outputs, node_id)]
                found[path.stem] = [hashlib.sha256(np.asarray(Image.open(p)).tobytes()).hexdigest() for p in images]
                print(f"{path.stem}: {found[path.stem]}", flush=True)
        finally:
            server.stop()
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, help="write the fingerprints here (JSON)")
    parser.add_argument("--compare", nargs=2, type=pathlib.Path, metavar=("BEFORE", "AFTER"))
    a = parser.parse_args()
    if a.compare:
        before, after = (json.loads(p.read_text()) for p in a.compare)
        differ = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        print(f"{len(before.keys() & after.keys()) - len(differ)} of {len(before.keys() | after.keys())} workflows "
              f"bitwise equal" + (f"; differ: {differ}" if differ else ""))
        sys.exit(1 if differ else 0)
    found = fingerprints()
    if a.out:
        a.out.write_text(json.dumps(found, indent=1) + "\n")


if __name__ == "__main__":
    main()
