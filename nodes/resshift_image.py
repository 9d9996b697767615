"""ResShift Prepare LR: the official pad-to-64 rule, the LR conditioning and the crop back.
Math: docs/resshift.md §6.6."""
from comfy_api.v0_0_2 import io

from .category import CATEGORY
from .pack_node import PackNode


class ResShiftPrepareLR(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_ResShiftPrepareLR",
            display_name="ResShift Prepare LR",
            category=f"{CATEGORY}/image",
            description="Turns a low-resolution image into ResShift's two inputs, as the official code does: the LR "
            "is reflect-padded bottom/right to a multiple of 64 px (small images are mirrored repeatedly), then "
            "(1) upscaled x4 with bicubic, to be encoded with the ResShift VAE into the sampler's latent, and (2) kept "
            "as conditioning, which the network sees at every step. Crop the decoded result with 'ResShift Crop Output'.",
            inputs=[io.Image.Input("image", tooltip="The low-resolution picture (any size, any batch) to upscale x4.")],
            outputs=[
                io.Image.Output(display_name="upscaled", tooltip="Padded LR upscaled x4 (bicubic, overshoot kept): "
                                "connect to VAE Encode with the ResShift VAE."),
                io.Conditioning.Output(display_name="conditioning", tooltip="The padded LR image the network "
                                       "restores from: connect to the sampler's positive and negative inputs."),
            ],
        )

    @classmethod
    def execute(cls, image) -> io.NodeOutput:
        from ..model_patches.resshift.lr_image import prepare_lr
        from ..model_patches.resshift.model import lq_conditioning

        upscaled, lq = prepare_lr(image)
        return io.NodeOutput(upscaled, lq_conditioning(lq))


class ResShiftCropOutput(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_ResShiftCropOutput",
            display_name="ResShift Crop Output",
            category=f"{CATEGORY}/image",
            description="Removes the padding 'ResShift Prepare LR' added: keeps the top-left 4x the LR image's size.",
            inputs=[
                io.Image.Input("image", tooltip="The decoded ResShift result (padded size)."),
                io.Image.Input("lr_image", tooltip="The original low-resolution image: its size sets the output size "
                               "(4x it)."),

                io.Mask.Input("mask", optional=True, tooltip="The LR image's transparency (Load Image's MASK): put "
                              "back as the result's alpha, stretched x4. A picture without alpha leaves the result RGB."),
            ],
            outputs=[io.Image.Output(tooltip="The x4 picture at exactly 4x the LR size.")],
        )

    @classmethod
    def execute(cls, image, lr_image, mask=None) -> io.NodeOutput:
        from ..image_ops.alpha import put_back_alpha
        from ..model_patches.resshift.lr_image import crop_output

        return io.NodeOutput(put_back_alpha(crop_output(image, *lr_image.shape[1:3]), mask, "ResShift Crop Output"))
