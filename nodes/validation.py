"""Prompt-time checks for V3 node inputs.

ComfyUI 0.3.75 does not check V3 combo values itself, so nodes call these from
`validate_inputs`; a returned string is shown to the user as the error for that input.
An input fed by a link (a widget converted to an input) reaches validate_inputs with no value, so
every parameter there defaults to None and is skipped; nodes run the same check again in execute
(`raise_unless_valid`), when every value is known."""


def raise_unless_valid(result: bool | str):
    if result is not True:
        raise ValueError(result)


def one_of(name: str, value, options) -> bool | str:
    if value is None or value in options:
        return True
    return f"{name} must be one of {list(options)}, got {value!r}"


def model_file(name: str, folder: str, value, hint: str = "") -> bool | str:
    """The model file must be in one of the folder's configured paths."""
    import folder_paths

    if value is None or value in folder_paths.get_filename_list(folder):
        return True
    where = ", ".join(folder_paths.get_folder_paths(folder))
    return f"{name} {value!r} is not in {where}" + (f" ({hint})" if hint else "")


def pixel_schedule(a_min, a_max, n_min, n_max, a_limit) -> bool | str:
    """TSS per-pixel schedule ranges. Nodes that list these in validate_inputs lose ComfyUI's own
    min/max checks for them, so the whole range is checked here; None (a linked value) is skipped."""
    a_known = [a for a in (a_min, a_max) if a is not None]
    if not all(0 < a < (a_limit or float("inf")) for a in a_known) or (len(a_known) == 2 and a_min > a_max):
        return f"a_min and a_max must satisfy 0 < a_min <= a_max < {a_limit or 'T'}, got a_min {a_min}, a_max {a_max}"
    n_known = [n for n in (n_min, n_max) if n is not None]
    if not all(1 <= n <= 10 for n in n_known) or (len(n_known) == 2 and n_min > n_max):
        return f"n_min and n_max must satisfy 1 <= n_min <= n_max <= 10, got n_min {n_min}, n_max {n_max}"
    return True
