"""Hostile inputs on the live server (issue 11): every pack node, found from /object_info (every
node id starting with TimeAwareSR_, so nodes added later are covered without editing this file),
every input, fed bad values. Each prompt must end in success or in a clear error: one that names
the node and the input, with no traceback text, no local path and no ANSI codes. After each case
the server must still answer, and after each node's cases a valid reference prompt must give the
reference result again.

Cases per input: a wrong type, NaN / +inf / -inf (numbers), a negative and a huge value, null, and
a value beyond the widget's range fed through a link (PrimitiveInt / PrimitiveFloat /
PrimitiveString). Sampling, to stay within CI's time on 2 cores: every input always gets its linked
out-of-range case (the one widget checks used to miss) and null; of the rest, FUZZ_CASES_PER_INPUT
(default 3) are drawn with a random generator seeded by FUZZ_SEED (default 0), the node id and the
input name, so a run is reproducible and another seed covers other cases. FUZZ_CASES_PER_INPUT=all
runs every case.
"""
import hashlib
import json
import math
import os
import random
import re
import shutil
import urllib.request

import numpy as np
import pytest
from PIL import Image

from support import comfy_live
from support.comfy_live import ExecutionFailed, PromptRejected
from support.starter_prompt import starter_dossr_prompt

PREFIX = "TimeAwareSR_"
SAMPLE = comfy_live.PACK_DIR / "workflows" / "assets" / "chelsea_lr.png"

# Valid values of every socket type a pack node takes, made by a small shared graph ("p*" nodes).
# A node that takes a type missing here fails the test: add its provider.
PROVIDER_NODES = {
    "p1": {"class_type": "TimeAwareSR_StarterModelLoader", "inputs": {"model_name": "starter_sr.safetensors"}},
    "p2": {"class_type": "TimeAwareSR_DoSSRCheckpointLoader", "inputs": {"ckpt_name": "dossr_default.ckpt"}},
    "p3": {"class_type": "LoadImage", "inputs": {"image": SAMPLE.name}},
    "p4": {"class_type": "ImageScale", "inputs": {"image": ["p3", 0], "upscale_method": "area", "width": 24,
                                                  "height": 16, "crop": "disabled"}},
    "p5": {"class_type": "SolidMask", "inputs": {"value": 0.5, "width": 24, "height": 16}},
    "p6": {"class_type": "VAEEncode", "inputs": {"pixels": ["p4", 0], "vae": ["p1", 1]}},
    "p7": {"class_type": "BasicScheduler", "inputs": {"model": ["p1", 0], "scheduler": "normal", "steps": 2,
                                                      "denoise": 1.0}},
    "p8": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
    # the models that only one method's nodes accept (tiny stand-ins from support/shipped_models.py)
    "p9": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v2-1_512-ema-pruned.safetensors"}},
    "p10": {"class_type": "TimeAwareSR_LoadTADSR", "inputs": {"model": ["p9", 0], "tadsr_name": "tadsr.pkl",
                                                              "time_vae": "time_vae", "strength": 1.0}},
    "p11": {"class_type": "TimeAwareSR_TASRLoader", "inputs": {"tasr_name": "tasr_v1.pth"}},
    "p12": {"class_type": "TimeAwareSR_ResShiftLoader", "inputs": {"ckpt_name": "resshift_realsrx4_s15_v1.pth",
                                                                   "vae_name": "autoencoder_vq_f4.pth", "preset": "auto"}},
    "p15": {"class_type": "TimeAwareSR_ResShiftPrepareLR", "inputs": {"image": ["p4", 0]}},
    "p14": {"class_type": "TimeAwareSR_FitToModelSize", "inputs": {"image": ["p4", 0], "multiple": 8,
                                                                   "min_short_side": 0, "mode": "zeros"}},
}
PROVIDERS = {
    "MODEL": ["p1", 0], "VAE": ["p1", 1], "CONDITIONING": ["p1", 2], "CLIP": ["p2", 1], "CONTROL_NET": ["p2", 3],
    "UPSCALE_MODEL": ["p2", 4], "IMAGE": ["p4", 0], "MASK": ["p5", 0], "LATENT": ["p6", 0], "SIGMAS": ["p7", 0],
    "SAMPLER": ["p8", 0], "TASR_ADAPTERS": ["p11", 1], "TIMEAWARESR_SIZE": ["p14", 1],
}
# Nodes that take one method's model: its valid inputs come from that method's loader (keys are
# socket kinds, or input names where one input needs another value of the same kind).
NODE_PROVIDERS = {
    "TimeAwareSR_LoadTADSR": {"MODEL": ["p9", 0]},
    "TimeAwareSR_TADSREncode": {"VAE": ["p10", 1]},
    "TimeAwareSR_TADSREncodeTiled": {"VAE": ["p10", 1]},
    "TimeAwareSR_TADSROneStep": {"MODEL": ["p10", 0]},
    "TimeAwareSR_ApplyTASRAdapters": {"MODEL": ["p9", 0]},
    "TimeAwareSR_ResShiftScheduler": {"MODEL": ["p12", 0]},
    "TimeAwareSR_ResShiftCropOutput": {"image": ["p15", 0]},  # by input name: 4x its lr_image's padded size
    "TimeAwareSR_RestoreSize": {"image": ["p14", 0]},  # the padded image its size record was made for
}
WRONG_LINK = {"MODEL": ["p4", 0]}  # an IMAGE into a MODEL input; any socket gets a MASK otherwise
WIDGETS = {"INT", "FLOAT", "BOOLEAN", "STRING", "COMBO"}
ABSOLUTE_PATH = re.compile(r"(^|[\s'\"(=:])/[\w.-]+/")
HUGE = 10**12


