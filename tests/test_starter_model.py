"""The bundled starter SR model: ComfyUI's UNet class, small, beats bicubic on held-out data, and is
told apart from other model files."""
import numpy as np
import pytest
import safetensors.torch

from support import ckpt_factory as cf
from support import starter_eval as ev
from timeaware_sr.clear_errors import CheckpointError
from timeaware_sr.model_patches.dossr.checkpoint import load_dossr
from timeaware_sr.model_patches.starter.starter_sr import load_starter

# The shipped model's real margin over bicubic (x4, 1 DoSSR step, seed 0, mean over the three held-out
# crops), measured with this very path and in the README table: +1.02 dB (stage 5 step 8000). Seeded and
# deterministic on CPU; 0.02 dB covers thread-count rounding only (a pixel off by one moves PSNR by ~0.001 dB),
# so the test holds the goal, +1.0 dB.
MEASURED_GAIN_DB = 1.02
SLACK_DB = 0.02
# Issue goal: a few DoSSR steps at least match 1 step. Measured on ComfyUI 0.3.75: 3 steps +0.011 dB, 5 steps
# +0.02 dB over 1 step. Another ComfyUI's seeded SDE noise stream may differ (1 step adds no noise); 0.01 dB
# allows that and nothing more.
FEW_STEP_NOISE_DB = 0.01


@pytest.fixture(scope="module")
def starter():
    return ev.load_model()


