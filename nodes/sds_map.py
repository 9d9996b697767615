"""SDS Variance Map (TSS): the local variance of the LR image that sets each pixel's schedule.
Math: docs/tss.md §2."""
from comfy_api.v0_0_2 import io

from .category import CATEGORY
from .model_size import SizeRecord
from .pack_node import PackNode


class SDSVarianceMap(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_SDSVarianceMap",
            display_name="SDS Variance Map (TSS)",
            category=f"{CATEGORY}/sampling",
            description="TSS Spatial Dynamic Sampling: marks where the image is textured (white) or smooth (black), "
            "from the local variance of its brightness. Textured areas get more uneven timestep schedules. "
            "Preview the IMAGE output to see the map.",
            inputs=[
                io.Image.Input("image", tooltip="The low-resolution input or its upscale; any size, gray or with alpha."),
                SizeRecord.Input("size", optional=True, tooltip="When the model samples a padded image ('Fit to "
                                 "Model Size'), connect its size output: the map is then laid out on the padded "
                                 "canvas (stretched to the image, zero in the padding), so it lines up with the "
                                 "latent."),
            ],
            outputs=[
                io.Image.Output(display_name="IMAGE", tooltip="The map as a gray image, for previewing."),
                io.Mask.Output(display_name="MASK", tooltip="The same map in [0, 1]."),
            ],
        )

    @classmethod
    def execute(cls, image, size=None) -> io.NodeOutput:
        from ..image_ops.sds_map import variance_map_outputs

        return io.NodeOutput(*variance_map_outputs(image, size))