def run_reference(comfy) -> np.ndarray:
    """The starter model's DoSSR run on a tiny crop, from scratch (ComfyUI's cache dropped first, so
    every node really runs)."""
    post(comfy, "/free", {"free_memory": True})
    prompt = starter_dossr_prompt({"class_type": "LoadImage", "inputs": {"image": SAMPLE.name}}, prefix="fuzz_reference")
    outputs = comfy.run(prompt)
    return np.asarray(Image.open(comfy.output_images(outputs, "s9")[-1]))


def post(comfy, path, body):
    req = urllib.request.Request(comfy.base_url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30).read()


def spec_of(info, name):
    specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
    return specs[name]


def kind_of(spec) -> str:
    return "COMBO" if isinstance(spec[0], list) else spec[0]


def options_of(spec) -> list:
    return spec[0] if isinstance(spec[0], list) else spec[1].get("options", [])


def node_prompt(node_id, info, values: dict) -> dict:
    """The node under test ("n"), its socket inputs from the providers, every output into PreviewAny."""
    prompt = json.loads(json.dumps(PROVIDER_NODES))
    prompt["n"] = {"class_type": node_id, "inputs": dict(values)}
    for slot in range(len(info["output"])):
        prompt[f"s{slot}"] = {"class_type": "PreviewAny", "inputs": {"source": ["n", slot]}}
    return prompt


def valid_values(node_id, info, comfy) -> dict:
    """Inputs that run: widget defaults, providers for sockets; a combo without a default tries its
    options in order (model folders may also hold files other tests left there on purpose)."""
    values, combos = {}, []
    providers = {**PROVIDERS, **NODE_PROVIDERS.get(node_id, {})}
    for group in ("required", "optional"):
        for name, spec in info["input"].get(group, {}).items():
            kind = kind_of(spec)
            if name in providers or kind in providers:
                values[name] = providers.get(name, providers.get(kind))
            elif kind in WIDGETS:
                default = spec[1].get("default") if len(spec) > 1 else None
                if default is None and kind == "COMBO":
                    combos.append(name)
                    default = (options_of(spec) or [None])[0]
                values[name] = default
            elif group == "required":
                pytest.fail(f"{node_id} takes a {kind} input ({name}) that this test cannot provide: add a provider")
    for name in combos:
        for option in options_of(spec_of(info, name)):
            values[name] = option
            try:
                comfy.run(node_prompt(node_id, info, values))
                break
            except (PromptRejected, ExecutionFailed):
                continue
    return values


