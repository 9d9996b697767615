"""Prompt-time checks for V3 node inputs.

ComfyUI 0.3.75 does not check V3 combo values itself, so nodes call these from
`validate_inputs`; a returned string is shown to the user as the error for that input."""


def one_of(name: str, value, options) -> bool | str:
    if value in options:
        return True
    return f"{name} must be one of {list(options)}, got {value!r}"


def model_file(name: str, folder: str, value, hint: str = "") -> bool | str:
    """The model file must be in one of the folder's configured paths."""
    import folder_paths

    if value in folder_paths.get_filename_list(folder):
        return True
    where = ", ".join(folder_paths.get_folder_paths(folder))
    return f"{name} {value!r} is not in {where}" + (f" ({hint})" if hint else "")


def pixel_schedule(a_min, a_max, n_min, n_max, a_limit) -> bool | str:
    """TSS per-pixel schedule ranges. Nodes that list these in validate_inputs lose ComfyUI's own
    min/max checks for them, so the whole range is checked here."""
    if not 0 < a_min <= a_max < a_limit:
        return f"a_min and a_max must satisfy 0 < a_min <= a_max < {a_limit:g}, got a_min {a_min}, a_max {a_max}"
    if not 1 <= n_min <= n_max <= 10:
        return f"n_min and n_max must satisfy 1 <= n_min <= n_max <= 10, got n_min {n_min}, n_max {n_max}"
    return True
