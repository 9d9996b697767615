"""The math the product code cites lives in docs/, and every citation points at a real section.

Product code (nodes/, samplers/, model_patches/, __init__.py, clear_errors.py) cites the math as
`docs/<file>.md §n` (also `§1-2` for a span, `§2.5` for a subsection). These tests read the files
as text only (no ComfyUI import): every cited file must exist and have a markdown heading containing
`§n ` for every cited section; nothing may still cite the old out-of-repo spec; and docs/README.md's
index must link only to pages that exist and list every page's sections.
"""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PRODUCT_DIRS = ("nodes", "samplers", "model_patches", "image_ops")
PRODUCT_TOP_FILES = ("__init__.py", "clear_errors.py")

SECTION = r"\d+(?:\.\d+)?"
SECTION_ITEM = re.compile(rf"§({SECTION})(?:\s*[-–]\s*§?({SECTION}))?")
# `docs/<file>.md`, then any sections right after it: §3 | §1-2 | §2.5 | §3, §4
REFERENCE = re.compile(
    rf"docs/(?P<file>[\w.-]+\.md)(?P<sections>(?:\s*,?\s*§{SECTION}(?:\s*[-–]\s*§?{SECTION})?)*)")
SPEC_CITATION = re.compile(r"\bSPEC\b")  # "SPEC §3", "SPEC §1-2", "SPEC.md", "as SPEC asks"
MARKDOWN_LINK = re.compile(r"\]\((?P<target>[^)\s#]+\.md)(?:#[^)]*)?\)")


def product_files() -> list[pathlib.Path]:
    files = [path for d in PRODUCT_DIRS for path in sorted((ROOT / d).rglob("*.py"))]
    return files + [ROOT / name for name in PRODUCT_TOP_FILES if (ROOT / name).is_file()]


def cited_sections(sections: str) -> list[str]:
    """'§1-2' -> ['1', '2']; '§3, §4' -> ['3', '4']; '§2.5' -> ['2.5']; an integer span is filled in."""
    cited = []
    for first, last in SECTION_ITEM.findall(sections):
        if last and first.isdigit() and last.isdigit():
            cited += [str(n) for n in range(int(first), int(last) + 1)]
        else:
            cited += [first] + ([last] if last else [])
    return cited


def find_references(text: str) -> list[tuple[str, list[str]]]:
    """(file name, cited sections) for every `docs/<file>.md` in the text."""
    return [(m["file"], cited_sections(m["sections"])) for m in REFERENCE.finditer(text)]


def headings(markdown: str) -> list[str]:
    """The markdown heading lines, skipping fenced code blocks."""
    found, fenced = [], False
    for line in markdown.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("```"):
            fenced = not fenced
        elif not fenced and stripped.startswith("#"):
            found.append(stripped)
    return found


def has_section(heading_lines: list[str], section: str) -> bool:
    """A heading contains `§<section>` followed by a space (so §2 is not satisfied by §2.5 or §21)."""
    return any(f"§{section} " in line for line in heading_lines)


def reference_problems(text: str, where: str, docs_dir: pathlib.Path = DOCS) -> list[str]:
    problems = []
    for name, sections in find_references(text):
        page = docs_dir / name
        if not page.is_file():
            problems.append(f"{where}: cites docs/{name}, which does not exist")
            continue
        page_headings = headings(page.read_text(encoding="utf-8"))
        problems += [f"{where}: cites docs/{name} §{s}, but that page has no heading with '§{s} '"
                     for s in sections if not has_section(page_headings, s)]
    return problems


def test_the_product_code_cites_the_docs():
    """The scan finds the citations at all (a broken pattern would otherwise pass everything)."""
    references = [ref for path in product_files() for ref in find_references(path.read_text(encoding="utf-8"))]
    assert len(references) >= 20, f"only {len(references)} docs/ references found in product code"
    assert all(sections for _, sections in references), "a product-code docs/ reference names no section"


def test_every_docs_reference_in_product_code_names_an_existing_section():
    problems = []
    for path in product_files():
        problems += reference_problems(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not problems, "\n".join(problems)


def test_no_product_file_still_cites_the_spec():
    """The spec is not in the repository; its content lives in docs/ now."""
    stale = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in product_files()
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if SPEC_CITATION.search(line)]
    assert not stale, "product code still cites SPEC; cite docs/<file>.md §n instead:\n" + "\n".join(stale)


