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
