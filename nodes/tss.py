"""TSS Spatial Timestep Patch and TSS Sampler: one timestep per pixel in one UNet call, and the
per-pixel sampler update. Math: docs/tss.md §2.5, §2.6."""
from comfy_api.v0_0_2 import io

from ..samplers.tds_schedule import SDS_N_RANGE, TSS_A_RANGE
from ..samplers.tss_sampler import BASES
from .category import CATEGORY
from .pack_node import PackNode
from .validation import tss_ranges_rule


class TSSSpatialTimestepPatch(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_TSSSpatialTimestepPatch",
            display_name="TSS Spatial Timestep Patch",
            category=f"{CATEGORY}/model_patches",
            description="Lets an SD1.x / SD2.x / SDXL model denoise every pixel at its own timestep, which the TSS "
            "Sampler needs. Without a TSS sampler the patched model behaves exactly like the original.",
            inputs=[io.Model.Input("model", tooltip="An SD1.x, SD2.x (eps or v) or SDXL model, or the starter model.")],
            outputs=[io.Model.Output(tooltip="The same model, now accepting a timestep per pixel; unchanged for "
                                             "ordinary samplers.")],
        )

    @classmethod
    def execute(cls, model) -> io.NodeOutput:
        from ..model_patches.tss.spatial_timestep import patch_spatial_timesteps

        return io.NodeOutput(patch_spatial_timesteps(model))


class TSSSampler(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_TSSSampler",
            display_name="TSS Sampler",
            category=f"{CATEGORY}/sampling",
            description="TSS time- and space-dynamic sampling: textured pixels (bright in the variance map) follow a "
            "schedule that spends more steps at the start and the end, smooth pixels a near-even one. Use with a "
            "model through 'TSS Spatial Timestep Patch' and evenly spaced SIGMAS (e.g. the 'normal' scheduler).",
            inputs=[
                io.Mask.Input("variance_map", tooltip="From 'SDS Variance Map' on the LR image (any size; resized)."),
                io.Combo.Input("base", options=list(BASES), default="euler", tooltip="The update each step uses."),
                io.Float.Input("a_min", default=TSS_A_RANGE[0], min=1.0, max=998.0, step=1.0,
                               tooltip="Sparsest timestep for smooth pixels."),
                io.Float.Input("a_max", default=TSS_A_RANGE[1], min=1.0, max=998.0, step=1.0,
                               tooltip="Sparsest timestep for the most textured pixels."),
                io.Float.Input("n_min", default=SDS_N_RANGE[0], min=1.0, max=10.0, step=0.1,
                               tooltip="Schedule power for smooth pixels (1 = evenly spaced)."),
                io.Float.Input("n_max", default=SDS_N_RANGE[1], min=1.0, max=10.0, step=0.1,
                               tooltip="Schedule power for the most textured pixels: larger = more steps on their "
                               "coarse layout and fine texture."),
            ],
            outputs=[io.Sampler.Output(tooltip="The per-pixel sampler: textured pixels get their own schedule, for "
                                               "SamplerCustomAdvanced.")],
        )

    @classmethod
    def rule(cls, v) -> bool | str:
        return tss_ranges_rule(v.get("a_min"), v.get("a_max"), v.get("n_min"), v.get("n_max"), a_limit=999)

    @classmethod
    def execute(cls, variance_map, base, a_min, a_max, n_min, n_max) -> io.NodeOutput:
        import comfy.samplers

        from ..samplers.tss_sampler import sample_tss

        options = {"variance": variance_map, "base": base, "a_range": (a_min, a_max), "n_range": (n_min, n_max)}
        return io.NodeOutput(comfy.samplers.KSAMPLER(sample_tss, extra_options=options))
