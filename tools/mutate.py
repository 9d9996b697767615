"""Re-run the mutations of tests/mutations.md: apply a deliberate break, run the tests that must fail,
restore the file.

    python tools/mutate.py --all                       # every row of tests/mutations.md
    python tools/mutate.py --all --section TASR        # the rows under one heading ("## TASR")
    python tools/mutate.py --all --row 12 --row 40-45  # rows by number (1-based over the whole file)
    python tools/mutate.py --list                      # the rows as parsed, and whether each still applies
    python tools/mutate.py FILE OLD NEW -- PYTEST_ARGS...   # one ad-hoc mutation

Each row replaces OLD (which must occur exactly once in FILE) by NEW, runs its tests with
`pytest -q -p no:cacheprovider` (OMP_NUM_THREADS=1 unless set) and restores the file byte for byte,
also on Ctrl-C, SIGTERM and errors. A row is

    CAUGHT            some test failed (each target the row names is checked: a named test that still
                      passed is reported under the row)
    MISSED            every test passed (or the run timed out)
    STALE             OLD does not occur exactly once in FILE (the code moved or changed: fix the row)
    BROKE-COLLECTION  the mutation broke the code rather than the math: the file no longer compiles,
                      pytest could not collect the tests, or every failure is an ImportError /
                      SyntaxError / NameError. Counted as missed unless the row's tests cell says
                      [collection] (a break whose intent is exactly that).

`--all` ends with `mutations: N caught, M missed, K stale (of T)` (broke-collection rows counted as
missed; manual rows listed, not run) and exits 0 only if every row run was caught.

Python files are imported through a private bytecode cache (PYTHONPYCACHEPREFIX), so a mutated module
is never written to the tree's __pycache__ and a stale .pyc never stands in for a mutation.

The catalogue format (tests/mutations.md) is `parse_catalogue`'s docstring.
"""
import argparse
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import time

PACK_DIR = pathlib.Path(__file__).resolve().parents[1]
CATALOGUE = PACK_DIR / "tests" / "mutations.md"
PYCACHE = pathlib.Path(os.environ.get("MUTATE_PYCACHE", f"/tmp/timeaware_sr_mutate_pycache_{os.getuid()}"))
BROKEN_CODE = ("ImportError", "ModuleNotFoundError", "SyntaxError", "IndentationError", "TabError", "NameError",
               "UnboundLocalError")
COLLECTION_MARK = "[collection]"
TIMEOUT_S = 1800


# --- the catalogue -----------------------------------------------------------------------------------

class Row:
    def __init__(self, number, section, line, file, pairs, targets, what, manual=None, expect_collection=False):
        self.number, self.section, self.line = number, section, line
        self.file, self.pairs, self.targets, self.what = file, pairs, targets, what
        self.manual, self.expect_collection = manual, expect_collection

    @property
    def pytest_args(self) -> list[str]:
        return [arg for target in self.targets for arg in shlex.split(target)]

    def label(self) -> str:
        return f"row {self.number} [{self.section}] {self.file}: {self.what}"


def split_cells(line: str) -> list[str]:
    """The cells of a Markdown table row; `\\|` is a literal | (inside code spans too, as in GFM)."""
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    cells, cell, i = [], "", 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body) and body[i + 1] == "|":
            cell += "|"
            i += 2
            continue
        if body[i] == "|":
            cells.append(cell.strip())
            cell = ""
        else:
            cell += body[i]
        i += 1
    cells.append(cell.strip())
    return cells


