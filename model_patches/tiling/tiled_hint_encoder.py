"""Large ControlNet hints are VAE-encoded in tiles (issue 15: the hint path never encodes a 4K image
in one piece). Same rule as ComfyUI's own tiled encode: 512-pixel tiles overlapping by 64, averaged
over its three tile layouts (`VAE.encode_tiled`). Images up to MAX_WHOLE_PIXELS encode in one
piece, exactly as before.
"""
MAX_WHOLE_PIXELS = 1024 * 1024  # about 3.7 GB of SD-VAE encoder activations at fp16; larger goes in tiles
TILE = 512  # pixels, VAEEncodeTiled's default
OVERLAP = 64


class TiledHintEncoder:
    """A ComfyUI VAE whose encode() tiles large images; everything else is the VAE's own."""

    def __init__(self, vae):
        self.vae = vae

    def encode(self, pixels):  # B x H x W x C, as VAE.encode takes it
        if pixels.shape[1] * pixels.shape[2] <= MAX_WHOLE_PIXELS:
            return self.vae.encode(pixels)
        return self.vae.encode_tiled(pixels, tile_x=TILE, tile_y=TILE, overlap=OVERLAP)

    def __getattr__(self, name):
        return getattr(self.vae, name)
