"""Train the starter SR model (model_patches/starter/starter_sr.py) with the DoSSR objective. Resumable.

    make dev-extras                      # scikit-image: its bundled photos are part of the data
    apt-get install mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04   # the Debian photos
    python tools/train_starter_sr.py [--workdir DIR] [--minutes 60] [--max-steps N] [--init starter.safetensors]
    python tools/train_starter_sr.py [--workdir DIR] --export best [--out model_patches/weights/starter_sr.safetensors]

The shipped weights (README, *Starter model*): stage 1 is the starter of commit 25d76c9; stage 2 is
    git show 25d76c9:model_patches/weights/starter_sr.safetensors > stage1.safetensors
    OMP_WAIT_POLICY=PASSIVE nice -n 10 python tools/train_starter_sr.py --workdir DIR --batch 8 --patch 48 \
        --eval-every 40 --init stage1.safetensors --minutes 600
(rerun the same line to resume; PASSIVE keeps OpenMP threads from spinning on a busy machine), then
--export best --out stage2.safetensors (its step 2120); stage 3 (its best, step 2600, shipped until stage 4):
    OMP_WAIT_POLICY=PASSIVE nice -n 10 python tools/train_starter_sr.py --workdir DIR3 --batch 8 --patch 48 \
        --lr 4e-4 --lr-cosine-steps 2500 --refine 0.3 --eval-every 100 --init stage2.safetensors --minutes 600
then --workdir DIR3 --export best --out stage3.safetensors (= git show 77a7535:model_patches/weights/starter_sr.safetensors);
stage 4, whose best is shipped (README), from stage 3 with 96 px crops (twice the side: more of the context the
model sees in use, less zero padding), more clean x4 pairs and more 1-step pairs:
    OMP_WAIT_POLICY=PASSIVE nice -n 5 python tools/train_starter_sr.py --workdir DIR4 --batch 2 --patch 96 \
        --ema 0.999 --lr 3e-4 --lr-cosine-steps 7000 --clean-share 0.75 --one-step-share 0.5 --eval-every 250 \
        --init stage3.safetensors --minutes 100
then --workdir DIR4 --export best (step 7000, shipped until stage 5);
stage 5, whose best (step 8000) is shipped: 128 px crops, and every pair below t1 - 1 refined (x_t from the EMA's
own 1-step estimate, as a multi-step run sees it), which closed the few-step gap:
    OMP_WAIT_POLICY=PASSIVE nice -n 5 python tools/train_starter_sr.py --workdir DIR5 --batch 1 --patch 128 \
        --ema 0.999 --lr 1e-4 --lr-cosine-steps 6000 --clean-share 0.75 --one-step-share 0.5 --refine 1.0 \
        --eval-every 250 --init stage4.safetensors --minutes 80
then --workdir DIR5 --export best.

Data: the photographs in PHOTOS below (source and licence of each), minus the held-out evaluation images
(chelsea, coffee, rocket in tests/support/data). Large wallpapers are area-downscaled to a long side of
1024 and 512 px first, so a 48 px crop holds as much detail as the held-out photos do; nearly flat
crops (out-of-focus background) are mostly redrawn. Pairs are synthesised per step: HR crop with
flips/rotations, then LR = bicubic x4 down (x2 sometimes); 60% of pairs (--clean-share) stay clean, exactly what the demo
and most users feed, the rest get mild blur, noise and JPEG in random combination (generations and
photos). The LR is bicubic-upscaled back to HR size, the model's condition.

Objective (SPEC §3): x_t = sqrt(abar_t) (eta_t lr + (1 - eta_t) hr) + sqrt(1 - abar_t) eps; the model's x0
estimate is lr - UNet(cat(x_t, lr), t) (starter_sr.py says why), L1 against hr. t is 499 (DoSSR's
single step) for 40% of the pairs (--one-step-share), uniform in [0, 500) (the steps of a longer DoSSR run)
for the rest up to 90%, and uniform in [0, 1000) for 10%, so sampling from pure noise stays defined (a
baseline). --refine p: for a
share p of the pairs below t1 - 1, x_t is formed from the EMA model's own 1-step estimate instead of
the HR, as a multi-step DoSSR run does after its first step (the target stays the HR), so later steps
learn to improve on the first. --lr-cosine-steps N: lr decays along a half-cosine to 5 % over N steps.
Every evaluation scores the 1-step estimate and a FEW_STEPS-step DoSSR run; best.pt keeps the step whose
lower of the two is highest (a few steps must not fall below one).

Resumable and reproducible: step k draws its pairs, t and noise from generators seeded with (seed, k),
so a run resumed from a checkpoint computes exactly what an uninterrupted one does. --workdir gets
last.pt (every --save-minutes and at the end), best.pt (best held-out mean), held_out.csv (held-out PSNR
of DoSSR's 1-step x0 estimate, EMA weights, every --eval-every steps) and config.json.
"""
import argparse
import csv
import glob
import io
import json
import math
import os
import pathlib
import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))  # support/
from support.photos import skimage_photo  # noqa: E402

