"""The node library's help pages (issue 27): one per pack node in web/docs/, exactly what
tools/make_help_pages.py renders from the live node definitions now (so they cannot drift from the nodes), and
served where the frontend asks for them. The browser test that opens one is in test_browser_workflows.py."""
import urllib.request

import make_help_pages  # tools/

PREFIX = "TimeAwareSR_"


def test_every_pack_node_has_its_help_page_as_the_node_declares_itself_now(comfy):
    expected = make_help_pages.pages(comfy.object_info())
    assert len(expected) >= 20
    on_disk = {p.stem: p.read_text(encoding="utf-8") for p in make_help_pages.HELP_DIR.glob(f"{PREFIX}*.md")}
    assert sorted(on_disk) == sorted(expected), "run tools/make_help_pages.py: pages missing or left over"
    stale = [node_id for node_id, text in expected.items() if on_disk[node_id] != text]
    assert not stale, f"out of date (run tools/make_help_pages.py): {stale}"


def test_a_page_names_every_input_and_output_and_points_to_the_math(comfy):
    info = comfy.object_info()["TimeAwareSR_DoSSRSampler"]
    page = make_help_pages.pages({"TimeAwareSR_DoSSRSampler": info})["TimeAwareSR_DoSSRSampler"]
    for group in ("required", "optional"):
        for name in info["input"].get(group, {}):
            assert f"- **{name}** (" in page, name
    assert "- **SAMPLER** (SAMPLER): " in page and "`docs/dossr.md §3.1-§3.6`" in page
    assert "(1 to 3; default `3`)" in page  # the order widget's range and default


def test_the_server_serves_each_page_where_the_frontend_looks(comfy):
    """frontend 1.32.9: /extensions/<pack folder>/docs/<node id>.md, the folder from the node's python_module."""
    info = comfy.object_info()
    pack_folder = info["TimeAwareSR_RestoreSize"]["python_module"].split(".")[1]
    for node_id in (n for n in info if n.startswith(PREFIX)):
        url = f"{comfy.base_url}/extensions/{pack_folder}/docs/{node_id}.md"
        with urllib.request.urlopen(url, timeout=30) as r:
            assert r.read().decode().startswith(f"# {info[node_id]['display_name']}\n"), node_id


def test_the_pictures_a_page_shows_are_served_beside_it_as_the_readme_has_them(comfy):
    pack_folder = comfy.object_info()["TimeAwareSR_RestoreSize"]["python_module"].split(".")[1]
    for node_id, (name, _caption) in make_help_pages.PICTURES.items():
        assert f"]({name})" in (make_help_pages.HELP_DIR / f"{node_id}.md").read_text(encoding="utf-8")
        readme_copy = make_help_pages.PACK_DIR / "workflows" / "assets" / name
        with urllib.request.urlopen(f"{comfy.base_url}/extensions/{pack_folder}/docs/{name}", timeout=30) as r:
            assert r.read() == readme_copy.read_bytes(), f"{name}: the help panel's copy differs from the README's"
