"""No input can take the server's memory (issue 11 item 1): the linked `steps = 100000` case, run in a
subprocess whose address space is capped with resource.setrlimit, ends in a clear error (the TDS
Scheduler's own range) or in success (the TSS sampler on a 100000-step schedule from elsewhere builds
each step's per-pixel maps when the step runs), never in a kill. Building the maps of all steps at
once, as before, would need 100001 x 128² x 12 bytes = 19.7 GB here."""
import json
import pathlib
import subprocess
import sys
import textwrap

TESTS_DIR = pathlib.Path(__file__).resolve().parent
HEADROOM_GB = 1.5  # above the address space the child has after its imports and set-up

CHILD = textwrap.dedent("""
    import json, resource, sys
    sys.path.insert(0, sys.argv[1])
    from support import env
    env.setup(cpu=True)
    from types import SimpleNamespace
    import torch
    from support import ckpt_factory as cf
    from timeaware_sr.clear_errors import InputError
    from timeaware_sr.model_patches.sd_components import build_unet
    from timeaware_sr.model_patches.tss.spatial_timestep import patch_spatial_timesteps
    from timeaware_sr.nodes.tds_scheduler import TDSScheduler
    from timeaware_sr.samplers.tds_schedule import tds_sigmas
    from timeaware_sr.samplers.tss_sampler import sample_tss

    sd = cf.unet_state_dict("sd21", "tiny", "eps")
    patched = patch_spatial_timesteps(build_unet({k[len(cf.UNET_PREFIX):]: v for k, v in sd.items()}))
    ms = patched.get_model_object("model_sampling")
    x = torch.randn(1, 4, 128, 128)           # a 1024² image's latent
    variance = torch.rand(1, 1024, 1024)
    sigmas = tds_sigmas(ms, 100000)           # what a 100000-step scheduler hands the sampler

    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize")) * 1024
    limit = vm + int(float(sys.argv[2]) * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    result = {"limit_gb": limit / 2**30}
    try:
        TDSScheduler.execute(patched, 100000, 550.0, 2.0, 999.0, 0.0)
        result["node"] = "accepted"
    except InputError as e:
        result["node"] = str(e)

    class Stop(Exception):
        pass

    class FreeModel:  # the sampler's own memory around a model that costs nothing
        inner_model = SimpleNamespace(model_patcher=patched)

        def __call__(self, x, sigma, **kwargs):
            return x * 0.5

    def stop_after(info, steps=200):  # ComfyUI's interrupt also leaves through the callback
        if info["i"] + 1 >= steps:
            raise Stop

    try:
        sample_tss(FreeModel(), x, sigmas, variance=variance, model_sampling=ms, disable=True, callback=stop_after)
        result["sampler"] = "finished"
    except Stop:
        result["sampler"] = "ran 200 of 100000 steps"
    except MemoryError as e:
        result["sampler"] = f"MemoryError: {e}"
    print(json.dumps(result))
""")


def test_a_100000_step_schedule_under_a_memory_cap_ends_cleanly():
    out = subprocess.run([sys.executable, "-c", CHILD, str(TESTS_DIR), str(HEADROOM_GB)], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, f"the child ended with {out.returncode} (negative: killed by a signal)\n{out.stderr[-3000:]}"
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["node"] == "TDS Scheduler (TSS): steps must be at least 1 and at most 1000, got 100000"
    assert result["sampler"] == "ran 200 of 100000 steps", result
