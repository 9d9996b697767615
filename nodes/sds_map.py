from comfy_api.v0_0_2 import io

from .category import CATEGORY
from .validation import check_inputs, require_valid_inputs


class SDSVarianceMap(io.ComfyNode):
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
            ],
            outputs=[
                io.Image.Output(display_name="IMAGE", tooltip="The map as a gray image, for previewing."),
                io.Mask.Output(display_name="MASK", tooltip="The same map in [0, 1]."),
            ],
        )

    @classmethod
    def validate_inputs(cls, **values) -> bool | str:
        return check_inputs(cls, values)

    @classmethod
    def execute(cls, image) -> io.NodeOutput:
        from ..samplers.sds_map import variance_map

        require_valid_inputs(cls, locals())
        if min(image.shape) == 0:
            raise ValueError(f"SDS Variance Map: the image is empty (shape {None if image is None else tuple(image.shape)})")
        v = variance_map(image)
        return io.NodeOutput(v[..., None].expand(-1, -1, -1, 3).contiguous(), v)
