"""`make docs`: the README's pictures, rendered from the real pack on the bundled starter model.

    python tools/make_docs.py [--out workflows/assets]

Writes to --out:
- before_after.jpg: the held-out chelsea crop at 1/4 size, upscaled x4 by bicubic and by the
  starter_sr_x4 workflow on a live ComfyUI server, next to the original, with a zoomed crop of each;
- tss_maps.png: the SDS variance map of that low-resolution image and the per-pixel timestep each
  pixel gets at the middle step of tss_starter_x4's settings (the pack's own functions);
- families.jpg: one workflow per method family on the sample (input, bicubic, result), the SD-based ones on the
  test suite's random-weight stand-ins and labelled so;
- sample_<name>.jpg: those workflows' "sample" group as ComfyUI's page shows it, at a zoom that reads at the
  README's width; workflow_<name>.jpg: each whole shipped workflow (headless Chromium; the model files are
  the test suite's tiny stand-ins, so no missing-model report covers the graph; a picture is refused while
  any dialog is open).
Not part of `make test`: it needs a few minutes and the browser.
"""
import argparse
import io
import pathlib
import shutil
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))  # support/
from support import comfy_browser, comfy_live, env, shipped_models  # noqa: E402

PACK_DIR = comfy_live.PACK_DIR
HR_PHOTO = PACK_DIR / "tests" / "support" / "data" / "chelsea_hr.png"  # held out from the starter's training
SCALE = 4
ZOOM_BOX = (100, 62, 196, 126)  # the cat's eye and the fur beside it in the 384x256 HR crop: fine detail
ZOOM = 3
# tss_starter_x4's settings: 8 even steps from t = 400 (TDS n = 1), the TSS Sampler's a and n ranges.
TSS_STEPS, TSS_START, A_RANGE, N_RANGE = 8, 400.0, (150.0, 300.0), (1.0, 2.5)


def labelled(image: Image.Image, text: str) -> Image.Image:
    out = Image.new("RGB", (image.width, image.height + 22), "white")
    out.paste(image, (0, 22))
    ImageDraw.Draw(out).text((4, 5), text, fill="black")
    return out


def row(images: list[Image.Image], gap: int = 8) -> Image.Image:
    out = Image.new("RGB", (sum(i.width for i in images) + gap * (len(images) - 1), max(i.height for i in images)), "white")
    x = 0
    for image in images:
        out.paste(image, (x, 0))
        x += image.width + gap
    return out


def zoomed(image: Image.Image) -> Image.Image:
    crop = image.crop(ZOOM_BOX)
    return crop.resize((crop.width * ZOOM, crop.height * ZOOM), Image.NEAREST)


def run_starter_workflow(client, lr_name: str) -> Image.Image:
    workflow = comfy_live.load_workflow(PACK_DIR / "workflows" / "starter_sr_x4.json")
    overrides = {(n["id"], "image"): lr_name for n in workflow["nodes"] if n["type"] == "LoadImage"}
    outputs = client.run(comfy_live.workflow_to_prompt(workflow, client.object_info(), overrides))
    [path] = [p for node_id in outputs for p in client.output_images(outputs, node_id)]
    return Image.open(path).convert("RGB")


def before_after(hr: Image.Image, lr: Image.Image, ours: Image.Image) -> Image.Image:
    bicubic = lr.resize(hr.size, Image.BICUBIC)
    bottoms = [labelled(zoomed(im), f"{name}, zoom x{ZOOM}") for im, name in
               ((bicubic, "bicubic"), (ours, "TimeAwareSR"), (hr, "original"))]
    for im in (bicubic, ours, hr):  # mark the zoomed box on the full views (after zooming the clean ones)
        ImageDraw.Draw(im).rectangle(ZOOM_BOX, outline="red")
    tops = [labelled(im, name) for im, name in ((bicubic, "bicubic x4"), (ours, "TimeAwareSR starter x4"), (hr, "original"))]
    top, bottom = row(tops), row(bottoms)
    out = Image.new("RGB", (max(top.width, bottom.width), top.height + bottom.height + 8), "white")
    out.paste(top, (0, 0))
    out.paste(bottom, (0, top.height + 8))
    return out


