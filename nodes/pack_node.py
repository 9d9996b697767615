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
values known so far (None for a linked one at queue time) and returns True or what is wrong. A
CheckpointError raised while the node runs gets the node's name and the file input's in front
(`file_inputs`, nodes/validation.py `word_checkpoint_error`), so every loader's errors say where.
"""
import functools
import inspect

from comfy_api.v0_0_2 import io

from ..clear_errors import CheckpointError
from .validation import check_inputs, require_valid_inputs, word_checkpoint_error


class PackNode(io.ComfyNode):
    model_files: dict[str, tuple[str, str]] = {}  # input -> (models/ folder, where to get the file)
    model_folders: tuple[str, ...] = ()  # other models/ folders the node reads (never shown as local paths)

    @classmethod
    def rule(cls, values: dict) -> bool | str:
        return True

    @classmethod
    def file_inputs(cls, values: dict) -> dict[str, str]:
        """Input -> the full path of the file (or folder) its value chooses: the `model_files` inputs; a
        loader with a folder input adds it. A CheckpointError about one of them names that input."""
        import folder_paths

        found = {}
        for name, (folder, _hint) in cls.model_files.items():
            path = folder_paths.get_full_path(folder, values[name]) if isinstance(values.get(name), str) else None
            if path is not None:
                found[name] = path
        return found

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
        try:
            return execute(cls, *args, **kwargs)
        except CheckpointError as e:  # a model file: named by node and input, without local paths
            word_checkpoint_error(cls, values, e)
            raise

    checked.checks_inputs = True  # ComfyUI's per-run class clone must not wrap it twice
    return checked
