"""Thin ComfyUI nodes; the math they call lives in samplers/ and model_patches/."""
from comfy_api.v0_0_2 import ComfyExtension, io

from .color_fix import ColorFix

NODE_LIST: list[type[io.ComfyNode]] = [
    ColorFix,
]


class TimeAwareSRExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODE_LIST