@pytest.fixture(scope="module")
def held_out_gains(starter):
    """{name: (bicubic PSNR, 1-step PSNR)} on the held-out crops shipped in tests/support/data."""
    model, _, cond = starter
    scores = {}
    for name, hr in ev.held_out_images().items():
        lr = ev.bicubic(hr, (hr.shape[1] // 4, hr.shape[0] // 4))
        scores[name] = (ev.psnr(ev.bicubic(lr, (hr.shape[1], hr.shape[0])), hr), ev.psnr(ev.upscale(model, cond, lr, 4, "dossr", 1, 1, seed=0), hr))
    return scores


def test_the_starter_is_comfyuis_own_unet_and_small():
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    model, vae, cond = ev.load_model()
    assert type(model.model.diffusion_model) is UNetModel
    assert ev.WEIGHTS.stat().st_size <= 10 * 2**20
    assert model.model.latent_format.latent_channels == 3


def test_held_out_photos_are_the_shipped_crops_and_none_is_trained_on():
    images = ev.held_out_images()
    assert sorted(images) == ["chelsea", "coffee", "rocket"]
    assert all(img.shape == (256, 384, 3) and img.dtype == np.uint8 and img.std() > 20 for img in images.values())
    assert not set(images) & {name for name, _, _ in load_training_script().PHOTOS}


def test_beats_bicubic_on_every_held_out_photo_by_the_measured_margin(held_out_gains, report_table):
    for name, (base, ours) in held_out_gains.items():
        report_table(f"starter model x4, DoSSR 1 step, held-out {name}: bicubic {base:.2f} dB, model {ours:.2f} dB "
                     f"({ours - base:+.2f} dB)")
    gains = [ours - base for base, ours in held_out_gains.values()]
    assert min(gains) > 0, f"below bicubic on a held-out photo: {held_out_gains}"
    assert np.mean(gains) >= MEASURED_GAIN_DB - SLACK_DB, f"held-out mean gain {np.mean(gains):.3f} dB"


def test_three_and_five_dossr_steps_match_one_on_the_held_out_mean(starter, held_out_gains, report_table):
    """Issue goal: a few steps must not fall below 1 step (the first starter lost 0.1-0.4 dB with more steps,
    stage 4 lost 0.10 dB at 3 steps; stage 5's refine training closed the gap)."""
    model, _, cond = starter
    one = np.mean([ours for _, ours in held_out_gains.values()])
    for steps in (3, 5):
        scores = []
        for name, hr in ev.held_out_images().items():
            lr = ev.bicubic(hr, (hr.shape[1] // 4, hr.shape[0] // 4))
            scores.append(ev.psnr(ev.upscale(model, cond, lr, 4, "dossr", steps, 1, seed=0), hr))
        report_table(f"starter model x4, held-out mean: DoSSR 1 step {one:.3f} dB, {steps} steps {np.mean(scores):.3f} dB")
        assert np.mean(scores) >= one - FEW_STEP_NOISE_DB, f"{steps} steps {np.mean(scores):.3f} dB vs 1 step {one:.3f} dB"


def test_x0_estimate_is_the_lr_minus_the_networks_residual(starter):
    import torch

    model, _, cond = starter
    g = torch.Generator().manual_seed(3)
    lr, x = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1, torch.randn(1, 3, 16, 16, generator=g)
    sigma = torch.tensor([0.8])
    d = model.model.apply_model(x, sigma, c_concat=lr, c_crossattn=cond[0][0])
    t = model.get_model_object("model_sampling").timestep(sigma).float()
    residual = model.model.diffusion_model(torch.cat([x / (sigma**2 + 1).sqrt(), lr], 1), t)
    torch.testing.assert_close(d, lr - residual, atol=1e-5, rtol=1e-5)


def test_sampling_is_seeded(starter):
    model, _, cond = starter
    lr = ev.bicubic(ev.held_out_images()["chelsea"], (48, 32))
    a, b = ev.upscale(model, cond, lr, 2, seed=1), ev.upscale(model, cond, lr, 2, seed=1)
    c = ev.upscale(model, cond, lr, 2, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_the_dossr_loader_refuses_the_starter_model_by_type():
    with pytest.raises(CheckpointError, match="not a DoSSR checkpoint: it looks like a TimeAwareSR starter model"):
        load_dossr(str(ev.WEIGHTS))


def test_the_starter_loader_refuses_a_dossr_checkpoint_by_type(tmp_path):
    path = tmp_path / "dossr_default.safetensors"
    safetensors.torch.save_file(cf.dossr_state_dict("tiny"), str(path))
    with pytest.raises(CheckpointError, match="wrong model type for the starter SR loader: it looks like a ControlNet"):
        load_starter(str(path))


# --- The training recipe (tools/train_starter_sr.py), on tiny data in seconds ---

def load_training_script():
    import importlib.util
    import sys

    if "train_starter_sr" not in sys.modules:
        spec = importlib.util.spec_from_file_location("train_starter_sr", ev.DATA.parents[2] / "tools" / "train_starter_sr.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["train_starter_sr"] = module
    return sys.modules["train_starter_sr"]


@pytest.fixture
def tiny_run(tmp_path):
    """A config on two 48 px textured photos, 32 px patches, batch 2, held-out scores on 32 px crops;
    torch's thread count restored afterwards (training sets its own)."""
    import torch
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray((rng.random((48, 48, 3)) * 255).astype(np.uint8)).save(folder / f"p{i}.png")
    cfg = {"batch": 2, "patch": 32, "lr": 5e-4, "ema": 0.998, "seed": 0, "threads": 1, "eval_every": 2, "eval_crop": 32,
           "init": None, "photos": str(folder), "refine": 0.5, "lr_cosine_steps": 3}
    threads = torch.get_num_threads()
    yield load_training_script(), cfg, tmp_path
    torch.set_num_threads(threads)


def read_rows(path):
    import csv

    return [{k: v for k, v in row.items() if k != "minutes"} for row in csv.DictReader(open(path))]


def test_training_runs_end_to_end_from_bicubic_and_exports_a_loadable_model(tiny_run):
    import torch

    train, cfg, tmp = tiny_run
    assert train.train(cfg, tmp / "run", minutes=5, max_steps=3) == 3
    rows = read_rows(tmp / "run" / "held_out.csv")
    assert [int(r["step"]) for r in rows] == [0, 2]
    # The head and every residual branch start at zero, so step 0 is exactly bicubic.
    assert rows[0]["mean"] == rows[0]["bicubic_mean"] and rows[1]["mean"] != rows[0]["mean"]
    state = torch.load(tmp / "run" / "last.pt", weights_only=True)
    assert state["step"] == 3 and (tmp / "run" / "best.pt").exists()
    assert state["net"]["out.2.weight"].abs().sum() > 0  # the zero head has learnt something
    train.export(tmp / "run", "last", str(tmp / "starter.safetensors"))
    model, _, _ = load_starter(str(tmp / "starter.safetensors"))
    ema = {k: v.to(torch.float16).float() for k, v in state["ema"].items()}  # shipped as float16
    for k, v in model.model.diffusion_model.state_dict().items():
        assert torch.equal(v, ema[k]), k


def test_a_resumed_run_equals_an_uninterrupted_one(tiny_run):
    import torch

    train, cfg, tmp = tiny_run
    train.train(cfg, tmp / "whole", minutes=5, max_steps=4)
    train.train(cfg, tmp / "resumed", minutes=5, max_steps=2)
    train.train(cfg, tmp / "resumed", minutes=5, max_steps=4)  # a new session picks up last.pt
    whole, resumed = (torch.load(tmp / name / "last.pt", weights_only=True) for name in ("whole", "resumed"))
    assert whole["step"] == resumed["step"] == 4
    for part in ("net", "ema"):
        for k in whole[part]:
            assert torch.equal(whole[part][k], resumed[part][k]), (part, k)
    for k, v in whole["opt"]["state"].items():
        assert all(torch.equal(v[name], resumed["opt"]["state"][k][name]) for name in v)
    assert read_rows(tmp / "whole" / "held_out.csv") == read_rows(tmp / "resumed" / "held_out.csv")


def test_a_run_refuses_to_resume_with_another_configuration(tiny_run):
    train, cfg, tmp = tiny_run
    train.train(cfg, tmp / "run", minutes=5, max_steps=1)
    with pytest.raises(SystemExit, match="was made with another configuration"):
        train.train({**cfg, "lr": 1e-3}, tmp / "run", minutes=5, max_steps=2)


def test_a_run_from_before_the_refine_and_cosine_keys_resumes_with_their_defaults(tiny_run):
    import torch

    train, cfg, tmp = tiny_run
    cfg = {**cfg, **train.RECIPE_DEFAULTS}
    train.train(cfg, tmp / "run", minutes=5, max_steps=1)
    state = torch.load(tmp / "run" / "last.pt", weights_only=True)
    state["config"] = {k: v for k, v in state["config"].items() if k not in train.RECIPE_DEFAULTS}
    torch.save(state, tmp / "run" / "last.pt")
    assert train.train(cfg, tmp / "run", minutes=5, max_steps=2) == 2
    with pytest.raises(SystemExit, match="was made with another configuration"):
        train.train({**cfg, "refine": 0.3}, tmp / "run", minutes=5, max_steps=3)


def test_the_learning_rate_is_constant_or_a_half_cosine_to_five_percent(tiny_run):
    train, cfg = tiny_run[:2]
    assert [train.learning_rate({**cfg, "lr_cosine_steps": None}, k) for k in (0, 7)] == [cfg["lr"]] * 2
    steps = {**cfg, "lr_cosine_steps": 100}
    for k, factor in ((0, 1.0), (50, 0.05 + 0.95 / 2), (100, 0.05), (250, 0.05)):
        assert train.learning_rate(steps, k) == pytest.approx(cfg["lr"] * factor, rel=1e-12), k


def test_refined_pairs_are_noised_from_the_emas_one_step_estimate(tiny_run):
    """With an EMA whose residual is a quarter of its LR input, its 1-step estimate is 0.75 lr, so a refined
    pair's x_t differs from the plain one (same t, same noise) by exactly sqrt(abar_t)(1 - eta_t)(0.75 lr - hr);
    pairs at t1 - 1 and above are never refined."""
    import torch

    train, cfg, _ = tiny_run
    abar, eta = train.schedules()
    photos = train.load_photos(folder=cfg["photos"])

    class QuarterOfLR(torch.nn.Module):
        def forward(self, x, t):
            return 0.25 * x[:, 3:]  # channels 3-5 are the LR condition

    cfg = {**cfg, "batch": 64}
    hr, lr, plain, t = train.batch_at(7, photos, {**cfg, "refine": 0.0}, abar, eta, QuarterOfLR())
    hr2, lr2, refined, t2 = train.batch_at(7, photos, {**cfg, "refine": 1.0}, abar, eta, QuarterOfLR())
    assert torch.equal(hr, hr2) and torch.equal(lr, lr2) and torch.equal(t, t2)
    below = t < train.ONE_STEP_T
    assert 0 < below.sum() < len(t)
    shift = (abar[t].sqrt() * (1 - eta[t]))[:, None, None, None] * (0.75 * lr - hr)
    # float32 rounding of values of order 1
    torch.testing.assert_close(refined[below], plain[below] + shift[below], atol=1e-5, rtol=0)
    assert torch.equal(refined[~below], plain[~below])


def test_clean_pairs_are_exactly_the_evaluations_bicubic_x4(tiny_run):
    train = tiny_run[0]
    hr = ev.held_out_images()["coffee"][:64, :64]
    clean = sum(train.degrade(hr, np.random.default_rng([0, s])).tolist() == ev.bicubic(ev.bicubic(hr, (16, 16)), (64, 64)).tolist()
                for s in range(200))
    # 60% clean, plus the degraded draws (x4, 4 in 5) where blur, noise and JPEG (1/2 each) all stayed off:
    # p = 0.6 + 0.4 * 0.8 / 8 = 0.64; 200 draws give 128 +- 6.8, bounds at about 3 sigma
    assert 108 <= clean <= 148


def test_the_clean_share_sets_how_many_pairs_are_clean_bicubic_x4(tiny_run):
    train = tiny_run[0]
    hr = ev.held_out_images()["rocket"][:64, :64]
    reference = ev.bicubic(ev.bicubic(hr, (16, 16)), (64, 64)).tolist()
    clean = {share: sum(train.degrade(hr, np.random.default_rng([1, s]), share).tolist() == reference for s in range(200))
             for share in (1.0, 0.0)}
    # All clean at 1; at 0 only degraded draws that left the image as it was (x4 with nothing applied, 1 in
    # 10, or PIL's blur at radii near 0.3 px, which changes nothing): 40 of these 200 (measured)
    assert clean[1.0] == 200 and clean[0.0] <= 60, clean


def test_the_one_step_share_sets_how_many_pairs_sit_at_t1_minus_one(tiny_run):
    """u < share: t1 - 1; u < 0.9: uniform in [0, t1); the last 10 %: uniform in [0, 1000)."""
    import torch

    train, cfg, _ = tiny_run
    photos = train.load_photos(folder=cfg["photos"])
    abar, eta = train.schedules()
    for share in (0.4, 0.8):
        t = train.batch_at(3, photos, {**cfg, "batch": 400, "refine": 0.0, "one_step_share": share}, abar, eta)[3]
        at_one_step = (t == train.ONE_STEP_T).float().mean().item()
        above_t1 = (t >= train.T1).float().mean().item()  # only the [0, 1000) tenth reaches there: 5 % of pairs
        # 400 draws: share +- 0.025 (0.4) / 0.02 (0.8); 0.05 +- 0.011; bounds at about 3 sigma
        assert abs(at_one_step - share) < 0.075 and 0.015 < above_t1 < 0.09, (share, at_one_step, above_t1)
        assert torch.all((t >= 0) & (t < 1000))


@pytest.mark.parametrize("key, value", [("clean_share", 1.5), ("clean_share", float("nan")), ("one_step_share", 0.95),
                                        ("one_step_share", -0.1), ("refine", 2.0)])
def test_a_share_out_of_range_is_refused_by_name_before_anything_is_written(tiny_run, key, value):
    train, cfg, tmp = tiny_run
    with pytest.raises(SystemExit, match=f"{key.replace('_', '-')} must be in \\[0, "):
        train.train({**cfg, key: value}, tmp / "run", minutes=5, max_steps=1)
    assert not (tmp / "run").exists()


def test_training_pairs_follow_dossrs_forward_process_in_comfyuis_sigma_space(tiny_run, starter):
    """x_t = (eta lr + (1 - eta) hr + sigma eps) / sqrt(1 + sigma^2) with ComfyUI's own sigma table and input
    scaling (the sampler's view), against the script's VP form sqrt(abar)(eta lr + (1 - eta) hr) + sqrt(1 - abar) eps."""
    import torch

    from timeaware_sr.samplers.dossr_schedule import eta_schedule

    train = tiny_run[0]
    abar, eta = train.schedules()
    g = torch.Generator().manual_seed(5)
    hr, lr, noise = (torch.rand(3, 3, 8, 8, generator=g) * 2 - 1 for _ in range(3))
    t = torch.tensor([0, 250, 499])
    ms = starter[0].get_model_object("model_sampling")  # the shipped model's sampling: EPS input scaling
    sigma = ms.sigmas[t].double()
    e = eta_schedule(500).double()[t][:, None, None, None]
    x_ve = e * lr.double() + (1 - e) * hr.double() + sigma[:, None, None, None] * noise.double()
    reference = ms.calculate_input(sigma, x_ve)
    # float32 schedules against float64: 1e-6 is float32 rounding of values of order 1
    torch.testing.assert_close(train.forward_process(hr, lr, t, noise, abar, eta).double(), reference, atol=1e-6, rtol=0)


def test_the_ema_is_the_running_average_with_its_warm_up(tiny_run):
    import torch

    train, cfg, tmp = tiny_run
    train.train(cfg, tmp / "run", minutes=5, max_steps=0)
    before = torch.load(tmp / "run" / "last.pt", weights_only=True)
    train.train(cfg, tmp / "run", minutes=5, max_steps=1)
    after = torch.load(tmp / "run" / "last.pt", weights_only=True)
    d = 2 / 11  # (1 + k) / (10 + k) after the first step
    assert train.ema_decay(1, cfg["ema"]) == d and train.ema_decay(10_000, 0.998) == 0.998
    for k, v in after["ema"].items():
        torch.testing.assert_close(v, d * before["net"][k] + (1 - d) * after["net"][k], atol=1e-6, rtol=0)


def test_the_training_curve_scores_what_the_dossr_sampler_gives(tiny_run, starter):
    """held_out.csv's number (the script's own 1-step x0 on the noised LR) is the PSNR of the pack's DoSSR
    sampler at 1 step, seed 0, on the same crop: the curve measures the shipped setting."""
    import torch

    from timeaware_sr.model_patches.starter.starter_sr import build_unet

    train = tiny_run[0]
    model, _, cond = starter
    net = build_unet()
    net.load_state_dict(model.model.diffusion_model.state_dict())
    hr = {"coffee": ev.held_out_images()["coffee"][:64, :96]}
    ours = train.held_out_psnr(net, hr, *train.schedules())
    sampled = ev.upscale(model, cond, ev.bicubic(hr["coffee"], (24, 16)), 4, "dossr", 1, 1, seed=0)
    # float32 rounding differs between the two paths; a pixel off by one changes PSNR by ~0.001 dB
    assert ours["coffee"] == pytest.approx(ev.psnr(sampled, hr["coffee"]), abs=0.01)
    assert ours["coffee"] != pytest.approx(ours["coffee_bicubic"], abs=0.05)  # the model changed the picture
