"""Tiled Diffusion (TimeAwareSR): the model run on overlapping latent tiles, blended.
Math: docs/shared.md §7.2."""
from comfy_api.v0_0_2 import io

from ..model_patches.tiling.tile_grid import BLENDS
from ..model_patches.tiling.tiled_model import NODE_NAME, check_overlap, patch_tiled_diffusion
from .category import CATEGORY
from .pack_node import PackNode


class TiledDiffusion(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_TiledDiffusion",
            display_name=NODE_NAME,
            category=f"{CATEGORY}/model_patches",
            description="Runs every model call on overlapping latent tiles and blends their estimates, so large "
            "images fit in memory. The sampler still sees the whole image (one noise field), so any sampler works; "
            "ControlNet hints, the starter model's LR and TSS variance maps are cut per tile. Put it before or after "
            "the TSS patch.",
            inputs=[
                io.Model.Input("model", tooltip="Any model; its ControlNets (from the conditioning) are tiled too."),
                io.Int.Input("tile_size", default=64, min=1, max=1024, step=1,
                             tooltip="Tile side in latent pixels (x8 for SD: 64 = 512 px). Larger tiles give each "
                             "tile more context and fewer seams, but use more memory per model call."),
                io.Int.Input("overlap", default=16, min=0, max=1023, step=1,
                             tooltip="Latent pixels shared by neighbouring tiles. More overlap hides seams better and "
                             "costs more model work."),
                io.Combo.Input("blend", options=list(BLENDS), default="gaussian",
                               tooltip="How overlapping tiles are mixed: gaussian weights favour each tile's centre "
                               "(smooth, seam-free transitions); uniform averages them (MultiDiffusion)."),
                io.Int.Input("tile_batch", default=4, min=1, max=256, step=1,
                             tooltip="Tiles run together in one model call: faster on a GPU, more memory. Does not "
                             "change the picture."),
            ],
            outputs=[io.Model.Output(tooltip="The model, denoising the image tile by tile; the picture matches the "
                                     "untiled one up to faint differences where tiles meet.")],
        )

    @classmethod
    def rule(cls, v) -> bool | str:
        return check_overlap(v.get("tile_size"), v.get("overlap"))

    @classmethod
    def execute(cls, model, tile_size, overlap, blend, tile_batch) -> io.NodeOutput:
        return io.NodeOutput(patch_tiled_diffusion(model, tile_size, overlap, blend, tile_batch))