def cases(spec, kind) -> tuple[list, list]:
    """(always, sampled) bad values for one input: literals, and ("link", node, value) for links."""
    always, sampled = [None], []
    if kind in ("INT", "FLOAT"):
        opts = spec[1] if len(spec) > 1 else {}
        high = opts.get("max", HUGE)
        beyond = high + 1 if kind == "INT" else high + 0.5
        if kind == "FLOAT" or beyond <= 2**63 - 1:  # PrimitiveInt itself stops at 2^63 - 1 (a seed's max is 2^64 - 1)
            always.append(("link", "PrimitiveInt" if kind == "INT" else "PrimitiveFloat", beyond))
        sampled += ["abc", math.nan, math.inf, -math.inf, -5, -HUGE, HUGE]  # [a, b] is a link in the API format: ComfyUI's own check
        if kind == "INT":
            sampled += [("link", "PrimitiveInt", -HUGE), 2.5]
        else:
            sampled += [("link", "PrimitiveFloat", math.nan), ("link", "PrimitiveFloat", -float(HUGE))]  # ±inf stops at the Primitive
    elif kind == "COMBO":
        always.append(("link", "PrimitiveString", "not-an-option"))
        sampled += ["not-an-option", 5, math.nan, "../../etc/passwd"]
    elif kind == "BOOLEAN":
        always.append(("link", "PrimitiveInt", 5))
        sampled += ["abc", [1]]
    else:  # a socket: a literal where a link belongs, or a link from the wrong type
        always.append(("wrong link",))
        sampled += [5, "abc", math.nan, [1, 2, 3]]
    return always, sampled


def sampled_cases(node_id, name, spec, kind) -> list:
    always, pool = cases(spec, kind)
    per_input = os.environ.get("FUZZ_CASES_PER_INPUT", "3")
    if per_input != "all":
        seed = f"{os.environ.get('FUZZ_SEED', '0')}/{node_id}/{name}"
        rng = random.Random(int(hashlib.sha256(seed.encode()).hexdigest()[:16], 16))
        pool = rng.sample(pool, min(int(per_input), len(pool)))
    return always + pool


def apply_case(prompt, name, kind, case):
    if isinstance(case, tuple) and case[0] == "link":
        prompt["x"] = {"class_type": case[1], "inputs": {"value": case[2]}}
        prompt["n"]["inputs"][name] = ["x", 0]
    elif isinstance(case, tuple) and case[0] == "wrong link":
        prompt["n"]["inputs"][name] = WRONG_LINK.get(kind, ["p5", 0] if kind != "MASK" else ["p4", 0])
    else:
        prompt["n"]["inputs"][name] = case
    return prompt


def assert_clear(text: str, where: str):
    assert "Traceback" not in text and 'File "' not in text, f"{where}: traceback text in {text!r}"
    assert "\x1b[" not in text, f"{where}: ANSI codes in {text!r}"
    assert not ABSOLUTE_PATH.search(text), f"{where}: a local path in {text!r}"


def check_outcome(comfy, prompt, node_id, display, name, case):
    where = f"{node_id}.{name} = {case!r}"
    try:
        comfy.run(prompt, timeout=120)
        return "ran"
    except PromptRejected as e:
        errors = e.node_errors.get("n", {}).get("errors", [])
        others = {k: v for k, v in e.node_errors.items() if k != "n"}
        assert errors and not others, f"{where}: rejected, but not for the node under test: {e.body}"
        assert e.node_errors["n"]["class_type"] == node_id  # names the node
        text = json.dumps([{k: err.get(k) for k in ("message", "details")} for err in errors])
        assert name in text, f"{where}: the error does not name the input: {text}"
        assert_clear(text, where)
        return "rejected"
    except ExecutionFailed as e:
        error = next(data for kind, data in e.status["messages"] if kind == "execution_error")
        assert error["node_id"] == "n" and error["node_type"] == node_id, f"{where}: failed elsewhere: {error}"
        message = error["exception_message"]
        assert name in message and display in message, f"{where}: unclear error: {message!r}"
        assert_clear(message + " " + error["exception_type"], where)
        assert "/" not in error["exception_type"] and "_x_" not in error["exception_type"]
        return "failed"


