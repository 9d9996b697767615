"""ResShift Scheduler and ResShift Sampler: the exponential eta schedule and the posterior step.
Math: docs/resshift.md §6.2, §6.5."""
from comfy_api.v0_0_2 import io

from .category import CATEGORY
from .pack_node import PackNode


class ResShiftScheduler(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_ResShiftScheduler",
            display_name="ResShift Scheduler",
            category=f"{CATEGORY}/sampling",
            description="ResShift's noise levels (kappa sqrt(eta_t), the checkpoint's exponential schedule) at the "
            "chosen timesteps, from t = T-1 down, then 0. Use with the ResShift Sampler.",
            inputs=[
                io.Model.Input("model", tooltip="A model from 'Load ResShift / SinSR / TAD-SR'; its preset sets T."),
                io.Int.Input("steps", default=0, min=0, max=1000,
                             tooltip="Network calls. 0: the preset's own (15 for ResShift v1, 4 for v3, 1 for SinSR "
                             "and TAD-SR). Fewer than trained skips timesteps (softer pictures); more than T is capped at T."),
            ],
            outputs=[io.Sigmas.Output(tooltip="The noise levels; the first sets how much noise is added to the "
                                      "upscaled LR latent.")],
        )

    @classmethod
    def execute(cls, model, steps=0) -> io.NodeOutput:
        from ..samplers.resshift_schedule import resshift_sigmas

        return io.NodeOutput(resshift_sigmas(model.get_model_object("model_sampling"), steps))


class ResShiftSampler(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_ResShiftSampler",
            display_name="ResShift Sampler",
            category=f"{CATEGORY}/sampling",
            description="ResShift's reverse process: starts from the upscaled LR latent plus noise and draws each "
            "step from the posterior q(x_{t-1} | x_t, x0); the last step returns the network's clean estimate. One "
            "step is SinSR / TAD-SR. Use with the ResShift Scheduler and a SamplerCustomAdvanced.",
            inputs=[],
            outputs=[io.Sampler.Output(tooltip="The residual-shifting sampler.")],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        import comfy.samplers

        from ..samplers.resshift_sampler import sample_resshift_in_comfy

        return io.NodeOutput(comfy.samplers.KSAMPLER(sample_resshift_in_comfy))
