"""Fit to Model Size / Restore Size: an official pipeline's raise-and-pad before sampling, undone after
decoding, so any input comes back at exactly its own size x the model's scale. Math: docs/shared.md §7.4."""
from comfy_api.v0_0_2 import io

from ..image_ops.model_size import PAD_MODES
from .category import CATEGORY
from .pack_node import PackNode

SizeRecord = io.Custom("TIMEAWARESR_SIZE")


class FitToModelSize(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_FitToModelSize",
            display_name="Fit to Model Size",
            category=f"{CATEGORY}/image",
            description="Brings any image to a size the model samples well at, as the method's official code "
            "does: the short side is raised to a minimum when below it (antialiased bicubic), then the bottom "
            "and right are padded to a multiple. The size output records what was done: give it to 'Restore "
            "Size' after decoding to get exactly the input's size back. Alpha is padded like colour.",
            inputs=[
                io.Image.Input("image", tooltip="The image the model works on (e.g. the x4 upscale of your "
                               "low-resolution picture); any size, any batch."),
                io.Int.Input("multiple", default=64, min=1, max=512, step=1,
                             tooltip="Pad width and height up to a multiple of this: 64 as the official SD-based "
                             "code (DoSSR, TASR), 8 is the least an SD VAE needs."),
                io.Int.Input("min_short_side", default=0, min=0, max=4096, step=1,
                             tooltip="Raise the short side to this when it is smaller (0: never). 512 for TASR and "
                             "TADSR, whose models work at 512 px."),
                io.Combo.Input("mode", options=list(PAD_MODES), default="zeros",
                               tooltip="zeros: black padding, as DoSSR's and TASR's code. reflect: the image "
                               "mirrored, as ResShift's code."),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The raised and padded image: encode or use as the "
                                "ControlNet hint."),
                SizeRecord.Output(display_name="size", tooltip="What was done: connect to 'Restore Size'."),
            ],
        )

    @classmethod
    def execute(cls, image, multiple, min_short_side, mode) -> io.NodeOutput:
        from ..image_ops.model_size import fit_to_model

        return io.NodeOutput(*fit_to_model(image, multiple, min_short_side, mode))


class RestoreSize(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_RestoreSize",
            display_name="Restore Size",
            category=f"{CATEGORY}/image",
            description="Undoes 'Fit to Model Size' on the decoded result: crops the padding away and resizes "
            "back from the raised size (antialiased bicubic), so the output is exactly the size of the image "
            "that went into 'Fit to Model Size' (times the model's scale when the decoded image is a whole "
            "multiple of the padded one). Connect Load Image's MASK to get the input's transparency back.",
            inputs=[
                io.Image.Input("image", tooltip="The decoded result of the padded image."),
                SizeRecord.Input("size", tooltip="The size output of the 'Fit to Model Size' node that made "
                                 "the padded image."),
                io.Mask.Input("mask", optional=True, tooltip="The input's transparency (Load Image's MASK): put "
                              "back as the result's alpha, stretched to its size. A picture without alpha leaves "
                              "the result RGB."),
            ],
            outputs=[io.Image.Output(tooltip="The result at the input's exact size.")],
        )

    @classmethod
    def execute(cls, image, size, mask=None) -> io.NodeOutput:
        from ..image_ops.alpha import put_back_alpha
        from ..image_ops.model_size import restore_size

        return io.NodeOutput(put_back_alpha(restore_size(image, size), mask, "Restore Size"))
