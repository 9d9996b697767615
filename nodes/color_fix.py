"""Color Fix (SR): the output's colours moved to the LR image's (wavelet or AdaIN). Math: docs/shared.md §7.1."""
from comfy_api.v0_0_2 import io

from ..image_ops.color_fix import METHODS
from .category import CATEGORY
from .pack_node import PackNode


class ColorFix(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_ColorFix",
            display_name="Color Fix (SR)",
            category=f"{CATEGORY}/image",
            description="Restores the colours and tones of a reference image (usually the upscaled "
            "low-resolution input) onto a super-resolved image, removing the colour shift that "
            "diffusion SR tends to add. The output keeps the image's size, detail and alpha.",
            inputs=[
                io.Image.Input("image", tooltip="The super-resolved image whose colours drifted."),
                io.Image.Input(
                    "reference",
                    tooltip="Image with the right colours, e.g. the low-resolution input or its plain "
                    "upscale. Any size: it is resized to the image. One reference can serve a whole batch.",
                ),
                io.Combo.Input(
                    "method",
                    options=list(METHODS),
                    default="wavelet",
                    tooltip="wavelet: takes the reference's coarse colour and shading, keeps the image's "
                    "fine detail (best for SR). adain: only matches each channel's overall mean and "
                    "contrast, so local colour errors remain.",
                ),
            ],
            outputs=[io.Image.Output(tooltip="The image with the reference's colours and its own fine detail.")],
        )

    @classmethod
    def execute(cls, image, reference, method) -> io.NodeOutput:
        from ..image_ops.color_fix import color_fix_images

        return io.NodeOutput(color_fix_images(image, reference, method))