from support.starter_eval import HELD_OUT  # noqa: E402  evaluation only (tests/support/data)
MATE = "/usr/share/backgrounds/mate/nature/"  # Debian mate-backgrounds 1.26.0-1
LOMIRI = "/usr/share/backgrounds/"  # Debian lomiri-wallpapers-16.04 / -20.04 20.04.0-2
# (name, where, licence). Photographs only: the packages' illustrations and renders (all of
# ukui-wallpapers, mate's abstract/ and desktop/, lomiri's analogpattern and the 20.04 art) are left out.
PHOTOS = [
    ("astronaut", "skimage", "public domain (NASA)"),
    ("brick", "skimage", "CC0 (CC0Textures)"),
    ("camera", "skimage", "CC0 (Lav Varshney)"),
    ("coins", "skimage", "no known copyright restrictions (Brooklyn Museum)"),
    ("grass", "skimage", "CC0 (CC0Textures)"),
    ("gravel", "skimage", "CC0 (CC0Textures)"),
    ("hubble_deep_field", "skimage", "public domain (NASA)"),
    ("retina", "skimage", "CC0 1.0"),
    ("motorcycle_left", "skimage", "Middlebury 2014 stereo dataset, as redistributed by scikit-image (BSD-3 data)"),
    ("motorcycle_right", "skimage", "Middlebury 2014 stereo dataset, as redistributed by scikit-image (BSD-3 data)"),
    ("moon", "skimage", "scikit-image sample data (BSD-3 package; no separate licence stated)"),
    ("Aqua", MATE + "Aqua.jpg", "GPL-2+ (Charles Barbin)"),
    ("Blinds", MATE + "Blinds.jpg", "GPL-2+ (Lennart Poettering, Andrea Cimitan)"),
    ("Dune", MATE + "Dune.jpg", "GPL-2+ (Marco Cogoni, Hylke Bons)"),
    ("FreshFlower", MATE + "FreshFlower.jpg", "GPL-2+ (Jens Ansorg)"),
    ("Garden", MATE + "Garden.jpg", "GPL-2+ (Charles Barbin)"),
    ("GreenMeadow", MATE + "GreenMeadow.jpg", "GPL-2+ (Timothy Schellhase, Lapo Calamandrei)"),
    ("LadyBird", MATE + "LadyBird.jpg", "GPL-2+ (Charles Barbin)"),
    ("RainDrops", MATE + "RainDrops.jpg", "GPL-2+ (blackcombwhistler07)"),
    ("Storm", MATE + "Storm.jpg", "GPL-2+ (Sergey Nazarov)"),
    ("TwoWings", MATE + "TwoWings.jpg", "GPL-2+ (Charles Barbin, Hylke Bons)"),
    ("Wood", MATE + "Wood.jpg", "GPL-2+ (Jean-François Fortin Tam)"),
    ("YellowFlower", MATE + "YellowFlower.jpg", "GPL-2+ (Charles Barbin)"),
    ("aitzgorri", LOMIRI + "aitzgorri_by_Aitzol_Berasategi.jpg", "CC-BY-4.0 (Aitzol Berasategi)"),
    ("Bridge", LOMIRI + "Bridge_by_Sander_Klootwijk.jpg", "CC-BY-SA-4.0 (Sander Klootwijk)"),
    ("Dragonfly", LOMIRI + "Dragonfly_by_Bolly.jpg", "CC-BY-SA-4.0 (Bolly)"),
    ("free", LOMIRI + "free_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0 (Peter Nerlich)"),
    ("friends", LOMIRI + "friends_by_Aitzol_Berasategi.jpg", "CC-BY-4.0 (Aitzol Berasategi)"),
    ("greentock", LOMIRI + "greentock_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0 (Peter Nerlich)"),
    ("life", LOMIRI + "life_by_Aitzol_Berasategi.jpg", "CC-BY-4.0 (Aitzol Berasategi)"),
    ("picosdeeuropa", LOMIRI + "picosdeeuropa_by_Aitzol_Berasategi.jpg", "CC-BY-4.0 (Aitzol Berasategi)"),
    ("Picture_0B", LOMIRI + "Picture_0B_by_freespace.jpg", "CC-BY-4.0 (Trevor 'Freespace')"),
    ("Picture_1A", LOMIRI + "Picture_1A_by_freespace.jpg", "CC-BY-4.0 (Trevor 'Freespace')"),
    ("seeding", LOMIRI + "seeding_by_Clements_Engelhardt.jpg", "CC0-1.0 (Clemens Engelhardt)"),
    ("sunset", LOMIRI + "sunset_by_Aitzol_Berasategi.jpg", "CC-BY-4.0 (Aitzol Berasategi)"),
    ("Wine", LOMIRI + "Wine_by_Jakkub_Mede.jpg", "CC-BY-4.0 (Jakub Mede)"),
    ("Kleiber", LOMIRI + "Kleiber_by_Lukas_Baubkus.jpg", "CC-BY-SA-3.0 (Lukas Baubkus)"),
    ("Infinite-Sea", LOMIRI + "Infinite-Sea_by_Aury88.jpg", "CC-BY-SA-3.0 (Aury88)"),
]
LONG_SIDES = (1024, 512)  # wallpapers are 2-6k px and soft at full size; the held-out photos are ~450-640
PATCH = 48
T1 = 500  # DoSSR's t1 (samplers/dossr_schedule.py)
ONE_STEP_T = T1 - 1  # the timestep of a 1-step DoSSR run
FEW_STEPS = 3  # the multi-step run scored beside the 1-step one: a few steps must not fall below one
RECIPE_DEFAULTS = {"refine": 0.0, "lr_cosine_steps": None, "clean_share": 0.6, "one_step_share": 0.4}
SHARE_LIMITS = {"refine": 1.0, "clean_share": 1.0, "one_step_share": 0.9}  # the last 10 % of t is [0, 1000)


