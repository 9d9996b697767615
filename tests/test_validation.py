"""Prompt-time checks (nodes/validation.py): values that come through links arrive as None."""
import pytest

from timeaware_sr.nodes.validation import one_of, pixel_schedule, raise_unless_valid


@pytest.mark.parametrize("args, ok", [
    ((225.0, 325.0, 1.0, 2.5, 500), True),
    ((None, None, None, None, None), True),      # everything linked: checked when the node runs
    ((225.0, None, None, 2.5, 500), True),
    ((600.0, None, None, None, 500), False),     # a alone is still range-checked
    ((300.0, 200.0, 1.0, 2.5, 500), False),
    ((0.0, 200.0, 1.0, 2.5, 500), False),
    ((225.0, 325.0, None, 11.0, 500), False),
    ((225.0, 325.0, 0.5, None, 500), False),
    ((225.0, 325.0, 3.0, 2.0, 500), False),
])
def test_pixel_schedule_ranges(args, ok):
    assert (pixel_schedule(*args) is True) == ok


def test_one_of_and_raise_unless_valid():
    assert one_of("base", None, ["euler"]) is True
    with pytest.raises(ValueError, match="base must be one of \\['euler'\\], got 'heun'"):
        raise_unless_valid(one_of("base", "heun", ["euler"]))
