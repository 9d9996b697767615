"""Every shipped workflow as a user meets it: ComfyUI's own page in headless Chromium, the file
loaded the way drag-and-drop loads it, looked at, and queued from the page.

One browser serves the session and each workflow gets its own page. Screenshots of the loaded
graphs go to the session's tmp dir (/tmp/pytest-of-<user>/pytest-<n>/workflow_screenshots0/). The two broken workflows at the
end prove that the same check fails on an unknown node type and on an out-of-range widget value.
"""
import copy
import shutil

import pytest

import test_workflows
import workflow_builder  # tools/, on sys.path through conftest.py
from support import comfy_browser, comfy_live

WORKFLOWS = sorted((comfy_live.PACK_DIR / "workflows").glob("*.json"))


@pytest.fixture(scope="session")
def browser(comfy):
    comfy_browser.store_settings(comfy.base_url)
    try:
        playwright, browser = comfy_browser.launch()
    except comfy_browser.BrowserMissing as e:
        pytest.fail(f"the browser tests need Chromium and playwright: {e}", pytrace=False)
    yield browser
    comfy_browser.close(playwright, browser)


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory):
    """<pytest's base temp>/workflow_screenshots0/<workflow>.png"""
    return tmp_path_factory.mktemp("workflow_screenshots")


@pytest.fixture
def page(browser, comfy):
    shutil.copy(test_workflows.SAMPLE, comfy.input_dir / test_workflows.SAMPLE.name)  # the image the files name
    page = comfy_browser.open_page(browser, comfy.base_url)
    yield page
    page.close()


def load_problems(page, workflow: dict, name: str) -> list[str]:
    """Load as drag-and-drop does; everything a user would see go wrong."""
    comfy_browser.load_workflow(page, workflow, name)
    state = comfy_browser.graph_state(page)
    problems = [f"missing node type {n['type']!r} (node {n['id']})" for n in state["nodes"] if not n["registered"]]
    problems += [f"node {n['id']} ({n['type']}) is marked as having errors" for n in state["nodes"] if n["has_errors"]]
    problems += [f"node {n['id']} ({n['type']}): {text}" for n in state["nodes"] for text in n["out_of_range"]]
    problems += [f"the page reports after loading: {text[:1000]}" for text in comfy_browser.shown_errors(page)]
    problems += [f"page error: {e}" for e in page.errors]
    in_page = {n["id"]: n["widgets_values"] for n in state["nodes"]}
    for node in workflow["nodes"]:
        if node["id"] in in_page and in_page[node["id"]] != node.get("widgets_values", []):
            problems.append(f"node {node['id']} ({node['type']}) widget values in the page "
                            f"{in_page[node['id']]} differ from the file's {node.get('widgets_values')}")
    return problems