def test_the_docs_index_links_to_existing_pages_and_lists_every_section():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    linked = {m["target"] for m in MARKDOWN_LINK.finditer(index)}
    missing = sorted(target for target in linked if not (DOCS / target).is_file())
    assert not missing, f"docs/README.md links to pages that do not exist: {missing}"
    pages = sorted(path.name for path in DOCS.glob("*.md") if path.name != "README.md")
    assert pages and set(pages) <= linked, f"docs pages missing from the index: {sorted(set(pages) - linked)}"
    index_lines = index.splitlines()
    unlisted = []
    for page in pages:
        for line in headings((DOCS / page).read_text(encoding="utf-8")):
            top = re.match(rf"##\s+§({SECTION}) ", line)
            subsection = re.match(rf"###\s+§({SECTION}) ", line)
            section = top or (subsection if subsection and subsection[1] == "2.5" else None)
            if section and not any(f"§{section[1]} " in row and f"({page})" in row for row in index_lines):
                unlisted.append(f"{page} §{section[1]}")
    assert not unlisted, f"sections missing from the docs/README.md index: {unlisted}"


def test_the_checker_fails_on_broken_references():
    """The checks above can fail: broken references in a string are reported, good ones are not."""
    text = ('"""Math: docs/tss.md §9 and docs/no_such_page.md §1; fine: docs/tss.md §2.5,\n'
            'docs/tss.md §1-2, docs/shared.md §7; half broken: docs/dossr.md §3-4."""')
    problems = "\n".join(reference_problems(text, "example.py"))
    assert "docs/tss.md §9" in problems
    assert "docs/no_such_page.md, which does not exist" in problems
    assert "docs/dossr.md §4" in problems
    assert "§2.5" not in problems and "§7" not in problems and "tss.md §1" not in problems
    assert len(problems.splitlines()) == 3

    assert find_references("see docs/dossr.md §3, docs/tasr.md §4") == [("dossr.md", ["3"]), ("tasr.md", ["4"])]
    assert find_references("docs/tss.md §1-3") == [("tss.md", ["1", "2", "3"])]
    assert has_section(["## §1 TDS"], "1")
    assert not has_section(["### §2.5 Embedding"], "2")  # §2 is not satisfied by §2.5
    assert not has_section(["## §12 Something"], "1")
    assert not has_section(headings("```\n# §1 in a code block\n```\n"), "1")
    assert SPEC_CITATION.search("see SPEC §3") and SPEC_CITATION.search("(SPEC.md)")
    assert not SPEC_CITATION.search("see docs/dossr.md §3 (INPUT_SPEC is not a citation)")


PACK_FILE = re.compile(r"`((?:nodes|samplers|model_patches|image_ops|tools|tests)/[\w/.-]+\.py)`")


def missing_pack_files(text: str) -> list[str]:
    return [path for path in PACK_FILE.findall(text) if not (ROOT / path).is_file()]


def test_every_pack_file_the_docs_name_exists():
    """The docs name the code that implements each equation (the second hop back); a move must update them."""
    named = {page.name: PACK_FILE.findall(page.read_text()) for page in sorted(DOCS.glob("*.md"))}
    assert sum(map(len, named.values())) > 20
    missing = {page: missing_pack_files((DOCS / page).read_text()) for page in named}
    assert not any(missing.values()), missing
    assert missing_pack_files("see `samplers/no_such_solver.py`") == ["samplers/no_such_solver.py"]


def test_every_node_file_names_its_math_in_docs():
    """Two hops from a node in a workflow to its equation: the node's file, then the docs section its
    docstring names."""
    import ast

    for path in sorted((ROOT / "nodes").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        declares = any(isinstance(n, ast.ClassDef) and any(getattr(b, "id", None) == "PackNode" for b in n.bases)
                       for n in tree.body)
        if declares:
            assert find_references(ast.get_docstring(tree) or ""), f"{path.name}: no docs/<page>.md §n in its docstring"
