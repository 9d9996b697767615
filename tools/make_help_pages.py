"""Write the help page of every pack node, web/docs/<node id>.md, which ComfyUI's node library shows in its help
panel (`python tools/make_help_pages.py`).

The frontend asks a custom node's extension folder for `docs/<node id>/<locale>.md`, then `docs/<node id>.md`
(frontend 1.32.9, NodeHelpService); ComfyUI serves the pack's WEB_DIRECTORY (`web/`) at /extensions/<pack>/.
A page is made from what the node declares (description, inputs with their tooltips, defaults and ranges,
outputs) as a live server reports it in /object_info, and from the docs its source file points to (the
"Math: docs/..." of the module's docstring), so pages never drift from the nodes: tests/test_help_pages.py
renders them again and compares.
"""
import pathlib
import re
import shutil
import sys

PACK_DIR = pathlib.Path(__file__).resolve().parents[1]
HELP_DIR = PACK_DIR / "web" / "docs"
PREFIX = "TimeAwareSR_"
SECTION = r"§\d+(?:\.\d+)*"
DOCS_REF = re.compile(rf"docs/\w+\.md(?: {SECTION}(?:-{SECTION})?(?:, {SECTION}(?:-{SECTION})?)*)?")
FILE_CHOICE = re.compile(r"(_name|time_vae)$")  # combos that list the files of a models/ folder: they vary by machine


# Pictures where one helps: node id -> (a README picture in workflows/assets/, its caption). Copied next to the
# pages, whose relative links the help panel resolves against the pages' folder.
PICTURES = {
    "TimeAwareSR_SDSVarianceMap": ("tss_maps.png", "A low-resolution input, its SDS variance map (white = textured) "
                                   "and the timestep each pixel is at halfway through tss_starter_x4's steps."),
    "TimeAwareSR_TSSSampler": ("tss_maps.png", "What TSS does: textured pixels (white in the variance map) are "
                               "further along their own schedule (smaller t) than smooth ones."),
    "TimeAwareSR_StarterModelLoader": ("before_after.jpg", "Bicubic x4, the starter model x4 (starter_sr_x4) and "
                                       "the original, on a photo the model never saw."),
}


def docs_references() -> dict[str, list[str]]:
    """Node id -> the docs sections its source file's docstring names."""
    found = {}
    for path in sorted((PACK_DIR / "nodes").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        docstring = re.match(r'\s*"""(.*?)"""', text, re.S)
        refs = DOCS_REF.findall(docstring.group(1)) if docstring else []
        for node_id in re.findall(rf'node_id="({PREFIX}\w+)"', text):
            found[node_id] = refs
    return found


def _kind(spec: list) -> str:
    return "choice" if isinstance(spec[0], list) else spec[0]


def _details(name: str, spec: list) -> str:
    """Default, range and options of a widget, in words (a file list only as "a file": it is this machine's)."""
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    options = spec[0] if isinstance(spec[0], list) else opts.get("options")
    if FILE_CHOICE.search(name):
        return "a file from the node's models/ folder"
    parts = []
    if options:
        parts.append("one of " + ", ".join(f"`{o}`" for o in options))
    if "min" in opts and "max" in opts and _kind(spec) in ("INT", "FLOAT"):
        parts.append(f"{opts['min']} to {opts['max']}")
    if opts.get("default") not in (None, ""):
        parts.append(f"default `{opts['default']}`")
    return "; ".join(parts)


def _line(text: str) -> str:
    return " ".join(str(text).split())


def render(node_id: str, info: dict, refs: list[str]) -> str:
    """Lists, not tables: the help panel is narrow."""
    lines = [f"# {info.get('display_name') or node_id}", "", info.get("description", "").strip(), "", "## Inputs", ""]
    for group in ("required", "optional"):
        for name, spec in info["input"].get(group, {}).items():
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            details = _details(name, spec)
            kind = _kind(spec) + (", optional" if group == "optional" else "")
            text = _line(opts.get("tooltip", "")) + (f" ({details})" if details else "")
            lines.append(f"- **{name}** ({kind}): {text.strip()}")
    lines += ["", "## Outputs", ""]
    tips = info.get("output_tooltips") or []
    for slot, (kind, name) in enumerate(zip(info["output"], info["output_name"])):
        tip = tips[slot] if slot < len(tips) and tips[slot] else ""
        lines.append(f"- **{name}** ({kind if isinstance(kind, str) else 'COMBO'}): {_line(tip)}")
    if node_id in PICTURES:
        name, caption = PICTURES[node_id]
        lines += ["", f"![{caption}]({name})", "", f"*{caption}*"]
    lines += ["", "## More", ""]
    if refs:
        lines.append("The equations and the choices behind this node, in the pack's folder: "
                     + ", ".join(f"`{r}`" for r in refs) + ".")
    lines.append("The shipped workflows (`workflows/` in the pack's folder) show it wired; the README lists every "
                 "node with its inputs.")
    return "\n".join(lines) + "\n"


def pages(object_info: dict) -> dict[str, str]:
    refs = docs_references()
    return {node_id: render(node_id, info, refs.get(node_id, []))
            for node_id, info in sorted(object_info.items()) if node_id.startswith(PREFIX)}


def main():
    sys.path.insert(0, str(PACK_DIR / "tests"))
    from support import comfy_live

    info = comfy_live.fresh_object_info()
    HELP_DIR.mkdir(parents=True, exist_ok=True)
    for old in HELP_DIR.glob(f"{PREFIX}*.md"):
        old.unlink()
    for name in {name for name, _caption in PICTURES.values()}:
        shutil.copyfile(PACK_DIR / "workflows" / "assets" / name, HELP_DIR / name)
    for node_id, text in pages(info).items():
        (HELP_DIR / f"{node_id}.md").write_text(text, encoding="utf-8")
        print(f"wrote {HELP_DIR / node_id}.md")


if __name__ == "__main__":
    main()
