"""Train the starter SR model (model_patches/starter/starter_sr.py) with the DoSSR objective. Seeded.

    pip install scikit-image==0.26.0      # only for its bundled photos
    python tests/tools/train_starter_sr.py [--minutes 25] [--out model_patches/weights/starter_sr.safetensors]

Data: scikit-image's bundled natural photos, minus the held-out evaluation images. Pairs are
synthesised: random 64x64 HR crops (with flips/rotations), blur, bicubic x2 or x4 down, noise,
JPEG, bicubic back up. Forward process (SPEC §3): x_t = alpha_t (eta_t lr + (1 - eta_t) hr) + sigma_t eps;
the model's x0 estimate is lr - UNet(x_t, lr, t) (model_patches/starter/starter_sr.py says why), with an L1
loss against hr. t is drawn from [0, t1) 80% of the time, where DoSSR sampling lives, and from
[0, T) otherwise, so sampling from pure noise stays defined (a baseline).
"""
import argparse
import io
import json
import pathlib
import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from support.photos import skimage_photo  # noqa: E402

HELD_OUT = ("chelsea", "coffee", "rocket")  # evaluation only; chelsea is also the demo photo
TRAIN = ("astronaut", "brick", "camera", "coins", "grass", "gravel", "hubble_deep_field", "ihc", "moon",
         "motorcycle_left", "motorcycle_right", "page", "retina", "text", "cell", "color", "clock_motion")
PATCH = 64


def degrade(hr: np.ndarray, scale: int, rng: np.random.Generator) -> np.ndarray:
    """Blur, bicubic down by `scale`, Gaussian noise, JPEG, bicubic back up: the LR input, HR-sized."""
    from PIL import Image, ImageFilter

    h, w = hr.shape[:2]
    im = Image.fromarray(hr).filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.2, 1.2))))
    im = im.resize((w // scale, h // scale), Image.BICUBIC)
    lr = np.asarray(im).astype(np.float32) + rng.normal(0, rng.uniform(0, 4), (h // scale, w // scale, 3))
    buffer = io.BytesIO()
    Image.fromarray(lr.clip(0, 255).round().astype(np.uint8)).save(buffer, "JPEG", quality=int(rng.integers(60, 96)))
    im = Image.open(io.BytesIO(buffer.getvalue())).resize((w, h), Image.BICUBIC)
    return np.asarray(im)


def to_model_space(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> 3xHxW in [-1, 1], what ComfyUI's pixel VAE produces."""
    return torch.from_numpy(img.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)


def make_pairs(n: int, seed: int):
    rng = np.random.default_rng(seed)
    photos = [skimage_photo(name) for name in TRAIN]
    hr, lr = [], []
    for _ in range(n):
        photo = photos[rng.integers(len(photos))]
        y, x = rng.integers(0, photo.shape[0] - PATCH + 1), rng.integers(0, photo.shape[1] - PATCH + 1)
        crop = np.rot90(photo[y:y + PATCH, x:x + PATCH], k=int(rng.integers(4)))
        crop = np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)
        hr.append(to_model_space(crop))
        lr.append(to_model_space(degrade(crop, int(rng.choice([2, 4])), rng)))
    return torch.stack(hr), torch.stack(lr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=25)
    ap.add_argument("--pairs", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", help="continue from these starter weights (a second, lower-lr stage)")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parents[2] / "model_patches" / "weights" / "starter_sr.safetensors"))
    a = ap.parse_args()
    from support import env

    env.setup(cpu=True)
    import comfy.model_sampling
    from timeaware_sr.model_patches.starter.starter_sr import build_unet, residual_x0, save_starter
    from timeaware_sr.samplers.dossr_schedule import eta_schedule

    torch.manual_seed(a.seed)
    start = time.time()
    hr, lr = make_pairs(a.pairs, a.seed)
    print(f"{a.pairs} pairs in {time.time() - start:.0f} s", flush=True)
    abar = (1 / (1 + comfy.model_sampling.ModelSamplingDiscrete().sigmas.double() ** 2)).float()
    eta = eta_schedule(500).float()
    net = build_unet()
    for name, p in net.named_parameters():  # disable_weight_init leaves them empty
        if name.startswith("out.2.") or ".out_layers.3." in name:
            torch.nn.init.zeros_(p)  # residual branches and the eps head start at zero
        elif p.ndim > 1:
            torch.nn.init.kaiming_normal_(p, nonlinearity="linear")
            p.data *= 0.5
        else:
            torch.nn.init.ones_(p) if name.endswith("weight") else torch.nn.init.zeros_(p)
    history = []
    if a.init:
        import safetensors

        from timeaware_sr.model_patches.starter.starter_sr import PREFIX
        with safetensors.safe_open(a.init, "pt") as f:
            net.load_state_dict({k[len(PREFIX + "diffusion_model."):]: f.get_tensor(k).float() for k in f.keys()})
            before = json.loads(f.metadata()["timeaware_sr"])
            history = before.get("stages") or [{k: before.get(k) for k in ("steps", "minutes", "seed")}]
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(a.seed + 1)
    step, budget, losses = 0, a.minutes * 60, []
    while time.time() - start < budget:
        frac = (time.time() - start) / budget
        for group in opt.param_groups:
            group["lr"] = a.lr * 0.5 * (1 + np.cos(np.pi * min(frac, 1.0)))
        idx = torch.randint(0, a.pairs, (a.batch,), generator=g)
        x0, xhat = hr[idx], lr[idx]
        t = torch.where(torch.rand(a.batch, generator=g) < 0.8, torch.randint(0, 500, (a.batch,), generator=g),
                        torch.randint(0, 1000, (a.batch,), generator=g))
        a_t, s_t, e_t = abar[t].sqrt()[:, None, None, None], (1 - abar[t]).sqrt()[:, None, None, None], eta[t][:, None, None, None]
        noise = torch.randn(x0.shape, generator=g)
        x_t = a_t * (e_t * xhat + (1 - e_t) * x0) + s_t * noise
        x0_hat = residual_x0(xhat, net(torch.cat([x_t, xhat], 1), t.float()))
        loss = (x0_hat - x0).abs().mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % 50 == 0:
            print(f"step {step}  {time.time() - start:.0f} s  L1(x0) {np.mean(losses[-50:]):.4f}", flush=True)
    stage = {"steps": step, "minutes": round((time.time() - start) / 60, 1), "lr": a.lr, "seed": a.seed}
    info = {"stages": history + [stage], "steps": step, "batch": a.batch, "patch": PATCH, "pairs": a.pairs, "seed": a.seed, "train_images": TRAIN,
            "held_out": HELD_OUT, "minutes": round((time.time() - start) / 60, 1), "final_l1": float(np.mean(losses[-100:])),
            "objective": "DoSSR forward (t1=500), residual x0 = lr - net, L1, t in [0,500) 80% / [0,1000) 20%", "scales": [2, 4]}
    pathlib.Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    save_starter(a.out, net, info)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
