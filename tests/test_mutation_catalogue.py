"""tests/mutations.md stays runnable: every row parses, names a file that exists, whose `old` occurs
there exactly once and differs from `new`, and tests that exist. No mutation is run here (that is
`tools/mutate.py --all`); this only keeps a refactor from leaving rows silently stale."""
import pathlib

import pytest

import mutate  # tools/, on sys.path through conftest.py

PACK_DIR = pathlib.Path(__file__).resolve().parents[1]
ROWS = mutate.parse_catalogue((PACK_DIR / "tests" / "mutations.md").read_text(encoding="utf-8"))


def test_the_catalogue_has_its_sections_and_rows():
    sections = {row.section for row in ROWS}
    for name in ("DoSSR", "TSS (TDS, SDS, per-pixel patch)", "Colour fix", "TADSR", "TASR", "ResShift family",
                 "Tiling", "Starter model", "Frontend (browser tests, workflow layout and metadata)",
                 "Robustness (input checks, junk files, memory bounds, banded SDS map)"):
        assert name in sections
    assert len(ROWS) >= 120
    assert [row.number for row in ROWS] == list(range(1, len(ROWS) + 1))


@pytest.mark.parametrize("row", ROWS, ids=lambda row: f"row{row.number}")
def test_every_row_applies_to_the_code_as_it_is(row):
    assert row.manual or all(old != new and old for old, new in row.pairs)
    assert mutate.row_problems(row, PACK_DIR) == [], row.label()


def test_manual_rows_are_the_ones_that_are_not_a_text_edit():
    assert [row.file for row in ROWS if row.manual] == ["model_patches/weights/starter_sr.safetensors"]


# --- the checks themselves can fail ------------------------------------------------------------------

def table(*rows: str) -> str:
    return "## Crafted\n\n| file | old | new | tests | what it breaks |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n"


def test_a_stale_row_a_missing_file_and_a_missing_test_are_reported(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "code.py").write_text("x = 1\ny = x + x\n")
    (tmp_path / "tests" / "test_code.py").write_text("def test_y():\n    pass\n")
    rows = mutate.parse_catalogue(table(
        "| code.py | `y = x + x` | `y = x * x` | `tests/test_code.py::test_y` | fine |",
        "| code.py | `y = x - x` | `y = x * x` | `tests/test_code.py::test_y` | stale: the code changed |",
        "| code.py | `x` | `z` | `tests/test_code.py::test_y` | stale: not unique |",
        "| gone.py | `a` | `b` | `tests/test_code.py::test_y` | the file moved |",
        "| code.py | `y = x + x` | `y = x` | `tests/test_code.py::test_z` `tests/test_gone.py` | tests renamed |",
    ))
    problems = [mutate.row_problems(row, tmp_path) for row in rows]
    assert problems[0] == []
    assert problems[1] == ["stale: 'y = x - x' occurs 0 times, expected once in code.py"]
    assert problems[2] == ["stale: 'x' occurs 3 times, expected once in code.py"]
    assert problems[3] == ["gone.py does not exist"]
    assert problems[4] == ["tests/test_code.py has no test test_z", "test file tests/test_gone.py does not exist"]


def test_escapes_several_edits_and_options_parse_exactly():
    [pipes, pairs, ticks, manual] = mutate.parse_catalogue(table(
        r'| `a.js` | `x \|\| y` | `x && y` | `tests/t.py -k "a or b"` | a pipe inside code |',
        r"| a.py | `if a:\n    b()` ;; `c\\d` | `if 0:\n    b()` ;; `c/d` | `tests/t.py::f[x]` `tests/u.py` [collection] | two edits |",
        "| a.md | `` `x` `` | `` `y` `` | `tests/t.py` | backticks inside code |",
        "| w.bin | manual | swap the file by hand | `tests/t.py::g` | not a text edit |",
    ))
    assert pipes.file == "a.js" and pipes.pairs == [("x || y", "x && y")]
    assert pipes.pytest_args == ["tests/t.py", "-k", "a or b"] and pipes.what == "a pipe inside code"
    assert pairs.pairs == [("if a:\n    b()", "if 0:\n    b()"), ("c\\d", "c/d")]
    assert pairs.pytest_args == ["tests/t.py::f[x]", "tests/u.py"] and pairs.expect_collection
    assert not pipes.expect_collection
    assert ticks.pairs == [("`x`", "`y`")]
    assert manual.manual == "swap the file by hand" and manual.pairs == []
    assert [r.number for r in (pipes, pairs, ticks, manual)] == [1, 2, 3, 4]


@pytest.mark.parametrize("bad", [
    "| a.py | `a` ;; `b` | `c` | `tests/t.py` | unpaired edits |",
    "| a.py | `a` | `a` | `tests/t.py` | no change |",
    "| a.py | `a` | `b` | no code span | no tests |",
    "| a.py | `a` | `b` | `tests/t.py -k x` `tests/u.py -k y` | two -k |",
])
def test_malformed_rows_are_refused(bad):
    with pytest.raises(mutate.CatalogueError):
        mutate.parse_catalogue(table(bad))


def test_the_edits_apply_in_order_and_each_must_be_unique():
    assert mutate.apply_pairs("a = 1\nb = 2\n", [("a = 1", "a = 3"), ("b = 2", "b = a")]) == ("a = 3\nb = a\n", "")
    assert mutate.apply_pairs("a = 1\n", [("a = 1", "a = 2"), ("a = 1", "a = 3")]) == (
        None, "'a = 1' occurs 0 times, expected once")


def test_failures_are_classified_from_pytest_output():
    row = mutate.parse_catalogue(table("| a.py | `a` | `b` | `tests/t.py::f` `tests/u.py::g` | x |"))[0]
    out = "FAILED tests/t.py::f[1] - AssertionError: no\n1 failed, 3 passed"
    status, lines = mutate.classify(row, 1, out)
    assert status == "CAUGHT" and "FAILED tests/t.py::f[1] - AssertionError: no" in lines
    assert "note: no test of target `tests/u.py::g` failed" in lines
    assert mutate.classify(row, 0, "4 passed")[0] == "MISSED"
    assert mutate.classify(row, 1, "FAILED tests/t.py::f - NameError: name 's' is not defined")[0] == "BROKE-COLLECTION"
    assert mutate.classify(row, 2, "ERROR tests/t.py - SyntaxError: bad\n1 error during collection")[0] == "BROKE-COLLECTION"
    assert mutate.classify(row, None, "")[0] == "MISSED"  # timed out
    spaced = "FAILED tests/t.py::f[truncated file-it has \\d+ bytes - say so] - AssertionError: Regex pattern did not match."
    assert mutate.failures(spaced) == [("FAILED", "tests/t.py::f[truncated file-it has \\d+ bytes - say so]",
                                        "AssertionError: Regex pattern did not match.")]
    assert mutate.classify(row, 1, spaced + "\n1 failed")[0] == "CAUGHT"
