"""Every error a user can meet is in words (issue 28): a model file whose content is wrong but loadable
(a list, a tuple, a bare tensor, a number, None, a dictionary of non-tensors, nested one level too deep,
empty, another model's keys) is refused by every pack loader with a message that names the node, the
file input and what the file should hold, with no Python exception class name and no local path; the
Tiled Diffusion node's tile size that a model cannot take is refused naming the node and tile_size."""
import json
import pathlib
import re
import types

import pytest
import safetensors.torch
import torch

import folder_paths
from support import ckpt_factory as cf
from support import resshift_factory as rf
from support import tadsr_factory as tf
from support import tasr_factory as tsf
from timeaware_sr.clear_errors import CheckpointError, InputError
from timeaware_sr.nodes.dossr_loader import DoSSRCheckpointLoader
from timeaware_sr.nodes.resshift_loader import ResShiftLoader
from timeaware_sr.nodes.starter_loader import StarterModelLoader
from timeaware_sr.nodes.tadsr_loader import LoadTADSR
from timeaware_sr.nodes.tasr import TASRLoader

PYTHON_INTERNALS = re.compile(r"AttributeError|KeyError|TypeError|IndexError|ValueError|index out of range|Traceback"
                              r"|object has no attribute|not subscriptable|not iterable|\bNoneType\b")


def t(*shape):
    return torch.ones(*shape)


# The wrong-but-loadable contents: each saved with torch.save (safe to load: only tensors and plain data).
BAD_CONTENT = {
    "list": [t(2), t(3)],
    "one-item list": [t(2)],  # ComfyUI's load_torch_file: "'list' object has no attribute 'keys'"
    "tuple": (t(2),),
    "bare tensor": t(4, 4),
    "int": 5,
    "None": None,
    "text": "weights",
    "dict of non-tensors": {"epoch": 3, "name": "model", "lr": 0.1},
    "nested one level deeper": {"params": {"a.weight": t(2)}, "params_ema": {"a.weight": t(2)}},
    "nested under two wrappers": {"model": {"state_dict": {"a.weight": t(2)}, "optimizer": {}}},
    "state_dict holding a list": {"state_dict": [t(2)]},
    "empty dict": {},
    "keys of another model": {"foo.weight": t(3, 3), "bar.bias": t(3)},
    "non-text keys": {0: t(2), 1: t(2)},
}


# What the message says the file holds: for every loader, except that tadsr.pkl's own top level is no flat dictionary
# of tensors, so a dictionary there is "not a TADSR checkpoint" (it says what tadsr.pkl holds instead).
SAYS = {
    "list": "holds a list of 2 items, not a dictionary of named tensors",
    "one-item list": "holds a list of 1 item, not a dictionary of named tensors",
    "tuple": "holds a tuple of 1 item, not a dictionary of named tensors",
    "bare tensor": "holds a single tensor of shape (4, 4), not a dictionary of named tensors",
    "int": "holds the number 5, not a dictionary of named tensors",
    "None": "holds nothing (None), not a dictionary of named tensors",
    "text": "holds the text 'weights', not a dictionary of named tensors",
    "dict of non-tensors": "holds no tensors ('epoch' is the number 3; 'name' is the text 'model'; 'lr' is the "
                           "number 0.1)",
    "nested one level deeper": "holds no tensors at its top level: they are nested one level deeper, under 'params', "
                               "'params_ema'",
    "nested under two wrappers": "holds no tensors at its top level: they are nested one level deeper, under "
                                 "'state_dict'",
    "state_dict holding a list": "holds a list of 1 item under 'state_dict', not a dictionary of named tensors",
    "empty dict": "is an empty dictionary",
    "keys of another model": "its 2 keys match no known layout (first keys: ['bar.bias', 'foo.weight'])",
    "non-text keys": "holds tensors without names: its keys are the number 0, the number 1, not weight names",
}
TADSR_TOP_LEVEL = "is not a TADSR checkpoint"