def colour_map(values: np.ndarray) -> np.ndarray:
    """[0, 1] -> RGB uint8 along dark blue, teal, yellow (readable, no plotting library needed)."""
    anchors = np.array([[20, 24, 82], [33, 145, 140], [253, 231, 37]], dtype=np.float64)
    x = np.clip(values, 0, 1) * (len(anchors) - 1)
    i = np.clip(np.floor(x).astype(int), 0, len(anchors) - 2)
    frac = (x - i)[..., None]
    return ((1 - frac) * anchors[i] + frac * anchors[i + 1]).astype(np.uint8)


def tss_maps(lr: Image.Image) -> Image.Image:
    import torch

    from timeaware_sr.samplers.pixel_schedule import pixel_schedule
    from timeaware_sr.image_ops.sds_map import variance_map

    image = torch.from_numpy(np.asarray(lr, dtype=np.float32) / 255.0)[None]
    v = variance_map(image)[0]
    t = torch.linspace(TSS_START, 0.0, TSS_STEPS + 1)  # TDS with n = 1: even steps
    middle = TSS_STEPS // 2
    class TimestepsOnly:  # the picture shows timesteps, so sigma(t) = t stands in for a model's table
        sigma = staticmethod(lambda t: t)

    schedule = pixel_schedule(TimestepsOnly(), torch.ones(len(t)), t, v[None, None], A_RANGE, N_RANGE)
    t_map = schedule[middle][0][0, 0].numpy()
    lo, hi = float(t_map.min()), float(t_map.max())
    big = (lr.width * SCALE, lr.height * SCALE)
    v_img = Image.fromarray((v.numpy() * 255).astype(np.uint8)).convert("RGB").resize(big, Image.NEAREST)
    t_img = Image.fromarray(colour_map((t_map - lo) / max(hi - lo, 1e-9))).resize(big, Image.NEAREST)
    return row([labelled(lr.resize(big, Image.NEAREST), "low-resolution input"),
                labelled(v_img, "SDS variance map (white = textured)"),
                labelled(t_img, f"timestep at step {middle}/{TSS_STEPS}: {lo:.0f} (blue) to {hi:.0f} (yellow)")])


# One workflow per method family: its "sample" group is pictured at a readable zoom, its result shown below.
FAMILIES = {"starter_sr_x4": "starter model (trained, bundled)", "dossr_tss_x4": "DoSSR with TSS",
            "tadsr_x4": "TADSR", "tasr_x4": "TASR", "sinsr_onestep_x4": "SinSR (one step)"}
README_WIDTH = 1000  # px a README image is shown at, at most: a group wider than this is zoomed out to fit


def open_without_dialogs(browser, client, path: pathlib.Path, viewport: dict):
    page = comfy_browser.open_page(browser, client.base_url)
    page.set_viewport_size(viewport)
    comfy_browser.load_workflow(page, comfy_live.load_workflow(path), path.stem)
    dialogs = comfy_browser.visible_dialogs(page)
    if dialogs:
        raise RuntimeError(f"{path.stem}: a dialog is open over the graph, not taking the picture: {dialogs}")
    return page


