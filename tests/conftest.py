"""Test set-up: ComfyUI importable in-process, the pack importable as `timeaware_sr`, and a
session-wide real ComfyUI server (`comfy` fixture) whose log is attached to failing tests."""
import importlib.util
import os
import pathlib
import sys

import pytest

TESTS_DIR = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS_DIR))

import comfy_live  # noqa: E402

PACK_DIR = comfy_live.PACK_DIR
COMFY_DIR = comfy_live.comfyui_dir()
sys.path.insert(0, str(COMFY_DIR))
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # unit tests are CPU and reproducible

from comfy.cli_args import args  # noqa: E402

args.cpu = True  # before comfy.model_management is first imported


def _import_pack(name: str = "timeaware_sr"):
    spec = importlib.util.spec_from_file_location(name, PACK_DIR / "__init__.py", submodule_search_locations=[str(PACK_DIR)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_import_pack().register_model_folders()  # as comfy_entrypoint does before ComfyUI reads the schemas
_server = None


@pytest.fixture(scope="session")
def test_model_dirs(tmp_path_factory):
    """Model folders handed to the live server through extra_model_paths.yaml."""
    import timeaware_sr

    root = tmp_path_factory.mktemp("models")
    folders = {name: root / name for name in ["checkpoints", "diffusion_models", *timeaware_sr.MODEL_FOLDERS]}
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
    import ckpt_factory

    target = test_model_dirs["dossr"] / "dossr_default.ckpt"
    if not target.exists():
        ckpt_factory.write_torch_checkpoint(target, ckpt_factory.dossr_state_dict("tiny"))
    return test_model_dirs