class Loader:
    """One file input of one pack loader: how to run the node with a file of any content there."""

    def __init__(self, node, file_input, folder, file_name, holds):
        self.node, self.file_input, self.folder, self.file_name = node, file_input, folder, file_name
        self.holds = holds  # a word the message must use to say what the file should hold

    @property
    def display_name(self):
        return self.node.define_schema().display_name

    def run(self, root, content):
        """Write `content` as the file behind the input (good files for the other inputs), run the node."""
        folder = root / self.folder
        folder.mkdir(parents=True, exist_ok=True)
        inputs = self.write(folder, content)
        self.node.execute(**inputs)

    def subject(self) -> str:
        """How the message names the file, right before what it holds."""
        if self.file_input == "time_vae":
            return "time_vae 'time_vae': diffusion_pytorch_model.bin"
        names = RESSHIFT_FILES if self.node is ResShiftLoader else {}
        return f"{self.file_input} {names.get(self.file_input, self.file_name or 'tadsr.pkl')!r}"

    def write(self, folder, content):
        torch.save(content, str(folder / self.file_name))
        return {self.file_input: self.file_name}


RESSHIFT_FILES = {"ckpt_name": "SinSR_v1.pth", "vae_name": "autoencoder_vq_f4.pth"}


class ResShiftLoaderInput(Loader):
    def write(self, folder, content):
        good = {"ckpt_name": rf.unet_state_dict("tiny"), "vae_name": rf.vq_state_dict("tiny")}
        for name, file in RESSHIFT_FILES.items():
            torch.save(content if name == self.file_input else good[name], str(folder / file))
        return dict(RESSHIFT_FILES, preset="auto")


class TADSRLoaderInput(Loader):
    def write(self, folder, content):
        pkl = content if self.file_input == "tadsr_name" else tf.tadsr_pkl_dict("tiny")
        torch.save(pkl, str(folder / "tadsr.pkl"))
        if self.file_input == "time_vae":
            (folder / "time_vae").mkdir()
            (folder / "time_vae" / "config.json").write_text(json.dumps(tf.time_vae_config("tiny")))
            torch.save(content, str(folder / "time_vae" / "diffusion_pytorch_model.bin"))
        else:
            tf.write_time_vae(folder / "time_vae")
        model = types.SimpleNamespace(get_model_object=lambda name: None)  # never reached: the file is refused first
        return dict(model=model, tadsr_name="tadsr.pkl", time_vae="time_vae", strength=1.0)


LOADERS = {
    "DoSSR ckpt_name": Loader(DoSSRCheckpointLoader, "ckpt_name", "dossr", "dossr_default.ckpt", "DoSSR checkpoint"),
    "ResShift ckpt_name": ResShiftLoaderInput(ResShiftLoader, "ckpt_name", "resshift", None, "UNetModelSwin"),
    "ResShift vae_name": ResShiftLoaderInput(ResShiftLoader, "vae_name", "resshift", None, "autoencoder_vq_f4.pth"),
    "Starter model_name": Loader(StarterModelLoader, "model_name", "timeaware_sr", "starter.pth", "starter model"),
    "TASR tasr_name": Loader(TASRLoader, "tasr_name", "tasr", "tasr_v1.pth", "checkpoint_adapter"),
    "TADSR tadsr_name": TADSRLoaderInput(LoadTADSR, "tadsr_name", "tadsr", None, "state_dict_unet"),
    "TADSR time_vae": TADSRLoaderInput(LoadTADSR, "time_vae", "tadsr", None, "time-aware VAE"),
}

