"""Every shipped workflow under --novram (and three under --lowvram) gives the default server's image (issue 26).

ComfyUI 0.3.75 cannot run --novram / --lowvram on a CPU: main.py refuses them together with --cpu (one argparse
group; without --cpu a machine with no GPU does not start), and even then model_management.py sets vram_state to
DISABLED off a GPU and load_models_gpu loads models on a CPU device fully. The first test checks both, so the proxy
is known to be needed. The proxy: servers here run `main.py --cpu --cache-none` (every node runs for every prompt,
so each workflow loads its own networks) with a test-only plugin, tests/support/lowvram_proxy_plugin, set to
"novram" or "lowvram". It makes every load take that flag's budget through ComfyUI's own partial loading
(LoadedModel.model_load -> ModelPatcher.load with lowvram_model_memory 0.1 for novram, exactly NO_VRAM's value;
half of the weights for lowvram) and logs what each load did, which these tests read back from the server log.

Each workflow runs as shipped on the sample image with two edits, the same on both servers, to keep the module's
time modest: every `steps` input is cut to LIGHT_STEPS, and Fit to Model Size does not raise the short side to
512 px. Which networks load, and how, depends on neither; tests/test_workflows.py runs the workflows unedited.

What passing proves, for every shipped workflow:
- each of the pack's networks the workflow uses (starter model; DoSSR ControlNet and condition encoder; TASR
  adapters and ControlNet; TADSR's time-aware encoder; ResShift's network and VQ-f4) reached ComfyUI's loader inside
  a patcher while the workflow ran, was marked lowvram with its comfy.ops layers cast per layer (under lowvram, in
  at least one of the workflow's loads some layers also loaded whole), and has no parameter that no load moves or
  casts, except those the code moves where it reads them (UNTOUCHED_AND_HANDLED); the same holds for every other
  load that holds a pack class (the TSS patch's layers in a UNet, the pack's SD 2 text encoder);
- the image equals the default session server's (everything loaded fully) within IMAGE_TOLERANCE.
What it cannot prove: on a CPU the load and offload devices are the same device, so a tensor read on the wrong
device (a weight used directly instead of through a comfy.ops layer, a buffer left behind) does not fail here as
it would on a GPU. The untouched-parameter check is the CPU's stand-in: it lists what a GPU would find left in CPU
memory. Buffers are not checked (a load never moves them under lowvram; ComfyUI's code and the pack's move them
where they are read).

Time (wall, this 2-core machine with other suites beside it, load ~4): 5 minutes for the 18 tests; each workflow's
seconds on both servers are in the table printed at the end of the run.
"""
import json
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from support import comfy_live
from support.lowvram_proxy_plugin import MARK, UNTOUCHED_AND_HANDLED

WORKFLOWS = sorted((comfy_live.PACK_DIR / "workflows").glob("*.json"))
SAMPLE = comfy_live.PACK_DIR / "workflows" / "assets" / "chelsea_lr.png"
PROXY_PLUGIN = comfy_live.PACK_DIR / "tests" / "support" / "lowvram_proxy_plugin"

# fp32 on the CPU: partial loading casts each weight to the input's device and dtype, here the same ones, so the
# same float ops run on the same values and the images are expected bitwise equal. 1 level of 255 would allow a
# single rounding flip at the 8-bit quantisation; anything larger is a real difference.
IMAGE_TOLERANCE = 1

# The pack's networks each workflow must load partially: a name is a patcher's module class (with " (encoder
# only)" for DoSSR's condition encoder) or a pack class inside it.
NETWORKS = {
    "starter": {"StarterSRModel"},
    "dossr": {"LatentConcatControlNet", "AutoencoderKL (encoder only)"},
    "tasr": {"LatentConcatControlNet", "TASRAdapters"},
    "tadsr": {"TimeAwareEncoder"},
    "resshift": {"ResShiftModel", "UNetModelSwin", "VQModelF4"},
}
FAMILY = {
    "dossr_tss_x4": "dossr", "dossr_x4": "dossr", "dossr_x4_large": "dossr", "tss_controlnet_x4": "dossr",
    "resshift_x4": "resshift", "sinsr_onestep_x4": "resshift", "starter_sr_x4": "starter",
    "tss_starter_x4": "starter", "tadsr_x4": "tadsr", "tadsr_x4_prompt": "tadsr", "tasr_tss_x4": "tasr",
    "tasr_x4": "tasr",
}
LIGHT_STEPS = 2


def lighter(prompt: dict) -> dict:
    """Fewer steps and no raise to 512 px (see the module's docstring); the graph is otherwise the shipped one."""
    for node in prompt.values():
        inputs = node["inputs"]
        if isinstance(inputs.get("steps"), int) and inputs["steps"] > LIGHT_STEPS:
            inputs["steps"] = LIGHT_STEPS
        if node["class_type"] == "TimeAwareSR_FitToModelSize":
            inputs["min_short_side"] = 0
    return prompt


# --lowvram: the cheap workflows that cover a UNet, a ControlNet with its condition encoder, ResShift and the VQ
LOWVRAM_WORKFLOWS = [w for w in WORKFLOWS if w.stem in ("dossr_x4", "resshift_x4", "starter_sr_x4")]


def test_every_workflow_has_a_family():
    assert sorted(FAMILY) == [w.stem for w in WORKFLOWS]


