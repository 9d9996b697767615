import torch
from comfy_api.v0_0_2 import io

from .category import CATEGORY
from .validation import check_inputs, require_valid_inputs


def check_image(name: str, image: torch.Tensor):
    if image.ndim != 4 or image.shape[-1] not in (3, 4):
        raise ValueError(f"{name} must be an RGB image batch (B, H, W, 3), got shape {tuple(image.shape)}")
    if not torch.isfinite(image).all():
        raise ValueError(f"{name} contains NaN or infinite values")


class ResShiftPrepareLR(io.ComfyNode):
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
    def validate_inputs(cls, **values) -> bool | str:
        return check_inputs(cls, values)  # the schema's kinds and ranges (nodes/validation.py)

    @classmethod
    def execute(cls, image) -> io.NodeOutput:
        require_valid_inputs(cls, locals())
        from ..model_patches.resshift.lr_image import prepare_lr
        from ..model_patches.resshift.model import LQ_KEY

        check_image("image", image)
        upscaled, lq = prepare_lr(image)
        return io.NodeOutput(upscaled, [[torch.zeros(1, 1, 1), {LQ_KEY: lq}]])


class ResShiftCropOutput(io.ComfyNode):
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
            ],
            outputs=[io.Image.Output(tooltip="The x4 picture at exactly 4x the LR size.")],
        )

    @classmethod
    def validate_inputs(cls, **values) -> bool | str:
        return check_inputs(cls, values)  # the schema's kinds and ranges (nodes/validation.py)

    @classmethod
    def execute(cls, image, lr_image) -> io.NodeOutput:
        require_valid_inputs(cls, locals())
        from ..model_patches.resshift.lr_image import SCALE, crop_output, padded_size

        h, w = lr_image.shape[1:3]
        if image.shape[1] < SCALE * h or image.shape[2] < SCALE * w:
            raise ValueError(f"image is {image.shape[2]}x{image.shape[1]} px, smaller than 4x lr_image "
                             f"({SCALE * w}x{SCALE * h}); expected the decoded result of the same LR "
                             f"({SCALE * padded_size(w)}x{SCALE * padded_size(h)} px)")
        return io.NodeOutput(crop_output(image, h, w))
