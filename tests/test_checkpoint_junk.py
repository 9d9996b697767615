"""Junk saved under a checkpoint's name (model_patches/checkpoint_io.py): every loader's error says
what the file really is, without colour codes or local paths (issue 11 item 3)."""
import os
import pickle

import pytest
import safetensors.torch
import torch

from timeaware_sr.clear_errors import CheckpointError
from timeaware_sr.model_patches.checkpoint_io import read_checkpoint


def weights():
    return {f"layer{i}.weight": torch.full((64, 64), float(i)) for i in range(4)}


def write_junk(tmp_path, kind: str):
    """A file of the given kind named like a checkpoint; returns its path."""
    path = tmp_path / ("model.safetensors" if "safetensors" in kind else "model.ckpt")
    if kind == "random bytes":
        path.write_bytes(bytes((i * 97 + 13) % 256 for i in range(4096)))  # fixed "random" bytes
    elif kind == "lfs pointer":
        path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 5451298230\n")
    elif kind == "html page":
        path.write_text("<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please log in</body></html>\n")
    elif kind == "zero length":
        path.write_bytes(b"")
    elif kind == "truncated safetensors":
        safetensors.torch.save_file(weights(), str(path))
        path.write_bytes(path.read_bytes()[:-1000])
    elif kind == "truncated torch zip":
        torch.save(weights(), str(path))
        path.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])
    elif kind == "truncated legacy pickle":
        torch.save(weights(), str(path), _use_new_zipfile_serialization=False)
        path.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])
    elif kind == "pickle with code":
        with open(path, "wb") as f:
            pickle.dump({"weight": torch.zeros(2), "hook": os.system}, f, protocol=2)
    elif kind == "torch zip under a safetensors name":
        path = tmp_path / "model.safetensors"
        torch.save(weights(), str(path))
    return path


@pytest.mark.parametrize("kind, says", [
    ("random bytes", "model.ckpt is not a checkpoint: it is neither safetensors, a PyTorch zip archive nor a pickle"),
    ("lfs pointer", "model.ckpt is a Git LFS pointer .*run `git lfs pull`"),
    ("html page", "model.ckpt is an HTML page, not a checkpoint: the download went wrong"),
    ("zero length", "model.ckpt is empty \\(0 bytes\\)"),
    ("truncated safetensors", "model.safetensors is a truncated safetensors file: it has \\d+ bytes, its header describes \\d+"),
    ("truncated torch zip", "model.ckpt is a truncated PyTorch checkpoint"),
    ("truncated legacy pickle", "model.ckpt is a truncated checkpoint"),
    ("pickle with code", "model.ckpt contains pickled Python objects.*would run code"),
    ("torch zip under a safetensors name", "model.safetensors is a PyTorch checkpoint \\(zip\\), not safetensors"),
])
def test_junk_files_are_named_for_what_they_are(tmp_path, kind, says):
    path = write_junk(tmp_path, kind)
    with pytest.raises(CheckpointError, match=says) as err:
        read_checkpoint(str(path))
    message = str(err.value)
    assert "\x1b[" not in message and str(tmp_path) not in message and "Traceback" not in message
    assert type(err.value).__module__ == "TimeAwareSR"  # ComfyUI prints module.class: no install path


def test_good_files_still_load(tmp_path):
    st, pt = tmp_path / "good.safetensors", tmp_path / "good.ckpt"
    safetensors.torch.save_file(weights(), str(st))
    torch.save({"state_dict": weights()}, str(pt))
    for path in (st, pt):
        sd = read_checkpoint(str(path))
        assert set(sd) == set(weights()) and all(torch.equal(sd[k], v) for k, v in weights().items())
