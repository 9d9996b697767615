"""The pack loads in real ComfyUI: registration, model folders, load time, server log."""
import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from support import comfy_live
import timeaware_sr
from timeaware_sr.nodes import NODE_LIST

PACK_NODE_IDS = sorted(cls.GET_SCHEMA().node_id for cls in NODE_LIST)


def test_every_node_id_is_prefixed_and_unique():
    assert len(PACK_NODE_IDS) == len(set(PACK_NODE_IDS))
    assert all(node_id.startswith("TimeAwareSR_") for node_id in PACK_NODE_IDS)


def test_every_input_has_a_tooltip_and_every_node_a_description():
    for cls in NODE_LIST:
        schema = cls.GET_SCHEMA()
        assert schema.description, schema.node_id
        for inp in schema.inputs:
            assert inp.tooltip, f"{schema.node_id}.{inp.id} has no tooltip"


def test_model_folders_are_added_without_overwriting_user_folders(tmp_path):
    import folder_paths

    saved = dict(folder_paths.folder_names_and_paths)
    try:
        user_dir = str(tmp_path / "my_dossr")
        for name in timeaware_sr.MODEL_FOLDERS:  # as at ComfyUI start-up, before the pack loads
            folder_paths.folder_names_and_paths.pop(name, None)
        folder_paths.add_model_folder_path("dossr", user_dir)  # what extra_model_paths.yaml does
        timeaware_sr.register_model_folders()
        timeaware_sr.register_model_folders()  # idempotent
        paths, extensions = folder_paths.folder_names_and_paths["dossr"]
        assert paths == [user_dir, os.path.join(folder_paths.models_dir, "dossr")]
        assert ".safetensors" in extensions and ".ckpt" in extensions
        for name in timeaware_sr.MODEL_FOLDERS:
            assert os.path.join(folder_paths.models_dir, name) in folder_paths.get_folder_paths(name)
    finally:
        folder_paths.folder_names_and_paths.clear()
        folder_paths.folder_names_and_paths.update(saved)


LOAD_TIME_LIMIT_S = 0.5  # measured ~15 ms (2-core machine); ComfyUI flags packs by their import time


def test_loading_the_pack_is_fast(report_table):
    """ComfyUI imports every pack at start-up, after its own modules (nodes.py pulls in comfy.sd,
    torch, ...). The pack's own import and node list are timed in that state: the samplers and
    patches may load up front (they cost milliseconds), but no weights, devices or downloads."""
    script = textwrap.dedent(f"""
        import asyncio, importlib.util, sys, json, time
        sys.path.insert(0, {str(comfy_live.comfyui_dir())!r})
        from comfy.cli_args import args; args.cpu = True  # as main.py --cpu
        import nodes  # ComfyUI's own start-up imports, before any custom node
        start = time.perf_counter()
        spec = importlib.util.spec_from_file_location("pack", {str(comfy_live.PACK_DIR / '__init__.py')!r},
                                                      submodule_search_locations=[{str(comfy_live.PACK_DIR)!r}])
        pack = importlib.util.module_from_spec(spec); sys.modules["pack"] = pack; spec.loader.exec_module(pack)
        ext = asyncio.run(pack.comfy_entrypoint())
        node_list = asyncio.run(ext.get_node_list())
        seconds = time.perf_counter() - start
        print(json.dumps({{"nodes": len(node_list), "seconds": seconds}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["nodes"] == len(NODE_LIST)
    report_table(f"pack load time (import + node list, after ComfyUI's own imports): {result['seconds'] * 1e3:.1f} ms")
    assert result["seconds"] < LOAD_TIME_LIMIT_S


def test_live_server_lists_every_pack_node(comfy):
    info = comfy.object_info()
    missing = [node_id for node_id in PACK_NODE_IDS if node_id not in info]
    assert missing == []
    for node_id in PACK_NODE_IDS:
        assert info[node_id]["category"].startswith("TimeAwareSR")


def test_live_server_log_has_no_import_error_or_traceback_from_the_pack(comfy, comfy_server):
    log = comfy_server.log_text().split("Starting server")[0]  # start-up only; later tests raise on purpose
    assert log, "no start-up log"
    # A frame in a pack file: through the custom_nodes link, or the checkout itself (not the
    # bootstrapped .comfyui/ inside it).
    pack_frame = re.compile(r'File "(?:[^"]*/%s/|%s/(?!\.comfyui/))' % (
        re.escape(comfy_live.PACK_FOLDER_NAME), re.escape(str(comfy_live.PACK_DIR))))
    assert re.search(r"\d+\.\d+ seconds: .*" + re.escape(comfy_live.PACK_FOLDER_NAME), log), "pack not in import list"
    assert "IMPORT FAILED" not in "\n".join(l for l in log.splitlines() if comfy_live.PACK_FOLDER_NAME in l)
    for block in log.split("Traceback (most recent call last):")[1:]:
        block = block.split("\n\n")[0]
        assert not pack_frame.search(block), f"traceback from the pack:\n{block}"


def test_live_server_sees_user_configured_model_folder(comfy, test_model_dirs):
    (test_model_dirs["dossr"] / "user_model.safetensors").write_bytes(b"")
    assert "user_model.safetensors" in comfy.get("/models/dossr")


def test_live_server_serves_shipped_workflows_as_templates(comfy):
    templates = comfy.get("/workflow_templates")
    shipped = sorted(p.stem for p in (comfy_live.PACK_DIR / "workflows").glob("*.json"))
    assert shipped and sorted(templates[comfy_live.PACK_FOLDER_NAME]) == shipped
