"""DoSSR Scheduler and DoSSR Sampler: the spaced timesteps below t1 and the domain-shift solvers of
order 1-3, per pixel with TSS. Math: docs/dossr.md §3.1-§3.6."""
from comfy_api.v0_0_2 import io

from ..samplers.tds_schedule import DOSSR_TSS_A_RANGE, SDS_N_RANGE
from .category import CATEGORY
from .pack_node import PackNode
from .validation import tss_ranges_rule

T1_TOOLTIP = ("Timestep where the domain shift is complete (the LR latent plus noise). DoSSR's released "
              "models were trained with 500; keep it unless you trained your own.")

# TSS per-pixel schedule defaults for DoSSR's interval [0, t1 - 1]: sample_dossr's own
A_MIN, A_MAX = DOSSR_TSS_A_RANGE
N_MIN, N_MAX = SDS_N_RANGE


class DoSSRScheduler(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_DoSSRScheduler",
            display_name="DoSSR Scheduler",
            category=f"{CATEGORY}/sampling",
            description="DoSSR's timesteps: evenly spaced from t1-1 down to 0 (5 steps: 499, 399, 299, 200, 100, 0), "
            "as the model's own sigmas. Sampling starts from the noised LR latent, so few steps are needed. "
            "The last sigma is sigma(t=0), not 0: DoSSR's result is the state at t=0.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model whose noise levels are used."),
                io.Int.Input("steps", default=5, min=1, max=999,
                             tooltip="Model calls. 5 is DoSSR's default; 1 works with the one-step model; more steps add detail slowly."),
                io.Int.Input("t1", default=500, min=2, max=1000, tooltip=T1_TOOLTIP),
                io.Boolean.Input("final_clean", default=False, optional=True,
                                 tooltip="Off (DoSSR's released behaviour): the result is the state at t=0, with a trace "
                                 "of noise that a latent VAE hides. On: the last step lands on the clean estimate; use it "
                                 "for pixel-space models such as the starter model, where that noise shows as grain."),
            ],
            outputs=[io.Sigmas.Output(tooltip="DoSSR's noise levels from t1 down: how much of the upscale is "
                                              "redrawn, step by step.")],
        )

    @classmethod
    def rule(cls, v) -> bool | str:
        steps, t1 = v.get("steps"), v.get("t1")
        if None not in (steps, t1) and steps >= t1:
            return f"steps must be below t1 ({t1}), got {steps}"
        return True

    @classmethod
    def execute(cls, model, steps, t1, final_clean=False) -> io.NodeOutput:
        from ..samplers.dossr_schedule import dossr_sigmas

        return io.NodeOutput(dossr_sigmas(model.get_model_object("model_sampling"), steps, t1, final_clean))


class DoSSRSampler(PackNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TimeAwareSR_DoSSRSampler",
            display_name="DoSSR Sampler",
            category=f"{CATEGORY}/sampling",
            description="DoSSR's domain-shift SDE solver. Starts from the input latent (the VAE-encoded, upscaled LR "
            "image) plus noise at t1 and shifts it toward the high-resolution image. Use with the DoSSR Scheduler. "
            "Connect a TSS variance map (and a model through 'TSS Spatial Timestep Patch') to give every pixel its "
            "own schedule: textured pixels spend more steps at the start and the end.",
            inputs=[
                io.Int.Input("order", default=3, min=1, max=3,
                             tooltip="Solver order. 3 (default) gives the sharpest result in 5 steps; 1 is the plain "
                             "stochastic step. The first steps always run at lower order."),
                io.Int.Input("t1", default=500, min=2, max=1000, tooltip=T1_TOOLTIP),
                io.Mask.Input("variance_map", optional=True,
                              tooltip="Optional, from 'SDS Variance Map' on the LR image: turns on TSS per-pixel schedules."),
                io.Float.Input("a_min", default=A_MIN, min=1.0, max=998.0, step=1.0, optional=True,
                               tooltip="TSS only: sparsest timestep for smooth pixels, inside (0, t1)."),
                io.Float.Input("a_max", default=A_MAX, min=1.0, max=998.0, step=1.0, optional=True,
                               tooltip="TSS only: sparsest timestep for the most textured pixels, inside (0, t1)."),
                io.Float.Input("n_min", default=N_MIN, min=1.0, max=10.0, step=0.1, optional=True,
                               tooltip="TSS only: schedule power for smooth pixels (1 = DoSSR's own timesteps)."),
                io.Float.Input("n_max", default=N_MAX, min=1.0, max=10.0, step=0.1, optional=True,
                               tooltip="TSS only: schedule power for the most textured pixels."),
            ],
            outputs=[io.Sampler.Output(tooltip="The DoSSR solver, for SamplerCustomAdvanced: turns the upscale into "
                                               "a sharp image.")],
        )

    @classmethod
    def rule(cls, v) -> bool | str:
        # a_max is bounded by t1 only when a connected variance map makes the a-range matter
        a_limit = v.get("t1") if "variance_map" in v else None
        return tss_ranges_rule(v.get("a_min"), v.get("a_max"), v.get("n_min"), v.get("n_max"), a_limit=a_limit)

    @classmethod
    def execute(cls, order, t1, variance_map=None, a_min=A_MIN, a_max=A_MAX, n_min=N_MIN, n_max=N_MAX) -> io.NodeOutput:
        import comfy.samplers

        from ..samplers.dossr_solver import sample_dossr

        options = {"order": order, "t1": t1}
        if variance_map is not None:
            options.update(variance=variance_map, a_range=(a_min, a_max), n_range=(n_min, n_max))
        return io.NodeOutput(comfy.samplers.KSAMPLER(sample_dossr, extra_options=options))