def test_every_pack_node_refuses_bad_inputs_clearly_and_the_server_stays_sound(comfy, shipped_models, report_table):
    shutil.copy(SAMPLE, comfy.input_dir / SAMPLE.name)
    info_all = comfy.get("/object_info")  # fresh: nodes are discovered, never listed here
    pack_nodes = sorted(n for n in info_all if n.startswith(PREFIX))
    assert len(pack_nodes) >= 9
    reference = run_reference(comfy)
    tally = {}
    for node_id in pack_nodes:
        info = info_all[node_id]
        display = info.get("display_name") or node_id
        base = valid_values(node_id, info, comfy)
        comfy.run(node_prompt(node_id, info, base))  # the base prompt itself runs
        for group in ("required", "optional"):
            for name, spec in info["input"].get(group, {}).items():
                kind = kind_of(spec)
                for case in sampled_cases(node_id, name, spec, kind):
                    prompt = apply_case(node_prompt(node_id, info, base), name, kind, case)
                    outcome = check_outcome(comfy, prompt, node_id, display, name, case)
                    tally[outcome] = tally.get(outcome, 0) + 1
                    assert comfy.get("/queue") is not None  # the server still answers
        assert np.array_equal(run_reference(comfy), reference), f"after {node_id}'s cases the reference changed"
    report_table(f"fuzz: {len(pack_nodes)} pack nodes, {sum(tally.values())} cases: {tally}")


# Shapes and mismatches (issue 28): every IMAGE, MASK, LATENT, MODEL and VAE input of every pack node is fed,
# through a link as a user would wire it, a degenerate picture or another method's model. Each prompt must run
# or end in a clear error at the node under test (its name or the input's in the message, no Python internals),
# and the server must then give the reference result. FUZZ_SEED draws SHAPE_CASES_PER_INPUT of each input's
# pool; the seed is printed with every failure and in the summary.
SHAPE_NODES = {
    "q1": {"class_type": "ImageScale", "inputs": {"image": ["p3", 0], "upscale_method": "area", "width": 1,
                                                  "height": 1, "crop": "disabled"}},
    "q2": {"class_type": "ImageScale", "inputs": {"image": ["p3", 0], "upscale_method": "area", "width": 64,
                                                  "height": 1, "crop": "disabled"}},
    "q3": {"class_type": "ImageScale", "inputs": {"image": ["p3", 0], "upscale_method": "area", "width": 1,
                                                  "height": 64, "crop": "disabled"}},
    "q4": {"class_type": "JoinImageWithAlpha", "inputs": {"image": ["p4", 0], "alpha": ["p5", 0]}},  # RGBA
    "q5": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 1, "height": 1}},
    "q6": {"class_type": "SolidMask", "inputs": {"value": 0.3, "width": 64, "height": 1}},
    "q7": {"class_type": "VAEEncode", "inputs": {"pixels": ["q2", 0], "vae": ["p1", 1]}},  # a 64x1 latent
    "q8": {"class_type": "EmptyLatentImage", "inputs": {"width": 16, "height": 16, "batch_size": 1}},
}
SHAPE_POOLS = {
    "IMAGE": {"1x1": ["q1", 0], "64x1": ["q2", 0], "1x64": ["q3", 0], "RGBA": ["q4", 0]},
    "MASK": {"1x1 mask": ["q5", 0], "64x1 mask": ["q6", 0]},
    "LATENT": {"64x1 latent": ["q7", 0], "empty 2x2 SD latent": ["q8", 0]},
    "MODEL": {"starter MODEL": ["p1", 0], "DoSSR MODEL": ["p2", 0], "SD 2.1 MODEL": ["p9", 0],
              "TADSR MODEL": ["p10", 0], "ResShift MODEL": ["p12", 0]},
    "VAE": {"starter VAE": ["p1", 1], "SD VAE": ["p2", 2], "TADSR VAE": ["p10", 1], "ResShift VQ VAE": ["p12", 1]},
}
INTERNAL_NAMES = re.compile(r"\b(AttributeError|KeyError|TypeError|IndexError|RuntimeError|ZeroDivisionError|"
                            r"NoneType|index out of range|object has no attribute|unexpected keyword)\b")


