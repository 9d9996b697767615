"""Input checks (nodes/validation.py, run by nodes/pack_node.py): every range comes from the node's
schema, and a value that arrives through a link (None at queue time) gets the same check when the
node runs."""
import math

import pytest
import torch

from timeaware_sr.clear_errors import InputError, require_finite
from timeaware_sr.nodes.dossr_sampling import DoSSRSampler, DoSSRScheduler
from timeaware_sr.nodes.tds_scheduler import TDSScheduler
from timeaware_sr.nodes.tss import TSSSampler
from timeaware_sr.nodes.validation import check_inputs, raise_unless_valid, require_valid_inputs


def schema_input(node, name):
    return next(i for i in node.define_schema().inputs if i.id == name)


@pytest.mark.parametrize("node, name", [(TDSScheduler, "steps"), (TDSScheduler, "n"), (TSSSampler, "a_max"),
                                        (DoSSRScheduler, "t1"), (DoSSRSampler, "n_min")])
def test_ranges_are_the_schema_ranges(node, name):
    """The bounds accepted are exactly the widget's min and max, read from the schema."""
    spec = schema_input(node, name)
    step = 1 if str(spec.get_io_type()) == "INT" else 1e-6
    assert check_inputs(node, {name: spec.min}) is True
    assert check_inputs(node, {name: spec.max}) is True
    for bad in (spec.min - step, spec.max + step):
        message = check_inputs(node, {name: bad})
        assert message is not True and name in message and f"{bad:g}"[:4] in message


@pytest.mark.parametrize("value, words", [
    (math.nan, "finite number"), (math.inf, "finite number"), (-math.inf, "finite number"),
    ("abc", "finite number"), (None, "got no value \\(null\\)"), (True, "finite number"), ([1.0], "finite number"),
])
def test_bad_numbers_are_named_at_run_time(value, words):
    with pytest.raises(InputError, match=f"TDS Scheduler \\(TSS\\): n .*{words}") as err:
        require_valid_inputs(TDSScheduler, {"steps": 5, "a": 550.0, "n": value, "start": 999.0, "end": 0.0})
    assert "Traceback" not in str(err.value)


def test_a_linked_value_is_skipped_at_queue_time_and_checked_at_run_time():
    assert check_inputs(TDSScheduler, {"steps": None, "n": 2.0}) is True
    with pytest.raises(InputError, match="steps must be at least 1 and at most 1000, got 100000"):
        require_valid_inputs(TDSScheduler, {"steps": 100000, "a": 550.0, "n": 2.0, "start": 999.0, "end": 0.0})
    with pytest.raises(InputError, match="steps must be at least 1 and at most 1000, got 0"):
        require_valid_inputs(TDSScheduler, {"steps": 0, "a": 550.0, "n": 2.0, "start": 999.0, "end": 0.0})
    with pytest.raises(InputError, match="steps must be a whole number"):
        require_valid_inputs(TDSScheduler, {"steps": 2.5, "a": 550.0, "n": 2.0, "start": 999.0, "end": 0.0})


def test_combo_socket_and_rules():
    assert "base must be one of ['euler', 'dpmpp_2m'], got 'heun'" in check_inputs(TSSSampler, {"base": "heun"})
    assert "variance_map must be connected to a MASK, got 5" in check_inputs(TSSSampler, {"variance_map": 5})
    assert "a_min and a_max must satisfy 0 < a_min <= a_max < 999" in check_inputs(TSSSampler, {"a_min": 600.0, "a_max": 500.0})
    nan_map = torch.full((1, 4, 4), math.nan)
    assert "variance_map contains NaN" in check_inputs(TSSSampler, {"variance_map": nan_map}, at_run=True)
    assert "steps must be below t1 (300), got 300" in check_inputs(DoSSRScheduler, {"steps": 300, "t1": 300})


