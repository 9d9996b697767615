"""tools/gpu_check.py (make gpu-check) end to end on the CPU with --quick: every method gives its row, and a
method that does not run fails the check after the table of what did run.

The script runs as a subprocess, as `make gpu-check` runs it, with one torch thread: on a shared machine two
threads' OpenMP spin-waits made the same run 4x slower (measured: 54 s against 23 s for one row)."""
import json
import math
import os
import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "tools" / "gpu_check.py"
# The rows, written out here so that a method dropped from the script's list fails the test.
ROWS = ("TSS", "DoSSR-5", "TADSR", "TASR-20", "ResShift-15", "SinSR-1", "DoSSR 4096² tiled")


def gpu_check(*args, env=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)


def table_row(stdout: str, method: str) -> str:
    rows = [line for line in stdout.splitlines() if line.split(" | ")[0].strip() == method]
    assert len(rows) == 1, f"{method}: {len(rows)} table rows in\n{stdout}"
    return rows[0]


def test_quick_cpu_run_gives_every_row(tmp_path):
    out = tmp_path / "gpu_check.json"
    run = gpu_check("--device", "cpu", "--quick", "--json", str(out))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["failures"] == []
    assert [r["method"] for r in report["rows"]] == list(ROWS)
    for r in report["rows"]:
        assert r["error"] is None, r
        assert math.isfinite(r["time_min_s"]) and 0 < r["time_min_s"] <= r["time_median_s"], r
        assert r["peak_vram_bytes"] is None  # CPU: "n/a"
        assert "n/a" in table_row(run.stdout, r["method"]).split(" | ")[7]
        if "ratio" in r:
            assert math.isfinite(r["ratio"]) and r["ratio"] > 0, r
        else:
            assert r["ratio_reason"], r
        for precision in ("fp16", "bf16"):
            cell = r[precision]
            if "reason" in cell:
                assert cell["reason"].strip(), r
            else:
                assert math.isfinite(cell["max_abs"]) and cell["psnr_db"] > 0, r
                # the flags reached the loaders: some network is stored in another dtype than in the fp32 run
                assert cell["dtypes"] != r["fp32_dtypes"], r
        assert table_row(run.stdout, r["method"]).split(" | ")[3].strip() == f"{r['time_min_s']:.4f}"
    compared = [r for r in report["rows"] if "max_abs" in r["fp16"]]
    assert len(compared) >= len(ROWS) - 1, "only the 4096² row may skip the dtype comparison"


def test_a_method_that_does_not_run_fails_the_check(tmp_path):
    out = tmp_path / "gpu_check.json"
    run = gpu_check("--device", "cpu", "--quick", "--json", str(out), "--only", "TADSR", "--only", "SinSR-1",
                    "--inject-failure", "SinSR-1")
    assert run.returncode != 0
    assert "DID NOT RUN" in run.stderr and "SinSR-1: NotRun: failure injected" in run.stderr, run.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {r["method"]: r for r in report["rows"]}
    assert rows["TADSR"]["error"] is None and math.isfinite(rows["TADSR"]["time_min_s"])  # the table of what did run
    assert "injected" in rows["SinSR-1"]["error"]
    assert "DID NOT RUN" in table_row(run.stdout, "SinSR-1")
    assert "DID NOT RUN" not in table_row(run.stdout, "TADSR")


def test_missing_cuda_unknown_methods_and_bad_repeats_fail_with_a_reason(tmp_path):
    out = tmp_path / "gpu_check.json"
    run = gpu_check("--device", "cuda", "--quick", "--json", str(out), env={"CUDA_VISIBLE_DEVICES": ""})
    assert run.returncode != 0
    assert "CUDA is not available" in run.stderr
    assert len(json.loads(out.read_text())["failures"]) == len(ROWS)
    run = gpu_check("--device", "cpu", "--quick", "--only", "NoSuchMethod", "--json", str(out))
    assert run.returncode != 0 and "invalid choice: 'NoSuchMethod'" in run.stderr
    run = gpu_check("--device", "cpu", "--quick", "--repeats", "0", "--json", str(out))
    assert run.returncode != 0 and "--repeats: must be a whole number of at least 1, got '0'" in run.stderr, run.stderr
