# Two commands for a fresh machine: `make demo` (the main job) and `make test` (the whole suite).
# Both build .venv/ and .comfyui/ first (once). COMFYUI_DIR=/path/to/ComfyUI uses that ComfyUI.
PY := .venv/bin/python

.PHONY: bootstrap demo test bench train-starter dev-extras docs gpu-check
bootstrap:
	@bash .ci/bootstrap.sh

demo: bootstrap
	$(PY) tools/demo.py

test: bootstrap
	$(PY) -m pytest $(PYTEST_ARGS)

# Not needed by demo or test: scikit-image's bundled photos (training data) and SSIM.
dev-extras: bootstrap
	$(PY) -m pip install -q scikit-image==0.26.0

# Benchmarks print numbers (real SD2.1 size on CPU takes several minutes each).
bench: dev-extras
	$(PY) tools/benchmarks/bench_dossr.py
	$(PY) tools/benchmarks/bench_tss.py
	$(PY) tools/benchmarks/bench_starter_quality.py

# The one device check (issue 26): every method at real SD 2.1 size on one GPU, one table, gpu_check.json;
# at most 8 minutes on an H100. GPU_CHECK_ARGS="--device cpu --quick" runs it end to end on a CPU.
gpu-check: bootstrap
	$(PY) tools/gpu_check.py $(GPU_CHECK_ARGS)

train-starter: dev-extras
	$(PY) tools/train_starter_sr.py

# README pictures (workflows/assets/), then the help pages (which copy some of them); not part of test.
docs: bootstrap
	$(PY) tools/make_docs.py
	$(PY) tools/make_help_pages.py