def test_dossr_a_range_is_bounded_by_t1_only_with_a_variance_map():
    """t1 = 300 with the default a-range (225-325) and no map is a valid DoSSR run (issue 11 item 4)."""
    values = {"order": 3, "t1": 300, "variance_map": None, "a_min": 225.0, "a_max": 325.0, "n_min": 1.0, "n_max": 2.5}
    assert check_inputs(DoSSRSampler, values, at_run=True) is True
    queued = {k: v for k, v in values.items() if k != "variance_map"}  # no map connected
    assert check_inputs(DoSSRSampler, queued) is True
    assert check_inputs(DoSSRSampler, dict(queued, variance_map=None)) is not True  # linked
    with_map = dict(values, variance_map=torch.zeros(1, 8, 8))
    assert "0 < a_min <= a_max < 300, got a_min 225.0, a_max 325.0" in check_inputs(DoSSRSampler, with_map, at_run=True)


def test_raise_unless_valid_and_require_finite_give_plain_input_errors():
    with pytest.raises(InputError, match="base must be one of"):
        raise_unless_valid("base must be one of ['euler'], got 'heun'")
    require_finite(torch.ones(3), "x")
    with pytest.raises(InputError, match=r"the model output contains NaN and \+inf \(2 of 3 values\): lower it") as err:
        require_finite(torch.tensor([1.0, math.nan, math.inf]), "the model output", "lower it")
    assert type(err.value).__module__ == "TimeAwareSR"  # ComfyUI shows module.class: no install path


def test_every_node_checks_its_inputs_when_it_runs():
    """PackNode wraps each node's execute: a value that reached it through a link (never seen at queue
    time) is refused by name before the node does anything."""
    from timeaware_sr.nodes import NODE_LIST
    from timeaware_sr.nodes.pack_node import PackNode

    assert all(issubclass(node, PackNode) and node.execute.__func__.checks_inputs for node in NODE_LIST)
    with pytest.raises(InputError, match=r"DoSSR Sampler: order must be at least 1 and at most 3, got 5"):
        DoSSRSampler.execute(order=5, t1=500)
    with pytest.raises(InputError, match=r"DoSSR Scheduler: steps must be below t1 \(300\), got 300"):
        model = type("Model", (), {"get_model_object": lambda self, name: None})()
        DoSSRScheduler.execute(model, 300, 300)  # the rule between inputs, at run time too


def test_comfyuis_per_run_class_clone_checks_once():
    """ComfyUI runs a shallow clone of each V3 node class; the clone keeps the one checked execute."""
    from comfy_api.internal import shallow_clone_class

    clone = shallow_clone_class(DoSSRSampler)
    assert clone.execute.__func__ is DoSSRSampler.execute.__func__
    with pytest.raises(InputError, match="order must be"):
        clone.execute(order=0, t1=500)


LOADERS = [("dossr_loader", "DoSSRCheckpointLoader", "ckpt_name"), ("resshift_loader", "ResShiftLoader", "ckpt_name"),
           ("resshift_loader", "ResShiftLoader", "vae_name"), ("tadsr_loader", "LoadTADSR", "tadsr_name"),
           ("tasr", "TASRLoader", "tasr_name")]


def loader(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(f"timeaware_sr.nodes.{module}"), name)


@pytest.mark.parametrize("module, name, file_input", LOADERS)
def test_an_empty_model_folder_says_which_files_go_there_and_where_to_get_them(monkeypatch, module, name, file_input):
    """A new install: the folder is empty (or was never made). The queue-time message names the folder, the files
    and the page to get them from, where ComfyUI alone would say only "value not in list"."""
    import folder_paths
    from workflow_specs import all_model_files  # tools/

    node = loader(module, name)
    folder = node.model_files[file_input][0]
    monkeypatch.setattr(folder_paths, "get_filename_list", lambda _folder: [])
    message = check_inputs(node, {file_input: "whatever.pth"})
    assert message is not True and f"{file_input}: models/{folder}/" in message and "is empty or missing" in message
    pages = {e["url"] for f, e in all_model_files().items() if e["directory"] == folder}
    assert pages and all(page in message for page in pages), (pages, message)
