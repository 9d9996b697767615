"""TDS Scheduler (TSS): the two-stage polynomial remap of the timesteps. Math: docs/tss.md §1."""
from comfy_api.v0_0_2 import io

from .category import CATEGORY
from .pack_node import PackNode


class TDSScheduler(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_TDSScheduler",
            display_name="TDS Scheduler (TSS)",
            category=f"{CATEGORY}/sampling",
            description="TSS Time Dynamic Sampling: spends more steps at the start and the end of denoising, where "
            "SR detail is formed, and fewer around timestep a. n = 1 gives plain evenly spaced steps "
            "(ComfyUI's 'normal' scheduler). Set start below 999 for img2img / SR starts.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model whose noise levels are used."),
                io.Int.Input("steps", default=20, min=1, max=1000, tooltip="Model calls."),
                io.Float.Input("a", default=550.0, min=0.0, max=1000.0, step=1.0,
                               tooltip="Timestep where steps are sparsest. The default 550 sits between the early "
                               "(700-1000) and late (0-400) bands where detail is recovered."),
                io.Float.Input("n", default=2.0, min=1.0, max=10.0, step=0.1,
                               tooltip="How strongly steps move toward both ends. 1 = evenly spaced; larger = "
                               "more steps on coarse layout and fine texture, fewer in between."),
                io.Float.Input("start", default=999.0, min=1.0, max=999.0, step=1.0,
                               tooltip="First timestep. 999 samples from noise; lower starts from a noised input "
                               "image (img2img, SR)."),
                io.Float.Input("end", default=0.0, min=0.0, max=998.0, step=1.0, tooltip="Last timestep before the final clean step."),
            ],
            outputs=[io.Sigmas.Output(tooltip="The shared noise levels, from start to end: where the steps fall "
                                              "decides which detail is redrawn.")],
        )

    @classmethod
    def rule(cls, v) -> bool | str:
        from ..samplers.tds_schedule import check_tds_parameters

        if None in (v.get("a"), v.get("n"), v.get("start"), v.get("end")):
            return True  # a linked value: checked again when the node runs
        try:
            check_tds_parameters(v["a"], v["n"], v["start"], v["end"])
        except ValueError as e:
            return str(e)
        return True

    @classmethod
    def execute(cls, model, steps, a, n, start, end) -> io.NodeOutput:
        from ..samplers.tds_schedule import tds_sigmas

        return io.NodeOutput(tds_sigmas(model.get_model_object("model_sampling"), steps, a, n, start, end))
