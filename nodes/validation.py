"""Prompt-time checks for V3 node inputs.

ComfyUI 0.3.75 does not check V3 combo values itself, so nodes call these from
`validate_inputs`; a returned string is shown to the user as the error for that input."""


def one_of(name: str, value, options) -> bool | str:
    if value in options:
        return True
    return f"{name} must be one of {list(options)}, got {value!r}"
