"""Large images through an encoder in overlapping pixel tiles, by ComfyUI's own rule and machinery
(`comfy.sd.VAE.encode_tiled_`), for encoders that are not a plain `VAE.encode` (issue 15: TADSR's
time-aware encoder, which needs its timestep and both Gaussian moments).

Three tile layouts: tile x tile, (2 tile) wide x (tile/2) tall, (tile/2) wide x (2 tile) tall. Each
goes through `comfy.utils.tiled_scale` (pixel tiles overlapping by `overlap`, their latent tiles
blended with its feathered mask, ramping linearly over the overlap), and the three results are
averaged, so no tile border lies at the same place in all of them. The encoder's output channels are
blended alike, so every channel (a VAE's mean and logvar) is tiled the same way. An image no larger
than one tile is encoded in one piece: bitwise the untiled result.
"""
import torch

from ...clear_errors import InputError

MIN_TILE = 64  # pixels, VAE Encode (Tiled)'s minimum


def check_tiles(tile: int | None, overlap: int | None, downscale: int = 8) -> bool | str:
    """Tile and overlap that keep every tile on the latent grid in all three layouts: tile/2 and the
    overlap multiples of the encoder's downscale, the overlap below tile/2 (tiles must advance)."""
    if tile is not None and (tile < MIN_TILE or tile % (2 * downscale)):
        return f"tile_size must be at least {MIN_TILE} and a multiple of {2 * downscale} pixels, got {tile}"
    if overlap is not None and (overlap < 0 or overlap % downscale):
        return f"overlap must be 0 or more and a multiple of {downscale} pixels, got {overlap}"
    if tile is not None and overlap is not None and overlap >= tile // 2:
        return (f"overlap must be below half of tile_size (the narrow tile layout is tile_size / 2 = {tile // 2} "
                f"pixels), got overlap {overlap} with tile_size {tile}")
    return True


def tile_layouts(tile: int) -> list[tuple[int, int]]:
    """(tile width, tile height) of the three layouts, in VAE.encode_tiled_'s summation order."""
    return [(tile, tile), (tile * 2, tile // 2), (tile // 2, tile * 2)]


def fits_one_tile(height: int, width: int, tile: int) -> bool:
    return height <= tile and width <= tile


def tiled_encode(pixels: torch.Tensor, encode, tile: int, overlap: int, downscale: int, out_channels: int,
                 output_device) -> torch.Tensor:
    """encode(B,C,h,w pixel tile) -> B,out_channels,h/downscale,w/downscale, over the whole B,C,H,W
    image (H, W multiples of downscale) in tiles. `encode` gets the pixels as they are here."""
    import comfy.utils

    checked = check_tiles(tile, overlap, downscale)
    if checked is not True:
        raise InputError(checked)
    if fits_one_tile(pixels.shape[2], pixels.shape[3], tile):
        return encode(pixels).to(output_device)
    layouts = tile_layouts(tile)
    steps = sum(comfy.utils.get_tiled_scale_steps(pixels.shape[3], pixels.shape[2], tx, ty, overlap) for tx, ty in layouts)
    pbar = comfy.utils.ProgressBar(pixels.shape[0] * steps)
    total = None
    for tile_x, tile_y in layouts:
        part = comfy.utils.tiled_scale(pixels, encode, tile_x, tile_y, overlap, upscale_amount=1 / downscale,
                                       out_channels=out_channels, output_device=output_device, pbar=pbar)
        total = part if total is None else total + part
    return total / len(layouts)