def code_spans(cell: str) -> tuple[list[str], str]:
    """(the code spans of a cell, in order, raw; the text outside them). A span opens with a run of N
    backticks and closes at the next run of exactly N (CommonMark); one space is stripped from each
    end when both ends have one, so `` `a` `` is the two-backtick span of "`a`"."""
    spans, outside, i = [], "", 0
    while i < len(cell):
        if cell[i] != "`":
            outside += cell[i]
            i += 1
            continue
        n = len(cell[i:]) - len(cell[i:].lstrip("`"))
        run = re.compile(r"(?<!`)" + "`" * n + r"(?!`)")
        close = run.search(cell, i + n)
        if close is None:  # an unmatched run is literal text
            outside += cell[i:i + n]
            i += n
            continue
        content = cell[i + n:close.start()]
        if len(content) >= 2 and content[0] == " " and content[-1] == " " and content.strip(" "):
            content = content[1:-1]
        spans.append(content)
        i = close.end()
    return spans, outside


def unescape(code: str) -> str:
    """A span's text as the exact string: \\n is a newline, \\t a tab, \\\\ a backslash; any other
    backslash is literal."""
    out, i = "", 0
    while i < len(code):
        if code[i] == "\\" and i + 1 < len(code) and code[i + 1] in "nt\\":
            out += {"n": "\n", "t": "\t", "\\": "\\"}[code[i + 1]]
            i += 2
        else:
            out += code[i]
            i += 1
    return out


class CatalogueError(ValueError):
    pass


def parse_catalogue(text: str) -> list[Row]:
    """The rows of every table whose header starts `| file | old | new | tests |`.

    - `file`: the path from the pack's root (backticks optional).
    - `old`, `new`: inline code spans, the exact strings substituted. Several edits in one row: as many
      spans in `old` as in `new`, paired in order (written `a` ;; `b`; text outside spans is ignored).
      Inside a span `\\n` is a newline, `\\t` a tab, `\\\\` a backslash and `\\|` a | (GFM's table escape).
      A row whose `old` cell is the word manual is not a text edit: its `new` cell says what to do by
      hand; it is listed, never run.
    - `tests`: one or more code spans, each one or more pytest arguments (shell-quoted: node ids, or
      `tests/test_x.py -k "expr"`; one -k per row); all go to one pytest run. Each span is a target:
      some test of every target should fail. The text [collection] outside the spans marks a row
      whose intended catch is that the tests no longer import.
    - any further cells (`what it breaks`): a description for people.
    Rows are numbered from 1 over the whole file, manual rows included; `## ` headings name sections.
    """
    rows, section, header = [], "", None
    for line_number, line in enumerate(text.splitlines(), 1):
        if line.startswith("## "):
            section, header = line[3:].strip(), None
            continue
        if not line.lstrip().startswith("|"):
            header = None
            continue
        cells = split_cells(line)
        if header is None:
            header = [c.lower() for c in cells]
            if header[:4] != ["file", "old", "new", "tests"]:
                raise CatalogueError(f"line {line_number}: a table whose header is not | file | old | new | tests |: "
                                     f"{line.strip()}")
            continue
        if all(set(c) <= set("-: ") for c in cells):
            continue  # the |---| line
        if len(cells) < 4:
            raise CatalogueError(f"line {line_number}: {len(cells)} cells, expected at least 4: {line.strip()}")
        number = len(rows) + 1
        file_spans, file_text = code_spans(cells[0])
        file = (file_spans[0] if file_spans else file_text).strip()
        test_spans, test_text = code_spans(cells[3])
        targets = [unescape(s).strip() for s in test_spans if s.strip()]
        what = " | ".join(cells[4:]).strip()
        if not file or not targets:
            raise CatalogueError(f"line {line_number}: row {number} needs a file and at least one test: {line.strip()}")
        k_count = sum(shlex.split(t).count("-k") for t in targets)
        if k_count > 1:
            raise CatalogueError(f"line {line_number}: row {number} has {k_count} -k options; pytest keeps only the last")
        expect_collection = COLLECTION_MARK in test_text
        if cells[1].strip().lower().startswith("manual"):
            rows.append(Row(number, section, line_number, file, [], targets, what, manual=cells[2].strip()))
            continue
        old, _ = code_spans(cells[1])
        new, _ = code_spans(cells[2])
        if not old or len(old) != len(new):
            raise CatalogueError(f"line {line_number}: row {number} has {len(old)} old and {len(new)} new code spans; "
                                 f"they pair up one to one")
        pairs = [(unescape(o), unescape(n)) for o, n in zip(old, new)]
        for o, n in pairs:
            if not o or o == n:
                raise CatalogueError(f"line {line_number}: row {number}: old {o!r} must be non-empty and differ from new")
        rows.append(Row(number, section, line_number, file, pairs, targets, what, expect_collection=expect_collection))
    return rows


