"""The live-test harness itself (tests/support/comfy_live.py): a prompt that outlasts its test's wait
must not outlast the test. The client interrupts it, clears the queue and drops cached results
before it fails, and says what the server was running and for how long, so the next test starts
on an idle server instead of timing out behind it (on a busy machine one slow prompt once made
every later live test fail)."""
import re
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from support import comfy_live
from support.starter_prompt import starter_dossr_prompt

SAMPLE = comfy_live.PACK_DIR / "workflows" / "assets" / "chelsea_lr.png"


@pytest.fixture(scope="module")
def image_node(comfy):
    shutil.copy(SAMPLE, comfy.input_dir / SAMPLE.name)
    return {"class_type": "LoadImage", "inputs": {"image": SAMPLE.name}}


def slow_prompt(image_node, prefix):
    """Minutes of DoSSR steps at 512 px on the starter model: far longer than the waits below."""
    return starter_dossr_prompt(image_node, width=512, height=512, steps=499, prefix=prefix)


def normal_run(comfy, image_node) -> np.ndarray:
    outputs = comfy.run(starter_dossr_prompt(image_node, prefix="after_give_up"))
    [path] = comfy.output_images(outputs, "s9")
    return np.asarray(Image.open(path))


def history_status(comfy, prompt_id) -> dict:
    return comfy.get(f"/history/{prompt_id}").get(prompt_id, {}).get("status", {})


def test_a_prompt_that_outlasts_its_wait_is_stopped_and_the_next_prompt_runs(comfy, image_node):
    reference = normal_run(comfy, image_node)
    slow = comfy.queue(slow_prompt(image_node, "slow_1"))
    behind = comfy.queue(slow_prompt(image_node, "slow_2"))  # waits behind it, as the next test's prompt would
    with pytest.raises(TimeoutError) as gave_up:
        comfy.wait(slow, timeout=3)
    message = str(gave_up.value)
    assert f"prompt {slow} did not finish within 3 s" in message
    assert f"the server was running prompt {slow} for about" in message  # what, and for how long
    assert "TimeAwareSR_DoSSRSampler" in message and "1 more prompt(s) waited behind it" in message
    assert "the server is idle again" in message
    assert comfy.queue_state() == ([], [])
    assert any(kind == "execution_interrupted" for kind, _ in history_status(comfy, slow)["messages"])
    assert history_status(comfy, behind) == {}  # cleared from the queue, never run
    assert np.array_equal(normal_run(comfy, image_node), reference)  # the next prompt runs, as before


def test_a_watched_prompt_that_outlasts_its_wait_is_stopped_too(comfy, image_node):
    with pytest.raises(TimeoutError) as gave_up:
        comfy.run_watched(slow_prompt(image_node, "slow_watched"), timeout=3)
    assert re.search(r"prompt ([\w-]+) did not finish within 3 s; the server was running prompt \1 for about \d+ s",
                     str(gave_up.value)), gave_up.value
    assert comfy.queue_state() == ([], [])
    normal_run(comfy, image_node)


def test_a_test_that_left_the_server_busy_is_cleaned_up_before_the_next(comfy, image_node):
    """What the autouse fixture live_server_starts_idle does between tests."""
    comfy.queue(slow_prompt(image_node, "left_behind"))
    deadline = time.monotonic() + 60  # the server takes the prompt from pending to running on its own time
    while not comfy.queue_state()[0] and time.monotonic() < deadline:
        time.sleep(0.05)  # a /queue poll: the answer is the event waited on
    note = comfy.ensure_idle()
    assert note and note.startswith("an earlier test left the server busy; the server was running prompt")
    assert comfy.queue_state() == ([], []) and comfy.ensure_idle() is None
