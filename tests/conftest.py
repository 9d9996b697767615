"""Test set-up: ComfyUI importable in-process, the pack importable as `timeaware_sr`, the generators
of workflows/ in tools/ importable (`workflow_builder`, `workflow_specs`), and a session-wide real
ComfyUI server (`comfy` fixture) whose log is attached to failing tests."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(1, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))  # the one place tests reach tools/

from support import comfy_live, env  # noqa: E402

COMFY_DIR = env.setup(cpu=True)  # unit tests are CPU and reproducible
_server = None


@pytest.fixture(scope="session")
def test_model_dirs(tmp_path_factory):
    """Model folders handed to the live server through extra_model_paths.yaml."""
    import timeaware_sr

    root = tmp_path_factory.mktemp("models")
    folders = {name: root / name for name in ["checkpoints", "diffusion_models", "upscale_models", *timeaware_sr.MODEL_FOLDERS]}
    for path in folders.values():
        path.mkdir()
    return folders


@pytest.fixture(scope="session")
def comfy(tmp_path_factory, test_model_dirs):
    """A client of a real ComfyUI server (headless, --cpu) with the pack loaded."""
    global _server
    server = comfy_live.ComfyServer(tmp_path_factory.mktemp("comfyui"), test_model_dirs)
    _server = server
    try:
        server.start()
        yield server.client
    finally:
        server.stop()
        _server = None


@pytest.fixture(scope="session")
def comfy_server(comfy):
    return _server


@pytest.fixture(autouse=True)
def live_server_starts_idle(request):
    """Every live test starts on an idle server: whatever an earlier test left running or queued
    (one that failed between queueing and waiting) is interrupted and cleared first, and said so."""
    if "comfy" in request.fixturenames or "comfy_server" in request.fixturenames:
        note = request.getfixturevalue("comfy").ensure_idle()
        if note:
            request.node.add_report_section("setup", "live server", note)
            print(f"\n[live server] {note}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _server is not None and "comfy" in item.fixturenames:
        report.sections.append(("ComfyUI server log (tail)", _server.log_tail()))


_tables = []


@pytest.fixture
def report_table():
    """Tests that measure something print their table at the end of the run, even when passing."""
    return _tables.append


def pytest_terminal_summary(terminalreporter):
    for table in _tables:
        terminalreporter.write_line(table)
    live = [r for r in terminalreporter.stats.get("passed", []) if "live" in r.keywords]
    failed = [r for r in terminalreporter.stats.get("failed", []) if "live" in r.keywords]
    terminalreporter.write_line(f"live ComfyUI server tests: {len(live)} passed, {len(failed)} failed (ComfyUI at {COMFY_DIR})")


def pytest_collection_modifyitems(items):
    for item in items:
        if "comfy" in item.fixturenames or "comfy_server" in item.fixturenames:
            item.add_marker(pytest.mark.live)


@pytest.fixture(scope="session")
def shipped_models(test_model_dirs):
    """Tiny random-weight stand-ins, in the official formats, for every model file the shipped
    workflows name."""
    from support import shipped_models as shipped

    shipped.write_all(test_model_dirs)
    return test_model_dirs
