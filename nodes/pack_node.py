"""The one way the pack declares a node: a schema, an optional rule, and a short `execute`.

    class DoSSRScheduler(PackNode):
        @classmethod
        def define_schema(cls): ...                  # kinds, ranges, options: the only definition
        @classmethod
        def rule(cls, values): ...                   # optional: what a schema cannot say
        @classmethod
        def execute(cls, model, steps, t1): ...      # runs on checked values only

Every input is checked against the schema (nodes/validation.py) twice: at queue time on the widget
values (`validate_inputs`; a linked value is None there and skipped), and when the node runs, on
every value, linked ones too, so a value never passes through a link where the widget would refuse
it. `model_files` names the combo inputs that list a model folder: they are checked against the
folder as it is now, and a missing file's message says where to get it. `rule(values)` sees the
values known so far (None for a linked one at queue time) and returns True or what is wrong.
"""
import functools
import inspect

from comfy_api.v0_0_2 import io

from .validation import check_inputs, require_valid_inputs


class PackNode(io.ComfyNode):
    model_files: dict[str, tuple[str, str]] = {}  # input -> (models/ folder, where to get the file)

    @classmethod
    def rule(cls, values: dict) -> bool | str:
        return True

    @classmethod
    def validate_inputs(cls, **values) -> bool | str:
        return check_inputs(cls, values)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        execute = cls.__dict__.get("execute")
        if execute is not None and not getattr(execute.__func__, "checks_inputs", False):
            cls.execute = classmethod(_checked(execute.__func__))


def _checked(execute):
    """execute, preceded by the run-time check of every input it is given (defaults included)."""
    signature = inspect.signature(execute)

    @functools.wraps(execute)
    def checked(cls, *args, **kwargs):
        bound = signature.bind(cls, *args, **kwargs)
        bound.apply_defaults()
        values = dict(list(bound.arguments.items())[1:])  # without cls
        require_valid_inputs(cls, values)
        return execute(cls, *args, **kwargs)

    checked.checks_inputs = True  # ComfyUI's per-run class clone must not wrap it twice
    return checked