def apply_pairs(source: str, pairs) -> tuple[str | None, str]:
    """(the mutated source, "") or (None, why the row is stale). Each old must occur exactly once in
    the source as it stands before that edit (the edits apply in order)."""
    for old, new in pairs:
        count = source.count(old)
        if count != 1:
            return None, f"{old!r} occurs {count} times, expected once"
        source = source.replace(old, new)
    return source, ""


def row_problems(row: Row, pack_dir: pathlib.Path = PACK_DIR) -> list[str]:
    """Why a row cannot run as written (no file, stale old, missing test file or function); [] if it can."""
    problems = []
    path = pack_dir / row.file
    if not path.is_file():
        problems.append(f"{row.file} does not exist")
    elif not row.manual:
        _, why = apply_pairs(path.read_bytes().decode("utf-8"), row.pairs)
        if why:
            problems.append(f"stale: {why} in {row.file}")
    for target in row.targets:
        for arg in target_paths(target):
            file_part, _, node = arg.partition("::")
            test_file = pack_dir / file_part
            if not test_file.is_file():
                problems.append(f"test file {file_part} does not exist")
                continue
            function = node.split("::")[-1].split("[")[0] if node else ""
            if function and not re.search(rf"^\s*(async\s+)?def {re.escape(function)}\(", test_file.read_text(encoding="utf-8"), re.M):
                problems.append(f"{file_part} has no test {function}")
    return problems


def target_paths(target: str) -> list[str]:
    """The file / node id arguments of a target (options and their values left out)."""
    args, out, skip = shlex.split(target), [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-k", "-m"):
            skip = True
        elif not arg.startswith("-"):
            out.append(arg)
    return out


# --- running -----------------------------------------------------------------------------------------

class Restorer:
    """Writes a mutation into a file and puts the original bytes (and mtime) back, whatever happens."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.original = path.read_bytes()
        self.stat = path.stat()

    def write(self, text: str):
        self.path.write_bytes(text.encode("utf-8"))
        mtime = time.time()
        if int(mtime) == int(self.stat.st_mtime):  # a .pyc is keyed by (whole seconds, size): never the original's
            mtime = self.stat.st_mtime + 2
        os.utime(self.path, (mtime, mtime))
        forget_bytecode(self.path)

    def restore(self):
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # a 2nd Ctrl-C waits
        try:
            self.path.write_bytes(self.original)
            os.utime(self.path, ns=(self.stat.st_atime_ns, self.stat.st_mtime_ns))
            forget_bytecode(self.path)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if self.path.read_bytes() != self.original:
            raise RuntimeError(f"could not restore {self.path}")


def forget_bytecode(path: pathlib.Path):
    if path.suffix != ".py":
        return
    folder = PYCACHE / str(path.parent.resolve()).lstrip("/")
    for pyc in folder.glob(f"{path.stem}.*.pyc"):
        pyc.unlink(missing_ok=True)


class Interrupted(Exception):
    pass


def _on_sigterm(signum, frame):
    raise Interrupted(f"signal {signum}")


def run_pytest(args: list[str], timeout: float) -> tuple[int | None, str]:
    """(return code or None on timeout, stdout+stderr). The run has its own process group, so a timeout
    or an interrupt ends it and everything it started (a live ComfyUI server, a browser)."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), PYTHONPYCACHEPREFIX=str(PYCACHE),
               COLUMNS=os.environ.get("COLUMNS", "240"))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=PACK_DIR,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        _stop(proc)
        out, _ = proc.communicate()
        return None, out
    except BaseException:
        _stop(proc)
        proc.communicate()
        raise