def screenshots(client, out: pathlib.Path) -> list[pathlib.Path]:
    """workflow_<name>.jpg: the whole graph (linked from the README; too wide to read inline);
    sample_<name>.jpg: the family workflows' "sample" group at 100 % zoom (less where wider than README_WIDTH)."""
    comfy_browser.store_settings(client.base_url)
    playwright, browser = comfy_browser.launch()
    written = []
    try:
        for path in sorted((PACK_DIR / "workflows").glob("*.json")):
            page = open_without_dialogs(browser, client, path, {"width": 2600, "height": 900})
            comfy_browser.fit_view(page)
            target = out / f"workflow_{path.stem}.jpg"
            image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
            image.resize((image.width * 2 // 3, image.height * 2 // 3), Image.LANCZOS).save(target, quality=82)
            page.close()
            written.append(target)
            if path.stem not in FAMILIES:
                continue
            page = open_without_dialogs(browser, client, path, {"width": README_WIDTH + 120, "height": 1300})
            (box,) = [g["bounding"] for g in comfy_browser.graph_state(page)["groups"] if g["title"] == "sample"]
            clip = comfy_browser.show_box(page, box, min(1.0, README_WIDTH / box[2]))
            target = out / f"sample_{path.stem}.jpg"
            Image.open(io.BytesIO(page.screenshot(clip=clip))).convert("RGB").save(target, quality=90)
            page.close()
            written.append(target)
    finally:
        comfy_browser.close(playwright, browser)
    return written


def family_results(client) -> Image.Image:
    """Each family workflow, as shipped, on the sample: input (nearest x4), bicubic x4 and its result. All but the
    starter run on the test suite's random-weight stand-ins, so their pictures show the graph runs, not quality."""
    lr = Image.open(PACK_DIR / "workflows" / "assets" / "chelsea_lr.png").convert("RGB")
    big = (lr.width * SCALE, lr.height * SCALE)
    rows = []
    for name, family in FAMILIES.items():
        workflow = comfy_live.load_workflow(PACK_DIR / "workflows" / f"{name}.json")
        overrides = {(n["id"], "image"): "chelsea_lr.png" for n in workflow["nodes"] if n["type"] == "LoadImage"}
        outputs = client.run(comfy_live.workflow_to_prompt(workflow, client.object_info(), overrides))
        [path] = [p for node_id in outputs for p in client.output_images(outputs, node_id)]
        result = Image.open(path).convert("RGB")
        kind = "trained weights" if name == "starter_sr_x4" else "RANDOM-WEIGHT STAND-IN: shows the wiring, not quality"
        rows.append(row([labelled(lr.resize(big, Image.NEAREST), f"{family}: input (nearest x4)"),
                         labelled(lr.resize(big, Image.BICUBIC), "bicubic x4"),
                         labelled(result, f"{name} ({kind})")]))
    out = Image.new("RGB", (max(r.width for r in rows), sum(r.height + 8 for r in rows)), "white")
    y = 0
    for r in rows:
        out.paste(r, (0, y))
        y += r.height + 8
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=PACK_DIR / "workflows" / "assets")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env.setup(cpu=True)
    hr = Image.open(HR_PHOTO).convert("RGB")
    lr = hr.resize((hr.width // SCALE, hr.height // SCALE), Image.BICUBIC)  # as the starter's evaluation does
    with tempfile.TemporaryDirectory(prefix="timeaware_sr_docs_") as work:
        work = pathlib.Path(work)
        folders = {name: work / "models" / name
                   for name in ["checkpoints", "diffusion_models", "upscale_models", *env.import_pack().MODEL_FOLDERS]}
        for folder in folders.values():
            folder.mkdir(parents=True)
        shipped_models.write_all(folders)  # tiny stand-ins of every model file, so no graph opens a dialog
        server = comfy_live.ComfyServer(work / "server", folders)
        try:
            client = server.start()
            lr.save(client.input_dir / "docs_lr.png")
            shutil.copy(PACK_DIR / "workflows" / "assets" / "chelsea_lr.png", client.input_dir / "chelsea_lr.png")
            ours = run_starter_workflow(client, "docs_lr.png")
            before_after(hr.copy(), lr, ours).save(args.out / "before_after.jpg", quality=88)
            print(f"wrote {args.out / 'before_after.jpg'}")
            tss_maps(lr).save(args.out / "tss_maps.png", optimize=True)
            print(f"wrote {args.out / 'tss_maps.png'}")
            family_results(client).save(args.out / "families.jpg", quality=88)
            print(f"wrote {args.out / 'families.jpg'}")
            for path in screenshots(client, args.out):
                print(f"wrote {path}")
        except Exception:
            print(server.log_tail(8000), file=sys.stderr)
            raise
        finally:
            server.stop()


if __name__ == "__main__":
    main()
