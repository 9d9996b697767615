"""What the editor shows besides the graph: node descriptions and tooltips as /object_info serves
them, the pack's place in the node library, and in every shipped workflow a note, the load/sample/
finish groups and the model-download entries the frontend reads when a model file is missing."""
import pathlib
import re

import pytest

import frontend_download  # tools/
import workflow_builder  # tools/, on sys.path through conftest.py
from support import comfy_live
from workflow_specs import all_model_files  # tools/workflow_specs/

WORKFLOWS = sorted((comfy_live.PACK_DIR / "workflows").glob("*.json"))
BUNDLED_MODELS = {p.name for p in (comfy_live.PACK_DIR / "model_patches" / "weights").iterdir()}
PREFIX = "TimeAwareSR_"


def pack_nodes(object_info: dict) -> dict:
    return {k: v for k, v in object_info.items() if k.startswith(PREFIX)}


def test_every_pack_node_has_a_description_and_tooltips_on_inputs_and_outputs(comfy):
    nodes = pack_nodes(comfy.object_info())
    assert len(nodes) >= 9
    missing = []
    for name, info in nodes.items():
        if not info.get("description", "").strip():
            missing.append(f"{name}: description")
        for section in ("required", "optional"):
            for inp, spec in info["input"].get(section, {}).items():
                opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                if not opts.get("tooltip", "").strip():
                    missing.append(f"{name}.{inp}: input tooltip")
        tips = info.get("output_tooltips") or []
        for slot, out in enumerate(info["output_name"]):
            if slot >= len(tips) or not (tips[slot] or "").strip():
                missing.append(f"{name} output {slot} ({out}): output tooltip")
    assert not missing, "\n".join(missing)


def test_pack_nodes_form_one_block_in_the_sorted_node_library(comfy):
    """The node library lists categories alphabetically: the pack's nodes sit under one top-level
    category, with no other node's category sorting between two of them, and their names are unique."""
    info = comfy.object_info()
    categories = sorted({v["category"] for v in info.values()}, key=str.lower)
    ours = [i for i, c in enumerate(categories) if c.split("/")[0] == "TimeAwareSR"]
    assert ours and {info[k]["category"].split("/")[0] for k in pack_nodes(info)} == {"TimeAwareSR"}
    assert ours == list(range(ours[0], ours[-1] + 1)), [categories[i] for i in range(ours[0], ours[-1] + 1)]
    names = [v["display_name"] for v in pack_nodes(info).values()]
    assert len(set(names)) == len(names), names


def model_values(node: dict) -> list[str]:
    return [v for v in node.get("widgets_values") or [] if workflow_builder.is_model_value(v)]


def note_of(workflow: dict) -> str:
    (note,) = [n for n in workflow["nodes"] if n["type"] in comfy_live.FRONTEND_ONLY_NODES]
    return note["widgets_values"][0]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_model_file_a_workflow_names_downloads_in_the_editor_or_its_note_says_where(path):
    """A properties.models entry only where the editor downloads it (a direct file link on an allowed host, the
    file the widget names); every other file is in MODEL_FILES, and the note gives its page and its folder."""
    known = all_model_files()
    workflow = comfy_live.load_workflow(path)
    note = note_of(workflow)
    checked = 0
    for node in workflow["nodes"]:
        values = model_values(node)
        entries = {e["name"]: e for e in node.get("properties", {}).get("models", [])}
        for name, entry in entries.items():
            assert frontend_download.downloadable(name, entry["url"]), f"node {node['id']}: the editor refuses {entry}"
            assert name in values, f"node {node['id']} ({node['type']}) offers {name!r}, which no widget names"
            assert entry["directory"] == known[name]["directory"], entry
        for value in values:
            if value in BUNDLED_MODELS:
                continue
            checked += 1
            assert value in known, f"node {node['id']} ({node['type']}) names {value!r}, which MODEL_FILES lacks"
            assert known[value].get("license"), f"{value}: MODEL_FILES gives no licence"
            if value not in entries:
                page, folder = known[value]["url"], known[value]["directory"]
                assert page in note, f"{path.name}: the note does not say where to get {value} ({page})"
                assert f"models/{folder}/" in note, f"{path.name}: the note does not say {value} goes in models/{folder}/"
    if any(n["type"].startswith("TimeAwareSR_DoSSR") and "Loader" in n["type"] for n in workflow["nodes"]):
        assert checked, "a DoSSR workflow with no model file checked"