class ProxyServer:
    def __init__(self, flag, tmp_path_factory, model_dirs):
        workdir = tmp_path_factory.mktemp(f"comfyui_{flag.strip('-')}")
        (workdir / "custom_nodes").mkdir()
        (workdir / "custom_nodes" / PROXY_PLUGIN.name).symlink_to(PROXY_PLUGIN, target_is_directory=True)
        self.flag = flag
        self.server = comfy_live.ComfyServer(workdir, model_dirs, extra_args=["--cache-none"],
                                             env={"TIMEAWARE_SR_VRAM_PROXY": flag.strip("-")})

    def start(self):
        self.client = self.server.start()
        assert f"{MARK} installed" in self.server.log_text(), f"the proxy plugin did not load:\n{self.server.log_tail()}"
        return self


@pytest.fixture(scope="module")
def proxy_server(request, tmp_path_factory, test_model_dirs, shipped_models):
    server = ProxyServer(request.param, tmp_path_factory, test_model_dirs)
    try:
        yield server.start()
    finally:
        server.server.stop()


_reference = {}  # workflow stem -> (image arrays, seconds) from the default session server


def run_workflow(client, workflow) -> list[np.ndarray]:
    shutil.copy(SAMPLE, client.input_dir / SAMPLE.name)
    wf = comfy_live.load_workflow(workflow)
    overrides = {(n["id"], "image"): SAMPLE.name for n in wf["nodes"] if n["type"] == "LoadImage"}
    outputs = client.run(lighter(comfy_live.workflow_to_prompt(wf, client.object_info(), overrides)))
    saved = [p for node_id in sorted(outputs) for p in client.output_images(outputs, node_id)]
    assert saved, f"{workflow.stem} saved no image"
    return [np.asarray(Image.open(p).convert("RGB")).astype(np.int16) for p in saved]


def reference_images(comfy, workflow):
    if workflow.stem not in _reference:
        start = time.monotonic()
        _reference[workflow.stem] = (run_workflow(comfy, workflow), time.monotonic() - start)
    return _reference[workflow.stem]


def proxy_loads(log: str) -> list[dict]:
    return [json.loads(line.split(MARK, 1)[1]) for line in log.splitlines() if MARK in line and line.rstrip().endswith("}")]


def names(load: dict) -> set[str]:
    return {load["model"], *load["pack_classes"]}


@pytest.mark.parametrize("flag", ["--novram", "--lowvram"])
def test_comfyui_cannot_offload_on_a_cpu_by_its_flags(flag):
    """Why the plugin exists: main.py refuses the flag with --cpu, and off a GPU the vram state is DISABLED."""
    import comfy.cli_args
    import comfy.model_management as mm

    with pytest.raises(SystemExit):
        comfy.cli_args.parser.parse_args(["--cpu", flag])
    assert mm.cpu_state != mm.CPUState.GPU and mm.vram_state == mm.VRAMState.DISABLED, (
        "ComfyUI here runs on a GPU or now offloads on a CPU: the proxy plugin may no longer be needed")


@pytest.mark.parametrize("proxy_server", ["--novram"], indirect=True)
@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_every_workflow_under_novram_gives_the_default_image(proxy_server, workflow, comfy, report_table):
    check_offloaded_run(proxy_server, workflow, comfy, report_table)


@pytest.mark.parametrize("proxy_server", ["--lowvram"], indirect=True)
@pytest.mark.parametrize("workflow", LOWVRAM_WORKFLOWS, ids=lambda p: p.stem)
def test_workflows_under_lowvram_give_the_default_image(proxy_server, workflow, comfy, report_table):
    check_offloaded_run(proxy_server, workflow, comfy, report_table)


def check_offloaded_run(proxy_server, workflow, comfy, report_table):
    """The workflow on the proxy server: its pack networks loaded partially (cast per layer), its images the
    default server's."""
    flag = proxy_server.flag
    expected, reference_s = reference_images(comfy, workflow)
    log_start = len(proxy_server.server.log_text())
    start = time.monotonic()
    images = run_workflow(proxy_server.client, workflow)
    seconds = time.monotonic() - start
    loads = proxy_loads(proxy_server.server.log_text()[log_start:])

    pack_loads = [load for load in loads if load["pack_classes"] or names(load) & set().union(*NETWORKS.values())]
    seen = set().union(*(names(load) for load in pack_loads)) if pack_loads else set()
    missing = NETWORKS[FAMILY[workflow.stem]] - seen
    assert not missing, f"{workflow.stem}: {sorted(missing)} never reached ComfyUI's loader; loads seen:\n" + \
        "\n".join(map(json.dumps, loads))
    for load in pack_loads:
        assert load["lowvram"] and load["cast_layers"] > 0, f"{workflow.stem}: loaded whole under {flag}: {load}"
        stray = [p for p in load["untouched"] if not any(p.endswith(k) for k in UNTOUCHED_AND_HANDLED)]
        assert not stray, (f"{workflow.stem}: {load['model']} has parameters no load moves or casts (on a GPU they "
                           f"stay on the CPU): {stray}")

    if flag == "--lowvram":  # a half budget may still load no layer whole where one layer is most of a model
        assert any(load["whole_layers"] for load in pack_loads), f"{workflow.stem}: no load was mixed: {pack_loads}"

    assert len(images) == len(expected)
    diff = max(int(np.abs(a - b).max()) for a, b in zip(images, expected))
    report_table(f"{flag} {workflow.stem}: max |diff| {diff}/255 vs the default server; {seconds:.1f} s "
                 f"(default {reference_s:.1f} s); {len(pack_loads)} partial loads of the pack's networks")
    assert diff <= IMAGE_TOLERANCE, f"{workflow.stem} under {flag} differs from the default by {diff}/255"