# Contents only some loaders read: the parts inside TASR's and TADSR's dictionaries.
TADSR_PARTS = {  # part -> (the released dict changed, what the message says after "tadsr_name 'tadsr.pkl': ")
    "state_dict_unet a list": (lambda sd: dict(sd, state_dict_unet=[t(2)]),
                               "its state_dict_unet holds a list of 1 item, not a dictionary of named tensors"),
    "state_dict_vae of non-tensors": (lambda sd: dict(sd, state_dict_vae={"a.lora_A.default_encoder.weight": 3}),
                                      "its state_dict_vae holds no tensors ('a.lora_A.default_encoder.weight' is the "
                                      "number 3)"),
    "state_dict_unet with non-text keys": (lambda sd: dict(sd, state_dict_unet={0: t(2)}),
                                           "its state_dict_unet holds tensors without names"),
    "state_dict_vae_time empty": (lambda sd: dict(sd, state_dict_vae_time={}),
                                  "its state_dict_vae_time is an empty dictionary"),
    "rank_unet text": (lambda sd: dict(sd, rank_unet="four"),
                       "its rank_unet holds the text 'four'; it should be the LoRA rank"),
    "rank_vae a tensor": (lambda sd: dict(sd, rank_vae=t(2)), "its rank_vae holds a single tensor of shape (2,)"),
    "module list a number": (lambda sd: dict(sd, unet_lora_encoder_modules=7),
                             "its unet_lora_encoder_modules holds the number 7; it should be a list of module names"),
    "vae module list of numbers": (lambda sd: dict(sd, vae_lora_encoder_modules=[1, 2]),
                                   "its vae_lora_encoder_modules holds a list of 2 items, among them the number 1"),
}
TASR_PARTS = {  # part -> (tasr_v1.pth's content, what the message says after "tasr_name 'tasr_v1.pth': ")
    "controlnet a list": ({"checkpoint_controlnet": [t(2)], "checkpoint_adapter": {"0.weight": t(2)}},
                          "its 'checkpoint_controlnet' holds a list of 1 item, not a dictionary of named tensors"),
    "adapters a tensor": ({"checkpoint_controlnet": {"input_blocks.0.0.weight": t(2)}, "checkpoint_adapter": t(2)},
                          "its 'checkpoint_adapter' holds a single tensor of shape (2,)"),
    "controlnet of non-tensors": ({"checkpoint_controlnet": {"a": 1}, "checkpoint_adapter": {"0.weight": t(2)}},
                                  "its 'checkpoint_controlnet' holds no tensors ('a' is the number 1)"),
    "both empty": ({"checkpoint_controlnet": {}, "checkpoint_adapter": {}},
                   "its 'checkpoint_controlnet' is an empty dictionary"),
}


STARTER = pathlib.Path(__file__).resolve().parents[1] / "model_patches" / "weights" / "starter_sr.safetensors"
GOOD_CONTENT = {  # loader -> its right content (tiny sizes; the starter model's own bundled file)
    "DoSSR ckpt_name": lambda: cf.dossr_state_dict("tiny"),
    "ResShift ckpt_name": lambda: rf.unet_state_dict("tiny"),
    "ResShift vae_name": lambda: rf.vq_state_dict("tiny"),
    "Starter model_name": lambda: safetensors.torch.load_file(str(STARTER)),
    "TASR tasr_name": lambda: tsf.tasr_state_dict("tiny"),
    "TADSR tadsr_name": lambda: tf.tadsr_pkl_dict("tiny"),
    "TADSR time_vae": lambda: tf.time_vae_state_dict("tiny"),
}
RESHAPED = {  # every tensor of the right content, reshaped: the right keys, tensors of another rank or size
    "1-D": lambda v: v.flatten()[:2].clone(),
    "scalar": lambda v: v.flatten()[0].clone(),
    "an extra dimension": lambda v: v[None].clone(),
}


def reshaped(content, how):
    if isinstance(content, dict):
        return {k: reshaped(v, how) for k, v in content.items()}
    return how(content) if isinstance(content, torch.Tensor) else content


@pytest.fixture
def models_root(tmp_path, monkeypatch):
    """The pack's model folders, each only a folder under tmp_path (ComfyUI's list cache dropped)."""
    import timeaware_sr

    root = tmp_path / "models"
    for name in timeaware_sr.MODEL_FOLDERS:
        monkeypatch.setitem(folder_paths.folder_names_and_paths, name,
                            ([str(root / name)], set(folder_paths.supported_pt_extensions)))
        monkeypatch.delitem(folder_paths.filename_list_cache, name, raising=False)
    yield root
    for name in timeaware_sr.MODEL_FOLDERS:
        folder_paths.filename_list_cache.pop(name, None)


def refusal(loader, root, content) -> str:
    with pytest.raises((CheckpointError, InputError)) as err:
        loader.run(root, content)
    assert type(err.value).__module__ == "TimeAwareSR"
    return str(err.value)


def assert_worded(message, loader, tmp_path):
    assert message.startswith(f"{loader.display_name}: {loader.file_input} "), message
    assert loader.holds in message, message  # what the file should hold
    assert not PYTHON_INTERNALS.search(message), message
    assert str(tmp_path) not in message and str(tmp_path.resolve()) not in message, message
    assert "\x1b[" not in message