def _stop(proc):
    """SIGINT to the run's group (pytest then runs its finalisers), SIGKILL after 30 s."""
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


FAILURE_LINE = re.compile(r"^(FAILED|ERROR) (.+)$")


def failures(output: str) -> list[tuple[str, str, str]]:
    """(FAILED/ERROR, node id, message) from pytest's short summary."""
    found = []
    for line in output.splitlines():
        m = FAILURE_LINE.match(line.strip())
        if m:
            found.append((m.group(1), *split_node_id(m.group(2))))
    return found


def split_node_id(rest: str) -> tuple[str, str]:
    """(node id, message) of `id - message`. A parametrized id may hold spaces and ' - ' inside its
    [...]: it ends at the bracket that closes its first '['."""
    end = len(rest.split(" - ", 1)[0])
    first = rest.find("[")
    if 0 <= first < end:
        depth = 0
        for i in range(first, len(rest)):
            depth += {"[": 1, "]": -1}.get(rest[i], 0)
            if depth == 0:
                end = i + 1
                break
    message = rest[end:]
    return rest[:end], message[3:] if message.startswith(" - ") else message.strip()


def classify(row, returncode, output) -> tuple[str, list[str]]:
    """(status, lines to print under the row)."""
    fails = failures(output)
    lines = [f"{kind} {node}" + (f" - {message[:200]}" if message else "") for kind, node, message in fails]
    tail = [line for line in output.strip().splitlines() if line.strip()][-1:] if output.strip() else []
    if returncode is None:
        return "MISSED", [f"timed out after the row's limit; {len(fails)} failures before that", *lines[:20]]
    collection = (returncode in (2, 3, 4, 5) or "error during collection" in output or "errors during collection" in output
                  or any(kind == "ERROR" and "::" not in node for kind, node, _ in fails))
    broken = fails and all(message.split(":")[0].strip() in BROKEN_CODE for _, _, message in fails)
    if collection or broken:
        status = "CAUGHT" if row.expect_collection else "BROKE-COLLECTION"
        return status, lines[:20] or [line for line in output.strip().splitlines()[-15:]]
    if returncode == 1 and fails:
        for target in row.targets:
            paths = target_paths(target)
            hit = any(any(node == p or node.startswith(p + "[") or node.startswith(p + "::") for p in paths)
                      for _, node, _ in fails)
            if not hit:
                lines.append(f"note: no test of target `{target}` failed")
        return "CAUGHT", lines
    return "MISSED", tail


def run_row(row: Row, timeout: float = TIMEOUT_S) -> tuple[str, list[str], float]:
    start = time.monotonic()
    path = PACK_DIR / row.file
    if not path.is_file():
        return "STALE", [f"{row.file} does not exist"], 0.0
    source = path.read_bytes().decode("utf-8")
    mutated, why = apply_pairs(source, row.pairs)
    if mutated is None:
        return "STALE", [why], 0.0
    if path.suffix == ".py":
        try:
            compile(mutated, str(path), "exec")
        except SyntaxError as e:
            status = "CAUGHT" if row.expect_collection else "BROKE-COLLECTION"
            return status, [f"the mutated file does not compile: {e}"], 0.0
    restorer = Restorer(path)
    try:
        restorer.write(mutated)
        returncode, output = run_pytest(row.pytest_args, timeout)
    finally:
        restorer.restore()
    status, lines = classify(row, returncode, output)
    return status, lines, time.monotonic() - start


def select(rows, sections, numbers):
    chosen = rows
    if sections:
        known = sorted({r.section for r in rows})
        wanted = [s.lower() for s in sections]
        chosen = [r for r in chosen if any(r.section.lower() == w or r.section.lower().startswith(w) for w in wanted)]
        if not chosen:
            sys.exit(f"no section matches {sections}; sections: {known}")
    if numbers:
        chosen = [r for r in chosen if r.number in numbers]
        if not chosen:
            sys.exit(f"no row numbered {sorted(numbers)} (rows 1-{len(rows)})")
    return chosen


