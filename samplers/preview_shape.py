"""A latent shape ComfyUI's live preview can show (docs/shared.md §7.4).

ComfyUI shrinks each step's preview to fit 512 px, keeping the aspect ratio, and encodes it as JPEG on the
server's event loop. A latent more than 1024 times longer than wide shrinks to 0 px there, the encoder raises,
and the whole server stops (ComfyUI 0.3.75 `server.send_image`), taking every queued prompt with it. The pack's
samplers refuse such a latent before their first step, while the error can still be shown.
"""
from ..clear_errors import InputError

PREVIEW_MAX_RATIO = 1024  # round(short / long * 512) is 0 beyond this


def require_previewable(x, sampler: str):
    height, width = x.shape[-2:]
    if max(height, width) > PREVIEW_MAX_RATIO * min(height, width):
        raise InputError(
            f"{sampler}: the latent is {width}x{height}, more than {PREVIEW_MAX_RATIO} times longer than wide. "
            "ComfyUI's live preview shrinks it to 0 px and its server stops (a ComfyUI limit), so it is refused here. "
            "Crop the image into pieces, or pad it (Fit to Model Size) so its sides are within "
            f"{PREVIEW_MAX_RATIO}:1")
