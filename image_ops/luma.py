"""Brightness of an RGB image (ITU-R BT.601 weights, as OpenCV's RGB2GRAY), for the SDS map and the
colour fix's gray-image case."""
import torch

BT601 = (0.299, 0.587, 0.114)


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """…×3 channel-last RGB -> …×1."""
    return (rgb * rgb.new_tensor(BT601)).sum(-1, keepdim=True)