@pytest.mark.parametrize("content", list(BAD_CONTENT))
@pytest.mark.parametrize("loader", list(LOADERS))
def test_wrong_content_is_refused_naming_node_input_and_what_the_file_holds(models_root, tmp_path, loader, content):
    message = refusal(LOADERS[loader], models_root, BAD_CONTENT[content])
    assert_worded(message, LOADERS[loader], tmp_path)
    top_level_dict = loader == "TADSR tadsr_name" and isinstance(BAD_CONTENT[content], dict) and content not in (
        "state_dict holding a list",)
    if top_level_dict:
        assert TADSR_TOP_LEVEL in message, message
    elif SAYS[content].startswith(("holds", "is an")):  # right after the input and its file, said once
        assert f"{LOADERS[loader].subject()} {SAYS[content]}" in message, message
    else:
        assert SAYS[content] in message, message


def test_a_local_path_in_a_loader_message_is_shown_as_its_models_folder(models_root):
    """The safety net behind every loader message: a folder the node reads appears as models/<folder>/."""
    from timeaware_sr.nodes.validation import word_checkpoint_error

    error = CheckpointError(f"something in {models_root / 'dossr' / 'sub' / 'x.ckpt'} went wrong")
    word_checkpoint_error(DoSSRCheckpointLoader, {"ckpt_name": "x.ckpt"}, error)
    assert str(error) == "Load DoSSR Checkpoint: something in models/dossr/sub/x.ckpt went wrong"
    word_checkpoint_error(DoSSRCheckpointLoader, {"ckpt_name": "x.ckpt"}, error)  # once only
    assert str(error).count("Load DoSSR Checkpoint") == 1


@pytest.mark.parametrize("how", list(RESHAPED))
@pytest.mark.parametrize("loader", list(LOADERS))
def test_the_right_keys_with_tensors_of_another_shape_are_refused_in_words(models_root, tmp_path, loader, how):
    """Sizes read off the weights (configs, LoRA ranks) meet the wrong rank before any key check can."""
    message = refusal(LOADERS[loader], models_root, reshaped(GOOD_CONTENT[loader](), RESHAPED[how]))
    assert message.startswith(f"{LOADERS[loader].display_name}: {LOADERS[loader].file_input} "), message
    assert not PYTHON_INTERNALS.search(message) and str(tmp_path) not in message, message


# (loader, how the message names the file, the file's content, what the message says next), per wrong part
WRONG_PARTS = {**{f"tadsr-{part}": ("TADSR tadsr_name", "tadsr_name 'tadsr.pkl'",
                                    lambda change=change: change(tf.tadsr_pkl_dict("tiny")), says)
                  for part, (change, says) in TADSR_PARTS.items()},
               **{f"tasr-{part}": ("TASR tasr_name", "tasr_name 'tasr_v1.pth'", lambda content=content: content, says)
                  for part, (content, says) in TASR_PARTS.items()}}


@pytest.mark.parametrize("part", list(WRONG_PARTS))
def test_wrong_parts_of_tadsr_pkl_and_tasr_v1_are_refused_in_words(models_root, tmp_path, part):
    name, file_named, content, says = WRONG_PARTS[part]
    loader = LOADERS[name]
    message = refusal(loader, models_root, content())
    assert message.startswith(f"{loader.display_name}: {file_named}: {says}"), message
    assert not PYTHON_INTERNALS.search(message) and str(tmp_path) not in message, message


def test_junk_bytes_and_a_broken_time_vae_folder_name_the_input_without_local_paths(models_root, tmp_path):
    """The junk-file messages (test_checkpoint_junk.py) and the time_vae folder's own, reached through the node."""
    (models_root / "dossr").mkdir(parents=True)
    (models_root / "dossr" / "dossr_default.ckpt").write_text("<!DOCTYPE html><html>Sign in</html>")
    with pytest.raises(CheckpointError) as err:
        DoSSRCheckpointLoader.execute(ckpt_name="dossr_default.ckpt")
    assert str(err.value).startswith("Load DoSSR Checkpoint: ckpt_name 'dossr_default.ckpt' is an HTML page")
    folder = models_root / "tadsr"
    folder.mkdir()
    TADSRLoaderInput(LoadTADSR, "time_vae", "tadsr", None, "").write(folder, tf.time_vae_state_dict("tiny"))
    (folder / "time_vae" / "diffusion_pytorch_model.bin").unlink()
    with pytest.raises(CheckpointError) as err:
        LoadTADSR.execute(model=types.SimpleNamespace(get_model_object=None), tadsr_name="tadsr.pkl",
                          time_vae="time_vae", strength=1.0)
    message = str(err.value)
    assert message.startswith("Load TADSR: time_vae 'time_vae' has no weights file"), message
    assert str(tmp_path) not in message, message


