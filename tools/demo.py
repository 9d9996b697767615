"""`make demo`: super-resolve a sample photo with a shipped workflow on a real ComfyUI server.

    python tools/demo.py [--workflow workflows/X.json] [--image photo.png] [--out demo_output]

Starts ComfyUI headless (--cpu), queues the workflow file as users would load it, and copies the
saved PNG to --out. Prints the output path and the time taken. For the bundled sample (or --hr), it
also prints PSNR against the held-out HR photo for the output and for plain bicubic, and writes a
side-by-side picture next to the output: bicubic | pack | HR, full frame above a zoomed crop.
"""
import argparse
import pathlib
import shutil
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))  # support/
from support import comfy_live  # noqa: E402

PACK_DIR = comfy_live.PACK_DIR
DEFAULT_WORKFLOW = PACK_DIR / "workflows" / "starter_sr_x4.json"
DEFAULT_IMAGE = PACK_DIR / "workflows" / "assets" / "chelsea_lr.png"
DEFAULT_HR = PACK_DIR / "tests" / "support" / "data" / "chelsea_hr.png"  # the sample's HR, never trained on
ZOOM_BOX = (0.40, 0.30, 0.65, 0.65)  # left, top, right, bottom as fractions: the cat's eye and fur on the sample


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
                dst = unused_name(out_dir / f"{image.stem}_{workflow.stem}_{src.name}")  # never overwrite a run
                shutil.copy(src, dst)
                written.append(dst)
        return written


def unused_name(path: pathlib.Path) -> pathlib.Path:
    """path, or path with _2, _3, ... before its suffix when an earlier run already wrote it."""
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
    return candidate


def compare_with_hr(output: pathlib.Path, lr_path: pathlib.Path, hr_path: pathlib.Path) -> dict:
    """PSNR (dB, 4 px border shaved) of the output and of bicubic against the HR photo; writes
    <output>_compare.png: bicubic | pack | HR, full frame, and below it the ZOOM_BOX crop enlarged."""
    import numpy as np
    from PIL import Image, ImageDraw

    from support.starter_eval import psnr

    out = Image.open(output).convert("RGB")
    hr = Image.open(hr_path).convert("RGB")
    if out.size != hr.size:
        raise SystemExit(f"--hr {hr_path} is {hr.size[0]}x{hr.size[1]} but the output is {out.size[0]}x{out.size[1]}")
    bicubic = Image.open(lr_path).convert("RGB").resize(hr.size, Image.BICUBIC)
    scores = {name: psnr(np.asarray(im), np.asarray(hr)) for name, im in (("pack", out), ("bicubic", bicubic))}
    w, h = hr.size
    box = tuple(round(f * size) for f, size in zip(ZOOM_BOX, (w, h, w, h)))
    zoom = w / (box[2] - box[0])
    label_h = 14
    sheet = Image.new("RGB", (3 * w, label_h + h + round((box[3] - box[1]) * zoom)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (name, im) in enumerate((("bicubic", bicubic), ("pack", out), ("HR (held out)", hr))):
        score = f" {scores[name.split()[0]]:.2f} dB" if name in scores else ""
        draw.text((i * w + 4, 1), name + score, fill="black")
        sheet.paste(im, (i * w, label_h))
        crop = im.crop(box).resize((w, round((box[3] - box[1]) * zoom)), Image.NEAREST)  # pixels kept visible
        sheet.paste(crop, (i * w, label_h + h))
    draw.rectangle([2 * w + box[0], label_h + box[1], 2 * w + box[2], label_h + box[3]], outline="red")  # on the HR only
    path = output.with_name(output.stem + "_compare.png")
    sheet.save(path)
    return {**scores, "picture": path}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflow", type=pathlib.Path, default=DEFAULT_WORKFLOW)
    parser.add_argument("--image", type=pathlib.Path, default=DEFAULT_IMAGE)
    parser.add_argument("--out", type=pathlib.Path, default=PACK_DIR / "demo_output")
    parser.add_argument("--hr", type=pathlib.Path, help="the image's high-resolution original, to score against "
                        "(default: the bundled sample's held-out HR when --image is the sample)")
    args = parser.parse_args(argv)
    hr = args.hr or (DEFAULT_HR if args.image.resolve() == DEFAULT_IMAGE else None)
    start = time.monotonic()
    written = run_demo(args.workflow.resolve(), args.image.resolve(), args.out.resolve())
    if not written:
        sys.exit("the workflow saved no image")
    for path in written:
        print(f"wrote {path}")
        if hr is not None:
            result = compare_with_hr(path, args.image.resolve(), hr.resolve())
            print(f"PSNR against the held-out HR ({hr.name}): pack {result['pack']:.2f} dB, bicubic {result['bicubic']:.2f} dB "
                  f"({result['pack'] - result['bicubic']:+.2f} dB)")
            print(f"wrote {result['picture']} (bicubic | pack | HR, zoomed crop below)")
    print(f"time: {time.monotonic() - start:.1f} s (server start included)")


if __name__ == "__main__":
    main()