def check_recipe(cfg: dict):
    """Refuse a share outside its range by name, before anything is trained or written."""
    for key, top in SHARE_LIMITS.items():
        value = cfg.get(key, RECIPE_DEFAULTS[key])
        if not 0.0 <= value <= top:  # also refuses NaN
            raise SystemExit(f"{key.replace('_', '-')} must be in [0, {top}], got {value}")


def load_photos(sources=PHOTOS, folder=None) -> list[np.ndarray]:
    """uint8 RGB arrays. folder: every image in it instead (the training test's tiny data)."""
    from PIL import Image

    if folder is not None:
        return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(glob.glob(os.path.join(folder, "*.png")))]
    photos = []
    for name, where, _ in sources:
        if name in HELD_OUT:
            raise ValueError(f"{name} is held out for evaluation")
        if where == "skimage":
            photos.append(skimage_photo(name))
            continue
        for side in LONG_SIDES:
            im = Image.open(where)
            size = tuple(round(v * side / max(im.size)) for v in im.size)
            im.draft("RGB", size)  # JPEG decoded at a reduced scale that is still >= size: fast
            photos.append(np.asarray(im.convert("RGB").resize(size, Image.BOX)))
    return photos


def degrade(hr: np.ndarray, rng: np.random.Generator, clean_share: float = RECIPE_DEFAULTS["clean_share"]) -> np.ndarray:
    """The LR input, bicubic-upscaled back to HR size: clean bicubic x4 for clean_share of the pairs, else
    mild blur, noise and JPEG, each with probability 1/2, at x4 (x2 for 1 in 5)."""
    from PIL import Image, ImageFilter

    h, w = hr.shape[:2]
    clean = rng.random() < clean_share
    scale = 4 if clean or rng.random() < 0.8 else 2
    im = Image.fromarray(hr)
    if not clean and rng.random() < 0.5:
        im = im.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.0))))
    im = im.resize((w // scale, h // scale), Image.BICUBIC)
    if not clean and rng.random() < 0.5:
        noisy = np.asarray(im).astype(np.float32) + rng.normal(0, rng.uniform(0.5, 3.0), (h // scale, w // scale, 3))
        im = Image.fromarray(noisy.clip(0, 255).round().astype(np.uint8))
    if not clean and rng.random() < 0.5:
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", quality=int(rng.integers(70, 96)))
        im = Image.open(io.BytesIO(buffer.getvalue()))
    return np.asarray(im.resize((w, h), Image.BICUBIC))


def to_model_space(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> 3xHxW in [-1, 1], what ComfyUI's pixel VAE produces."""
    return torch.from_numpy(img.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)


def crop(photos, rng: np.random.Generator, patch: int) -> np.ndarray:
    """A random crop; a nearly flat one (std < 6/255) is redrawn up to 3 times, since out-of-focus
    wallpaper backgrounds would otherwise dominate and teach nothing about detail."""
    for _ in range(4):
        photo = photos[rng.integers(len(photos))]
        y, x = rng.integers(0, photo.shape[0] - patch + 1), rng.integers(0, photo.shape[1] - patch + 1)
        c = photo[y:y + patch, x:x + patch]
        if c.std() >= 6:
            break
    c = np.rot90(c, k=int(rng.integers(4)))
    return np.ascontiguousarray(c[:, ::-1] if rng.random() < 0.5 else c)


def batch_at(step: int, photos, cfg: dict, abar: torch.Tensor, eta: torch.Tensor, ema=None):
    """Everything random of one training step, from generators seeded with (seed, step) only.
    refine: the share of pairs below t1 - 1 whose x_t is formed from the EMA model's own 1-step estimate
    instead of the HR (what a multi-step DoSSR run feeds the model after its first step), so later steps
    learn to improve on the first one rather than to trust an x_t that in sampling holds no HR detail."""
    rng = np.random.default_rng([cfg["seed"], step])
    hr, lr = [], []
    for _ in range(cfg["batch"]):
        c = crop(photos, rng, cfg["patch"])
        hr.append(to_model_space(c))
        lr.append(to_model_space(degrade(c, rng, cfg.get("clean_share", RECIPE_DEFAULTS["clean_share"]))))
    hr, lr = torch.stack(hr), torch.stack(lr)
    g = torch.Generator().manual_seed(cfg["seed"] * 1_000_003 + step)
    n = cfg["batch"]
    u = torch.rand(n, generator=g)
    t = torch.where(u < cfg.get("one_step_share", RECIPE_DEFAULTS["one_step_share"]), torch.full((n,), ONE_STEP_T),
                    torch.where(u < 0.9, torch.randint(0, T1, (n,), generator=g), torch.randint(0, 1000, (n,), generator=g)))
    noise = torch.randn(hr.shape, generator=g)
    # Drawn after everything above, so refine = 0 leaves a run's stream exactly as before.
    refined = (t < ONE_STEP_T) & (torch.rand(n, generator=g) < cfg.get("refine", 0.0))
    if refined.any() and ema is not None:
        hr_in = hr.clone()
        hr_in[refined] = one_step_estimate(ema, lr[refined], torch.randn(lr[refined].shape, generator=g), abar)
        return hr, lr, forward_process(hr_in, lr, t, noise, abar, eta), t
    return hr, lr, forward_process(hr, lr, t, noise, abar, eta), t


def one_step_estimate(net, lr, noise, abar):
    """The 1-step DoSSR x0 estimate (x_t at t1 - 1 is the noised LR: the domain shift is complete there)."""
    t = torch.full((lr.shape[0],), ONE_STEP_T)
    x_t = abar[t].sqrt()[:, None, None, None] * lr + (1 - abar[t]).sqrt()[:, None, None, None] * noise
    with torch.no_grad():
        return lr - net(torch.cat([x_t, lr], 1), t.float())


def forward_process(hr, lr, t, noise, abar, eta):
    """DoSSR's x_t (SPEC §3), in the VP form the UNet sees: sqrt(abar_t) (eta_t lr + (1 - eta_t) hr) + sqrt(1 - abar_t) eps."""
    a_t, s_t, e_t = (v[:, None, None, None] for v in (abar[t].sqrt(), (1 - abar[t]).sqrt(), eta[t]))
    return a_t * (e_t * lr + (1 - e_t) * hr) + s_t * noise


def learning_rate(cfg: dict, step: int) -> float:
    """Constant, or with lr_cosine_steps a half-cosine from lr to 5 % of it over that many steps of the run."""
    steps = cfg.get("lr_cosine_steps")
    if not steps:
        return cfg["lr"]
    return cfg["lr"] * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps)))


def ema_decay(step: int, decay: float) -> float:
    """The EMA's weight on its old value after `step` steps: warms up as (1 + k) / (10 + k), then `decay`."""
    return min(decay, (1 + step) / (10 + step))


def init_weights(net):
    for name, p in net.named_parameters():  # disable_weight_init leaves them empty
        if name.startswith("out.2.") or ".out_layers.3." in name:
            torch.nn.init.zeros_(p)  # residual branches and the head start at zero: the model starts at bicubic
        elif p.ndim > 1:
            torch.nn.init.kaiming_normal_(p, nonlinearity="linear")
            p.data *= 0.5
        else:
            torch.nn.init.ones_(p) if name.endswith("weight") else torch.nn.init.zeros_(p)


def schedules():
    import comfy.model_sampling
    from timeaware_sr.samplers.dossr_schedule import eta_schedule

    abar = (1 / (1 + comfy.model_sampling.ModelSamplingDiscrete().sigmas.double() ** 2)).float()
    return abar, eta_schedule(T1).float()


def held_out_psnr(net, images: dict, abar, eta, crop_size=None) -> dict:
    """PSNR (dB, 4 px shaved) of DoSSR's 1-step x0 estimate at x4 on the held-out crops, seed 0:
    x_t = sqrt(abar) (eta lr + (1 - eta) lr) + sqrt(1 - abar) eps at t = 499 (the HR is unknown at t1)."""
    from support import starter_eval as ev

    out = {}
    with torch.no_grad():
        for name, hr in images.items():
            if crop_size:
                hr = hr[:crop_size, :crop_size]
            h, w = hr.shape[:2]
            bicubic = ev.bicubic(ev.bicubic(hr, (w // 4, h // 4)), (w, h))
            up = to_model_space(bicubic)[None]
            t = torch.tensor([ONE_STEP_T])
            noise = torch.randn(up.shape, generator=torch.Generator().manual_seed(0))
            x_t = abar[t].sqrt() * up + (1 - abar[t]).sqrt() * noise
            x0 = up - net(torch.cat([x_t, up], 1), t.float())
            sr = ((x0[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
            out[name] = ev.psnr(sr, hr)
            out[name + "_bicubic"] = ev.psnr(bicubic, hr)
    return out


def few_step_psnr(net, images: dict, workdir: pathlib.Path, crop_size=None) -> float:
    """Held-out mean PSNR (x4, seed 0) of a FEW_STEPS-step DoSSR run through ComfyUI's sampling path, on
    the weights as they ship (fp16, written to a scratch file and read by the starter loader)."""
    from support import starter_eval as ev
    from timeaware_sr.model_patches.starter.starter_sr import save_starter

    scratch = workdir / "eval_scratch.safetensors"
    save_starter(str(scratch), net, {})
    model, _, cond = ev.load_model(scratch)
    scores = []
    for hr in images.values():
        hr = hr[:crop_size, :crop_size] if crop_size else hr
        lr = ev.bicubic(hr, (hr.shape[1] // 4, hr.shape[0] // 4))
        scores.append(ev.psnr(ev.upscale(model, cond, lr, 4, "dossr", FEW_STEPS, 1, seed=0), hr))
    scratch.unlink()
    return float(np.mean(scores))


def save_atomic(obj, path: pathlib.Path):
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(cfg: dict, workdir: pathlib.Path, minutes: float, max_steps: int | None, save_minutes: float = 3):
    from support import starter_eval as ev
    from timeaware_sr.model_patches.starter.starter_sr import build_unet, residual_x0

    check_recipe(cfg)
    torch.set_num_threads(cfg["threads"])
    workdir.mkdir(parents=True, exist_ok=True)
    net = build_unet()
    last = workdir / "last.pt"
    if last.exists():
        state = torch.load(last, weights_only=True)
        if {**RECIPE_DEFAULTS, **state["config"]} != {**RECIPE_DEFAULTS, **cfg}:  # a key's default before it existed
            raise SystemExit(f"{last} was made with another configuration: {state['config']} (asked: {cfg})")
    else:
        torch.manual_seed(cfg["seed"])  # the only draw from torch's global generator
        init_weights(net)
        if cfg["init"]:
            net.load_state_dict(read_starter_unet(cfg["init"]))
        state = {"config": cfg, "step": 0, "net": net.state_dict(), "ema": net.state_dict(), "opt": None, "best": None,
                 "minutes": 0.0}
    net.load_state_dict(state["net"])
    ema = build_unet()
    ema.load_state_dict(state["ema"])
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=0.0)
    if state["opt"] is not None:
        opt.load_state_dict(state["opt"])
    step, best = state["step"], state["best"]
    csv_path = workdir / "held_out.csv"
    rows = list(csv.DictReader(open(csv_path))) if csv_path.exists() else []
    rows = [r for r in rows if int(r["step"]) <= step]  # an interrupted run's rows past its checkpoint are redone
    (workdir / "config.json").write_text(json.dumps(cfg, indent=1))
    photos = load_photos(folder=cfg["photos"])
    images = ev.held_out_images()
    abar, eta = schedules()
    print(f"{len(photos)} photos; resuming at step {step}" if step else f"{len(photos)} photos; new run", flush=True)
    start = saved = time.time()
    minutes_before = state["minutes"]  # wall-clock minutes of earlier sessions, for the curve

    def elapsed():
        return minutes_before + (time.time() - start) / 60

    def checkpoint():
        save_atomic({"config": cfg, "step": step, "net": net.state_dict(), "ema": ema.state_dict(),
                     "opt": opt.state_dict(), "best": best, "minutes": elapsed()}, last)

    def evaluate():
        nonlocal best
        scores = held_out_psnr(ema, images, abar, eta, cfg["eval_crop"])
        mean = float(np.mean([scores[n] for n in images]))
        base = float(np.mean([scores[n + "_bicubic"] for n in images]))
        few = few_step_psnr(ema, images, workdir, cfg["eval_crop"])
        rows.append({"step": step, "minutes": round(elapsed(), 2), "mean": round(mean, 4),
                     "bicubic_mean": round(base, 4), **{n: round(scores[n], 4) for n in images},
                     f"mean_{FEW_STEPS}_steps": round(few, 4)})
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[-1]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"step {step}: held-out PSNR 1 step {mean:.3f} dB, {FEW_STEPS} steps {few:.3f} (bicubic {base:.3f})", flush=True)
        # The shipped model must be good at 1 step and not worse at a few: best by the lower of the two.
        score = min(mean, few)
        if best is None or score > best.get("score", best["mean"]):
            best = {"step": step, "mean": mean, "score": score}
            save_atomic({"config": cfg, "step": step, "ema": ema.state_dict(), "mean": mean, "score": score},
                        workdir / "best.pt")

    if step == 0 and not rows:
        evaluate()
    while time.time() - start < minutes * 60 and (max_steps is None or step < max_steps):
        hr, lr, x_t, t = batch_at(step, photos, cfg, abar, eta, ema)
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step)
        loss = (residual_x0(lr, net(torch.cat([x_t, lr], 1), t.float())) - hr).abs().mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        decay = ema_decay(step, cfg["ema"])
        with torch.no_grad():
            for e, p in zip(ema.parameters(), net.parameters()):
                e.mul_(decay).add_(p, alpha=1 - decay)
        if step % 10 == 0:
            print(f"step {step}  {time.time() - start:.0f} s  L1(x0) {loss.item():.4f}", flush=True)
        if step % cfg["eval_every"] == 0:
            evaluate()
        if time.time() - saved > save_minutes * 60:
            checkpoint()
            saved = time.time()
    checkpoint()
    return step


def read_starter_unet(path: str) -> dict:
    import safetensors

    from timeaware_sr.model_patches.starter.starter_sr import PREFIX

    with safetensors.safe_open(path, "pt") as f:
        return {k[len(PREFIX + "diffusion_model."):]: f.get_tensor(k).float() for k in f.keys()}


def export(workdir: pathlib.Path, which: str, out: str):
    from timeaware_sr.model_patches.starter.starter_sr import build_unet, save_starter

    state = torch.load(workdir / f"{which}.pt", weights_only=True)
    net = build_unet()
    net.load_state_dict(state["ema"])
    cfg = state["config"]
    info = {"step": state["step"], "config": cfg, "held_out": HELD_OUT, "held_out_mean_psnr_1step": state.get("mean"),
            "photos": [f"{name}: {licence}" for name, _, licence in PHOTOS],
            "objective": "DoSSR forward (t1=500), residual x0 = lr - net, L1; t = 499 40%, [0,500) 50%, [0,1000) 10%; "
                         f"refine {cfg.get('refine', 0.0)}, lr cosine steps {cfg.get('lr_cosine_steps')}"}
    save_starter(out, net, info)
    print(f"wrote {out} (step {state['step']}, EMA weights)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path.home() / ".cache" / "timeaware_sr" / "starter_training",
                    help="checkpoints and the held-out curve; a run there resumes")
    ap.add_argument("--minutes", type=float, default=60, help="this session's budget; run again to resume")
    ap.add_argument("--max-steps", type=int)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=PATCH)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-every", type=int, default=40)
    ap.add_argument("--eval-crop", type=int, help="evaluate on the top-left crop of this size (fast tests)")
    ap.add_argument("--save-minutes", type=float, default=3)
    ap.add_argument("--init", help="start a new run from these starter weights")
    ap.add_argument("--refine", type=float, default=0.0,
                    help="share of pairs below t1 - 1 noised from the EMA's own 1-step estimate instead of the HR")
    ap.add_argument("--lr-cosine-steps", type=int, help="decay lr along a half-cosine to 5%% over this many steps")
    ap.add_argument("--clean-share", type=float, default=RECIPE_DEFAULTS["clean_share"],
                    help="share of pairs whose LR is clean bicubic x4")
    ap.add_argument("--one-step-share", type=float, default=RECIPE_DEFAULTS["one_step_share"],
                    help="share of pairs at t1 - 1 (a 1-step DoSSR run, at most 0.9); up to 0.9 the rest are in [0, t1), "
                         "the last 10%% in [0, 1000)")
    ap.add_argument("--photos", help="train on every PNG in this folder instead of PHOTOS")
    ap.add_argument("--export", choices=["best", "last"], help="write a checkpoint's EMA weights to --out and stop")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parents[1] / "model_patches" / "weights" / "starter_sr.safetensors"))
    a = ap.parse_args()
    from support import env

    env.setup(cpu=True)
    if a.export:
        return export(a.workdir, a.export, a.out)
    cfg = {"batch": a.batch, "patch": a.patch, "lr": a.lr, "ema": a.ema, "seed": a.seed, "threads": a.threads,
           "eval_every": a.eval_every, "eval_crop": a.eval_crop, "init": a.init, "photos": a.photos,
           "refine": a.refine, "lr_cosine_steps": a.lr_cosine_steps, "clean_share": a.clean_share,
           "one_step_share": a.one_step_share}
    train(cfg, a.workdir, a.minutes, a.max_steps, a.save_minutes)


if __name__ == "__main__":
    main()