# ---------------------------------------------------------------- Tiled Diffusion: a tile the model cannot take

def sinsr_sample(model, lr_height, lr_width):
    """The SinSR workflow's sampling on a tiny network: LR -> ResShift Prepare LR -> (stand-in) latent -> one step."""
    import comfy.sample
    import comfy.samplers

    from timeaware_sr.model_patches.resshift.lr_image import prepare_lr
    from timeaware_sr.model_patches.resshift.model import LQ_KEY
    from timeaware_sr.samplers.resshift_sampler import sample_resshift
    from timeaware_sr.samplers.resshift_schedule import resshift_sigmas

    _upscaled, lq = prepare_lr(torch.rand(1, lr_height, lr_width, 3, generator=torch.Generator().manual_seed(0)))
    latent = torch.randn(1, 3, *lq.shape[-2:], generator=torch.Generator().manual_seed(1))
    cond = [[torch.zeros(1, 1, 1), {LQ_KEY: lq}]]
    sigmas = resshift_sigmas(model.get_model_object("model_sampling"))
    with torch.inference_mode():
        noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(2))
        return comfy.sample.sample_custom(model, noise, 1.0, comfy.samplers.KSAMPLER(sample_resshift),
                                          sigmas, cond, cond, latent, disable_pbar=True)


@pytest.fixture(scope="module")
def tiny_sinsr():
    from timeaware_sr.model_patches.resshift.checkpoint import build_resshift_model

    return build_resshift_model(rf.unet_state_dict("tiny"), "sinsr", "tiny")  # sides: multiples of 16 latent px


@pytest.mark.parametrize("tile, overlap, suggested", [(8, 2, "16"), (24, 4, "16 or 32"), (12, 0, "16")])
def test_a_tile_size_the_network_cannot_take_is_refused_naming_the_node_and_tile_size(tiny_sinsr, tile, overlap,
                                                                                     suggested):
    """The tiled SinSR workflow on a 32x24 image (issue 28): the LR is padded to 64x64, its latent is 64x64, and
    tile_size 8 cut it into 8x8 tiles that ResShift's network refused with advice about padding the LR."""
    from timeaware_sr.nodes.tiling import TiledDiffusion

    tiled = TiledDiffusion.execute(tiny_sinsr, tile, overlap, "gaussian", 4)[0]
    with pytest.raises(InputError) as err:
        sinsr_sample(tiled, 24, 32)
    message = str(err.value)
    assert message.startswith(f"Tiled Diffusion (TimeAwareSR): tile_size {tile} cuts the 64x64 latent into tiles of "
                              f"{tile}x{tile}"), message
    assert message.endswith(f"set tile_size to a multiple of 16 (e.g. {suggested})"), message
    assert "ResShift Prepare LR" not in message and not PYTHON_INTERNALS.search(message)


def test_tile_sizes_the_network_takes_still_run_and_one_tile_is_the_untiled_result(tiny_sinsr):
    from timeaware_sr.nodes.tiling import TiledDiffusion

    untiled = sinsr_sample(tiny_sinsr, 24, 32)
    for tile in (16, 32):  # several tiles
        out = sinsr_sample(TiledDiffusion.execute(tiny_sinsr, tile, 8 if tile == 32 else 0, "gaussian", 4)[0], 24, 32)
        assert out.shape == untiled.shape and torch.isfinite(out).all()
    # 100 is no multiple of 16, but the 64x64 latent fits one tile: nothing is cut, the call is the untiled one
    assert torch.equal(sinsr_sample(TiledDiffusion.execute(tiny_sinsr, 100, 8, "gaussian", 4)[0], 24, 32), untiled)


def test_the_overlap_rule_says_what_to_set():
    from timeaware_sr.nodes.tiling import TiledDiffusion

    message = TiledDiffusion.validate_inputs(tile_size=8, overlap=12, blend="gaussian", tile_batch=1)
    assert message == ("Tiled Diffusion (TimeAwareSR): overlap must be smaller than tile_size, got overlap 12 with "
                       "tile_size 8: set overlap to 7 or less, or tile_size to 13 or more")