@pytest.mark.parametrize("name, url, expected", [
    ("v2-1_512-ema-pruned.safetensors",
     "https://huggingface.co/someone/sd21/resolve/main/v2-1_512-ema-pruned.safetensors", True),
    ("x.safetensors", "https://civitai.com/api/download/models/833921", True),
    ("v2-1_512-ema-pruned.safetensors", "https://huggingface.co/stabilityai/stable-diffusion-2-1-base", False),  # a page
    ("other.safetensors", "https://huggingface.co/someone/sd21/resolve/main/v2-1_512-ema-pruned.safetensors", False),
    ("tasr_v1.pth", "https://huggingface.co/SleepyLin/TASR/resolve/main/tasr_v1.pth", False),  # .pth: 1.32 refuses
    ("BSRNet.pth", "https://github.com/cszn/KAIR/releases/download/v1.0/BSRNet.pth", False),  # host
    ("dossr_default.ckpt", "https://drive.google.com/drive/folders/1BTGRbAqXDSNWjyUnTLgDfmjd2xyu8GvP", False),
])
def test_the_download_rule_takes_direct_file_links_on_allowed_hosts_only(name, url, expected):
    assert frontend_download.downloadable(name, url) is expected


# In the minified bundle: an array of URL prefixes with huggingface.co, then (as the next declaration) an
# array of file suffixes. 1.32.9 quotes with ", 1.58.1 with `.
BUNDLE_RULE = re.compile(r"\[((?:[\"`]https?://[^\"`]*[\"`],?)+)\],\w+=\[((?:[\"`]\.\w+[\"`],?)+)\]")


def bundle_rule() -> tuple[set, set, str]:
    """(hosts, suffixes, version) of the editor's download rule, read from the installed frontend bundle."""
    import importlib.metadata

    import comfyui_frontend_package

    assets = pathlib.Path(comfyui_frontend_package.__file__).parent / "static" / "assets"
    version = importlib.metadata.version("comfyui_frontend_package")
    for js in sorted(assets.glob("*.js")):
        for hosts, suffixes in BUNDLE_RULE.findall(js.read_text(encoding="utf-8", errors="replace")):
            if "huggingface.co" in hosts:
                split = lambda text: set(re.findall(r"[\"`]([^\"`]+)[\"`]", text))  # noqa: E731
                return split(hosts), split(suffixes), version
    pytest.fail(f"the editor's download rule (allowed hosts, then suffixes) was not found in comfyui-frontend-package "
                f"{version}: read it there and update tools/frontend_download.py and BUNDLE_RULE")


def test_the_pack_download_rule_is_within_the_installed_editors():
    hosts, suffixes, version = bundle_rule()
    assert set(frontend_download.HOSTS) <= hosts, f"frontend {version} allows only {sorted(hosts)}"
    assert set(frontend_download.SUFFIXES) <= suffixes, f"frontend {version} allows only {sorted(suffixes)}"


def test_the_model_check_sees_a_missing_entry():
    """The same walk over a node without its entry finds the value (the check above can fail)."""
    node = {"id": 1, "type": "CheckpointLoaderSimple", "widgets_values": ["someone_else.safetensors"], "properties": {}}
    assert model_values(node) == ["someone_else.safetensors"] and "someone_else.safetensors" not in BUNDLED_MODELS


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_workflow_has_a_note_and_the_three_groups(path):
    workflow = comfy_live.load_workflow(path)
    notes = [n for n in workflow["nodes"] if n["type"] in comfy_live.FRONTEND_ONLY_NODES]
    assert len(notes) == 1
    text = notes[0]["widgets_values"][0]
    for heading in ("## Model files", "## Knobs"):
        assert heading in text, f"{path.name}'s note has no {heading!r} section"
    assert [g["title"] for g in workflow["groups"]] == list(workflow_builder.GROUPS)


def test_groups_come_from_the_graph_shape_for_a_workflow_nobody_laid_out(comfy):
    """A stock txt2img-style graph with KSampler, never mentioned in the builder, gets its groups."""
    nodes = {
        1: ("CheckpointLoaderSimple", {"ckpt_name": "x.safetensors"}),
        2: ("LoadImage", {"image": "a.png"}),
        3: ("VAEEncode", {"pixels": (2, 0), "vae": (1, 2)}),
        4: ("CLIPTextEncode", {"text": "a", "clip": (1, 1)}),
        5: ("KSampler", {"model": (1, 0), "positive": (4, 0), "negative": (4, 0), "latent_image": (3, 0)}),
        6: ("VAEDecode", {"samples": (5, 0), "vae": (1, 2)}),
        7: ("SaveImage", {"images": (6, 0)}),
        8: ("PreviewImage", {"images": (2, 0)}),
    }
    groups = workflow_builder.node_groups(nodes, comfy.object_info())
    assert groups == {1: "load", 2: "load", 3: "load", 4: "sample", 5: "sample", 6: "finish", 7: "finish", 8: "load"}
    built = workflow_builder.build_workflow(nodes, comfy.object_info(), note="# hi")
    xs = {n["id"]: n["pos"][0] for n in built["nodes"]}
    assert xs[9] < xs[1] < xs[3] < xs[5] < xs[6] < xs[7]  # note, then left to right along the links
