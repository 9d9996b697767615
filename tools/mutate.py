"""Re-check one row of tests/mutations.md: apply the edit, run the named tests, restore the file.

    python tools/mutate.py FILE OLD NEW -- PYTEST_ARGS...

OLD must occur exactly once in FILE. Prints CAUGHT (some test failed, as it must) or MISSED, with
the failing tests; exits 0 only when the mutation was caught. The file is restored even on Ctrl-C.
"""
import os
import pathlib
import subprocess
import sys

PACK_DIR = pathlib.Path(__file__).resolve().parents[1]


def main():
    if "--" not in sys.argv or sys.argv.index("--") != 4:
        sys.exit(__doc__)
    path, old, new = (PACK_DIR / sys.argv[1]), sys.argv[2], sys.argv[3]
    pytest_args = sys.argv[5:]
    source = path.read_text()
    if source.count(old) != 1:
        sys.exit(f"{old!r} occurs {source.count(old)} times in {path}, expected once")
    try:
        path.write_text(source.replace(old, new))
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args],
                             cwd=PACK_DIR, env=env, capture_output=True, text=True)
    finally:
        path.write_text(source)
    failed = [line for line in run.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    caught = run.returncode == 1 and failed  # 1: tests failed (not a collection or usage error)
    print(("CAUGHT" if caught else "MISSED") + f" {sys.argv[1]}: {old!r} -> {new!r}")
    print("\n".join(failed) or run.stdout[-2000:])
    sys.exit(0 if caught else 1)


if __name__ == "__main__":
    main()
