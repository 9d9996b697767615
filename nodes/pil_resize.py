"""Upscale Image (PIL Bicubic): the resize of the official TADSR pre-processing, which its model was
trained on. Math: docs/shared.md §7.3."""
from comfy_api.v0_0_2 import io

from .category import CATEGORY
from .pack_node import PackNode


class ImageScalePIL(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_ImageScalePIL",
            display_name="Upscale Image (PIL Bicubic)",
            category=f"{CATEGORY}/image",
            description="Resizes like PIL's Image.resize with BICUBIC, the resize the official TADSR script uses "
            "before its model: a softer cubic (a = -0.5) than ComfyUI's 'bicubic' (a = -0.75), antialiased when "
            "shrinking, each pass stored as an 8-bit image as PIL does. Within one 8-bit step of PIL's pixels. "
            "Alpha is resized like colour.",
            inputs=[
                io.Image.Input("image", tooltip="The image to resize (any size, any batch, gray, RGB or RGBA)."),
                io.Float.Input("scale_by", default=4.0, min=0.01, max=16.0, step=0.01,
                               tooltip="Factor for width and height; each side is rounded to whole pixels as "
                               "ComfyUI's Upscale Image By does (4.0 for x4 SR)."),
            ],
            outputs=[io.Image.Output(tooltip="The resized image, values in [0, 1].")],
        )

    @classmethod
    def execute(cls, image, scale_by) -> io.NodeOutput:
        from ..image_ops.pil_resize import pil_bicubic, scaled_size

        width, height = scaled_size(image.shape[2], image.shape[1], scale_by)
        return io.NodeOutput(pil_bicubic(image, width, height))
