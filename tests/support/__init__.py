"""Shared test support: ComfyUI and pack import (env), the live server client (comfy_live),
checkpoint factories (*_factory.py, ckpt_factory.py), toy models, evaluation helpers and data.

Tests and tools import it as `from support import ...` with tests/ on sys.path; nothing here
imports conftest or tools/."""
