# Two commands for a fresh machine: `make demo` (the main job) and `make test` (the whole suite).
# Both build .venv/ and .comfyui/ first (once). COMFYUI_DIR=/path/to/ComfyUI uses that ComfyUI.
PY := .venv/bin/python

.PHONY: bootstrap demo test bench
bootstrap:
	@bash .ci/bootstrap.sh

demo: bootstrap
	$(PY) tests/demo.py

test: bootstrap
	$(PY) -m pytest $(PYTEST_ARGS)

bench: bootstrap
	$(PY) tests/benchmarks/bench_dossr.py