def row_numbers(specs) -> set[int]:
    numbers = set()
    for spec in specs or []:
        for part in spec.split(","):
            low, _, high = part.partition("-")
            numbers.update(range(int(low), int(high or low) + 1))
    return numbers


def run_all(rows, timeout):
    counts = {"CAUGHT": 0, "MISSED": 0, "STALE": 0, "BROKE-COLLECTION": 0}
    manual = [r for r in rows if r.manual]
    runnable = [r for r in rows if not r.manual]
    began = time.monotonic()
    for i, row in enumerate(runnable, 1):
        print(f"[{i}/{len(runnable)}] row {row.number} ({row.section}) {row.file}: {row.what}", flush=True)
        status, lines, seconds = run_row(row, timeout)
        counts[status] += 1
        print(f"    {status} in {seconds:.0f} s" + ("" if status != "STALE" else f" ({row.file}, line {row.line} of the catalogue)"), flush=True)
        for line in lines:
            print(f"        {line}", flush=True)
    for row in manual:
        print(f"MANUAL row {row.number} ({row.section}) {row.file}: {row.what}\n        by hand: {row.manual}\n"
              f"        tests: {' '.join(row.targets)}")
    missed = counts["MISSED"] + counts["BROKE-COLLECTION"]
    if counts["BROKE-COLLECTION"]:
        print(f"({counts['BROKE-COLLECTION']} broke collection, counted as missed)")
    if manual:
        print(f"({len(manual)} manual, not run: rows {', '.join(str(r.number) for r in manual)})")
    print(f"total {time.monotonic() - began:.0f} s")
    print(f"mutations: {counts['CAUGHT']} caught, {missed} missed, {counts['STALE']} stale (of {len(runnable)})")
    return counts["CAUGHT"] == len(runnable)


def list_rows(rows):
    for row in rows:
        problems = row_problems(row)
        state = "manual" if row.manual else ("ok" if not problems else "; ".join(problems))
        print(f"{row.number:4d} [{row.section}] {row.file}: {row.what}\n       {state}\n       pytest {shlex.join(row.pytest_args)}")


def single(argv):
    """python tools/mutate.py FILE OLD NEW -- PYTEST_ARGS..."""
    if "--" not in argv or argv.index("--") != 3:
        sys.exit(__doc__)
    file, old, new = argv[:3]
    row = Row(0, "command line", 0, file, [(old, new)], [shlex.join(argv[4:])], "")
    status, lines, _ = run_row(row)
    print(f"{status} {file}: {old!r} -> {new!r}")
    print("\n".join(lines))
    return status == "CAUGHT"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _on_sigterm)
    if argv and not argv[0].startswith("--"):
        return single(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="run the catalogue's rows (all, or those selected)")
    parser.add_argument("--list", action="store_true", help="print the rows and whether each still applies")
    parser.add_argument("--section", action="append", help="only rows under this heading (case-insensitive prefix)")
    parser.add_argument("--row", action="append", help="only these rows: N, N-M or N,M (1-based over the file)")
    parser.add_argument("--catalogue", type=pathlib.Path, default=CATALOGUE)
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per row before it counts as missed")
    a = parser.parse_args(argv)
    rows = select(parse_catalogue(a.catalogue.read_text(encoding="utf-8")), a.section, row_numbers(a.row))
    if a.list:
        list_rows(rows)
        return True
    if not a.all and not a.section and not a.row:
        parser.error("give --all (optionally with --section / --row), --list, or FILE OLD NEW -- PYTEST_ARGS")
    return run_all(rows, a.timeout)


if __name__ == "__main__":
    try:
        sys.exit(0 if main() else 1)
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted: the file being mutated was restored", file=sys.stderr)
        sys.exit(130)