def shape_cases(node_id: str, name: str, kind: str, base_link) -> list[tuple[str, list]]:
    """The input's pool without the link it already has, sampled by FUZZ_SEED."""
    pool = [(label, link) for label, link in SHAPE_POOLS[kind].items() if link != base_link]
    per_input = os.environ.get("SHAPE_CASES_PER_INPUT", "2")
    if per_input != "all":
        rng = random.Random(int(hashlib.sha256(f"{fuzz_seed()}/shape/{node_id}/{name}".encode()).hexdigest()[:16], 16))
        pool = rng.sample(pool, min(int(per_input), len(pool)))
    return pool


def fuzz_seed() -> str:
    return os.environ.get("FUZZ_SEED", "0")


def check_shape_outcome(comfy, prompt, node_id, display, name, label) -> str:
    where = f"{node_id}.{name} = {label} (FUZZ_SEED={fuzz_seed()})"
    try:
        comfy.run(prompt, timeout=300)
        return "ran"
    except PromptRejected as e:
        assert set(e.node_errors) == {"n"}, f"{where}: rejected, but not at the node under test: {e.body}"
        text = json.dumps(e.node_errors["n"]["errors"])
        assert_clear(text, where)
        return "rejected"
    except ExecutionFailed as e:
        error = next(data for kind, data in e.status["messages"] if kind == "execution_error")
        assert error["node_id"] == "n", f"{where}: failed in another node: {error}"
        message = error["exception_message"]
        assert_clear(message, where)
        assert not INTERNAL_NAMES.search(message + " " + error["exception_type"]), (
            f"{where}: Python internals in the error: {error['exception_type']}: {message!r}")
        assert display in message or name in message, f"{where}: names neither the node nor the input: {message!r}"
        return "failed"


def test_every_pack_node_meets_degenerate_shapes_and_other_methods_models_clearly(comfy, shipped_models, report_table):
    shutil.copy(SAMPLE, comfy.input_dir / SAMPLE.name)
    print(f"FUZZ_SEED={fuzz_seed()} SHAPE_CASES_PER_INPUT={os.environ.get('SHAPE_CASES_PER_INPUT', '2')}")
    info_all = comfy.get("/object_info")
    pack_nodes = sorted(n for n in info_all if n.startswith(PREFIX))
    reference = run_reference(comfy)
    tally, outcomes = {}, []
    for node_id in pack_nodes:
        info = info_all[node_id]
        display = info.get("display_name") or node_id
        base = valid_values(node_id, info, comfy)
        for group in ("required", "optional"):
            for name, spec in info["input"].get(group, {}).items():
                kind = kind_of(spec)
                if kind not in SHAPE_POOLS:
                    continue
                for label, link in shape_cases(node_id, name, kind, base.get(name)):
                    prompt = node_prompt(node_id, info, base)
                    prompt.update(json.loads(json.dumps(SHAPE_NODES)))
                    prompt["n"]["inputs"][name] = link
                    outcome = check_shape_outcome(comfy, prompt, node_id, display, name, label)
                    tally[outcome] = tally.get(outcome, 0) + 1
                    outcomes.append(f"{node_id}.{name}={label}:{outcome}")
        assert np.array_equal(run_reference(comfy), reference), (
            f"after {node_id}'s shape cases the reference changed (FUZZ_SEED={fuzz_seed()})")
    assert tally.get("ran", 0) and sum(tally.values()) >= len(pack_nodes)
    report_table(f"fuzz shapes and mismatches (FUZZ_SEED={fuzz_seed()}): {sum(tally.values())} cases: {tally}")
    print("\n".join(outcomes))
