"""Adds the pack's samplers and schedulers to KSampler's dropdowns.

ComfyUI's KSampler nodes hold references to these lists, so entries are appended in place (never
rebinding a list), once. Dropdown calls pass no options, so each function's defaults must work alone.
"""
SAMPLERS = {
    "dossr": ("..samplers.dossr_solver", "sample_dossr"),  # order 3, t1 = 500
    "resshift": ("..samplers.resshift_sampler", "sample_resshift_in_comfy"),  # ResShift models only (checked)
}
SCHEDULERS = {
    "dossr": ("..samplers.dossr_schedule", "dossr_sigmas"),  # official spacing, t1 = 500
    "tds": ("..samplers.tds_schedule", "ksampler_tds"),  # a = 0.55 T, n = 2, full range
    "tasr_spaced": ("..samplers.tasr_schedule", "spaced_ddpm_sigmas"),  # TASR: space_timesteps(1000, "N"); use with ddpm
    "resshift": ("..samplers.resshift_schedule", "resshift_sigmas"),  # the preset's steps, capped at T
}


def register():
    import importlib

    import comfy.k_diffusion.sampling
    import comfy.samplers

    for name, (module, attr) in SAMPLERS.items():
        setattr(comfy.k_diffusion.sampling, f"sample_{name}", getattr(importlib.import_module(module, __package__), attr))
        for names in (comfy.samplers.KSAMPLER_NAMES, comfy.samplers.SAMPLER_NAMES):
            if name not in names:
                names.append(name)
    for name, (module, attr) in SCHEDULERS.items():
        fn = getattr(importlib.import_module(module, __package__), attr)
        comfy.samplers.SCHEDULER_HANDLERS[name] = comfy.samplers.SchedulerHandler(fn, use_ms=True)
        if name not in comfy.samplers.SCHEDULER_NAMES:
            comfy.samplers.SCHEDULER_NAMES.append(name)
