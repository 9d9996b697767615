"""When ComfyUI's editor offers to download a missing model file, and which of the pack's files qualify.

A workflow's node may list `properties.models` entries ({name, url, directory}). When a listed file is missing,
the editor's "Missing Models" dialog offers a download button, but only if the URL starts with an allowed host
and the file name ends with an allowed suffix (or the URL is on a short allowlist of the frontend's own); any
other entry is shown with an error ("Download not allowed from source ...", "Only allowed suffixes are ...")
over the graph. Read from the frontend bundles (comfyui-frontend-package):

- 1.32.9 (the one ComfyUI 0.3.75 pins; `MissingModelsWarning`): hosts https://civitai.com/,
  https://huggingface.co/, http://localhost:; suffixes .safetensors, .sft.
- 1.58.1 (the newest on PyPI on 2026-12-05; `isModelDownloadable`): hosts https://civitai.com/,
  https://civitai.red/, https://huggingface.co/; suffixes .safetensors, .sft, .ckpt, .pth, .pt.

The pack keeps what both allow, and only direct file links (a Hugging Face `/resolve/` URL ending in the file
name, or Civitai's download API): a repository page or a folder would download a web page. `hash` is not read
by either version's dialog. tests/test_frontend_metadata.py re-reads the rule from the installed bundle.
"""
import re
from urllib.parse import urlparse

HOSTS = ("https://civitai.com/", "https://huggingface.co/")
SUFFIXES = (".safetensors", ".sft")
_HF_FILE = re.compile(r"^/[^/]+/[^/]+/resolve/[^/]+/(.+/)?(?P<file>[^/]+)$")
_CIVITAI_FILE = re.compile(r"^/api/download/models/\d+$")


def downloadable(name: str, url: str) -> bool:
    """Whether the editor downloads `url` as the file `name` (see the module's text)."""
    if not url.startswith(HOSTS) or not name.endswith(SUFFIXES):
        return False
    parsed = urlparse(url)
    if parsed.netloc == "huggingface.co":
        match = _HF_FILE.match(parsed.path)
        return bool(match) and match["file"] == name
    return bool(_CIVITAI_FILE.match(parsed.path))