def overlaps(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def layout_problems(state: dict) -> list[str]:
    """On the page's real node sizes: no two nodes overlap, each node sits inside its one group (the
    note outside all), and every link runs left to right."""
    nodes = {n["id"]: n for n in state["nodes"]}
    problems = [f"nodes {a} and {b} overlap" for a in nodes for b in nodes
                if a < b and overlaps(nodes[a]["bounding"], nodes[b]["bounding"])]
    inside = lambda box, g: (g[0] <= box[0] and g[1] <= box[1] and box[0] + box[2] <= g[0] + g[2]  # noqa: E731
                             and box[1] + box[3] <= g[1] + g[3])
    for n in nodes.values():
        containing = [g["title"] for g in state["groups"] if inside(n["bounding"], g["bounding"])]
        expected = 0 if n["type"] in comfy_live.FRONTEND_ONLY_NODES else 1
        if len(containing) != expected:
            problems.append(f"node {n['id']} ({n['type']}) is inside groups {containing}")
    for origin, target in state["links"]:
        a, b = nodes[origin]["bounding"], nodes[target]["bounding"]
        if a[0] + a[2] > b[0]:
            problems.append(f"link {origin} -> {target} runs right to left")
    if sorted(g["title"] for g in state["groups"]) != sorted(workflow_builder.GROUPS):
        problems.append(f"groups {[g['title'] for g in state['groups']]}")
    return problems


def queue_and_wait(page, comfy) -> dict:
    """Queue from the page; the server's refusal (HTTP 400) comes back as an AssertionError."""
    answer = comfy_browser.queue_from_page(page)
    assert "prompt_id" in answer, f"the server refused the page's prompt: {answer}"
    return comfy.wait(answer["prompt_id"])["outputs"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_shipped_workflow_in_the_browser(page, comfy, shipped_models, screenshots, path):
    workflow = comfy_live.load_workflow(path)
    problems = load_problems(page, workflow, path.stem)
    assert not problems, "\n".join(problems)
    problems = layout_problems(comfy_browser.graph_state(page))
    assert not problems, "\n".join(problems)
    comfy_browser.fit_view(page)
    assert not comfy_browser.visible_dialogs(page), "a dialog is open over the graph: no screenshot of it"
    page.screenshot(path=str(screenshots / f"{path.stem}.png"))

    expected = comfy_live.workflow_to_prompt(workflow, comfy.object_info())
    assert comfy_browser.graph_to_prompt(page) == expected

    outputs = queue_and_wait(page, comfy)
    saved = [p for node_id in outputs for p in comfy.output_images(outputs, node_id)]
    assert saved
    for image in saved:
        test_workflows.check_upscaled(image, path.stem, workflow)
    assert not page.errors, page.errors


def starter_workflow() -> dict:
    return copy.deepcopy(comfy_live.load_workflow(comfy_live.PACK_DIR / "workflows" / "starter_sr_x4.json"))


def test_browser_check_catches_an_unknown_node_type(page, comfy, shipped_models):
    workflow = starter_workflow()
    node = next(n for n in workflow["nodes"] if n["type"] == "TimeAwareSR_DoSSRScheduler")
    node["type"] = "TimeAwareSR_NoSuchScheduler"
    problems = load_problems(page, workflow, "broken_unknown_type")
    assert any("missing node type 'TimeAwareSR_NoSuchScheduler'" in p for p in problems), problems
    assert any(p.startswith("the page reports after loading") and "TimeAwareSR_NoSuchScheduler" in p for p in problems), problems


def test_browser_check_catches_a_widget_value_out_of_range(page, comfy, shipped_models):
    """t1 = 5000 on the DoSSR Scheduler (allowed: 2-1000): the page keeps the value as the file has it
    (no clamping), the in-page range check reports it, and the server refuses the page's prompt."""
    workflow = starter_workflow()
    node = next(n for n in workflow["nodes"] if n["type"] == "TimeAwareSR_DoSSRScheduler")
    node["widgets_values"][1] = 5000
    problems = load_problems(page, workflow, "broken_out_of_range")
    assert any("t1 = 5000 is outside the widget's range 2..1000" in p for p in problems), problems
    with pytest.raises(AssertionError, match="refused") as refused:
        queue_and_wait(page, comfy)
    assert "t1" in str(refused.value) and "5000" in str(refused.value)  # the server names the input and value


def test_layout_check_sees_overlaps_stray_nodes_and_backward_links():
    """layout_problems on a hand-made page state (no browser): the check above can fail."""
    group = lambda title, x: {"title": title, "bounding": [x, 0, 400, 400]}  # noqa: E731
    node = lambda i, x, y: {"id": i, "type": "VAEDecode", "bounding": [x, y, 100, 100]}  # noqa: E731
    good = {"nodes": [node(1, 10, 10), node(2, 410, 10), node(3, 810, 10)], "links": [[1, 2], [2, 3]],
            "groups": [group("load", 0), group("sample", 400), group("finish", 800)]}
    assert layout_problems(good) == []
    overlapping = copy.deepcopy(good)
    overlapping["nodes"][1]["bounding"] = [50, 50, 100, 100]
    problems = layout_problems(overlapping)
    assert "nodes 1 and 2 overlap" in problems and "link 2 -> 3 runs right to left" not in problems
    backward = copy.deepcopy(good)
    backward["links"].append([3, 1])
    assert layout_problems(backward) == ["link 3 -> 1 runs right to left"]
    stray = copy.deepcopy(good)
    stray["nodes"][2]["bounding"] = [1300, 10, 100, 100]
    assert layout_problems(stray) == ["node 3 (VAEDecode) is inside groups []"]


DOWNLOAD_REFUSED = ("not allowed", "Only allowed suffixes", "Invalid directory")  # the dialog's errors (1.32.9)


def with_model_files_missing(workflow: dict, extra_entry: dict | None = None) -> dict:
    """A copy whose model widgets, and their properties.models entries, name files the server does not have;
    extra_entry (name, url, directory) is added to the first model loader's entries."""
    workflow = copy.deepcopy(workflow)
    for node in workflow["nodes"]:
        values = node.get("widgets_values") or []
        named = [i for i, v in enumerate(values) if workflow_builder.is_model_value(v)]
        for i in named:
            values[i] = f"missing_{values[i]}"
        entries = node.setdefault("properties", {}).setdefault("models", [])
        for entry in entries:
            entry["name"] = f"missing_{entry['name']}"
        if named and extra_entry:
            values[named[0]] = extra_entry["name"]
            entries.append(extra_entry)
            extra_entry = None
    return workflow


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_with_its_model_files_missing_a_workflow_shows_no_download_error(page, comfy, path):
    """What a new user meets first: the Missing Models report may list files, but never with the editor's
    refusal to download one (issue 27)."""
    workflow = with_model_files_missing(comfy_live.load_workflow(path))
    comfy_browser.load_workflow(page, workflow, f"{path.stem}_missing_models")
    shown = comfy_browser.shown_errors(page)
    refused = [text for text in shown if any(error in text for error in DOWNLOAD_REFUSED)]
    assert not refused, f"{path.stem}: the page shows a refused download: {refused}"


def test_the_missing_models_check_sees_a_refused_download(page, comfy):
    """The same check on a workflow with a Google Drive entry (the kind the workflows had): the report shows
    the editor's refusal, so the test above can fail."""
    drive = {"name": "dossr_default.ckpt", "directory": "dossr",
             "url": "https://drive.google.com/drive/folders/1BTGRbAqXDSNWjyUnTLgDfmjd2xyu8GvP"}
    workflow = with_model_files_missing(comfy_live.load_workflow(WORKFLOWS[0]), {**drive, "name": "missing_dossr.ckpt"})
    comfy_browser.load_workflow(page, workflow, "drive_entry")
    shown = comfy_browser.shown_errors(page)
    assert any("not allowed" in text for text in shown), shown


OPEN_HELP_JS = """id => {
  // What the node library's help button does: the Nodes tab, then the node's help page in it.
  const pinia = document.querySelector('#vue-app').__vue_app__.config.globalProperties.$pinia;
  const def = pinia._s.get('nodeDef').nodeDefsByName[id];
  if (pinia._s.get('sidebarTab').activeSidebarTabId !== 'node-library')
    pinia._s.get('sidebarTab').toggleSidebarTab('node-library');
  pinia._s.get('nodeHelp').openHelp(def);
}"""


def test_the_node_library_shows_a_pack_nodes_help_page(page, comfy):
    page.evaluate(OPEN_HELP_JS, "TimeAwareSR_RestoreSize")
    tooltip = comfy.object_info()["TimeAwareSR_RestoreSize"]["input"]["optional"]["mask"][1]["tooltip"]
    page.get_by_text(tooltip[:40], exact=False).first.wait_for(state="visible", timeout=30_000)
    assert page.get_by_role("heading", name="Inputs").first.is_visible()
