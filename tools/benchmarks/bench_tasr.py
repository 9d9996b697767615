"""Cost of TASR's adapters on one UNet + ControlNet call (issue 13; goal TASR / plain <= 1.08).

    python tools/benchmarks/bench_tasr.py [--size real|tiny] [--latent 64] [--repeats 5]

Times one model call as a sampler makes it (ControlNet residuals, then the UNet) with plain
ControlNet and with the TASR adapters applied, interleaved A B A B after one warm-up each, and
prints min and median of each and their ratios. Real size needs about 8 GB of memory (SD 2.1 UNet,
ControlNet and the 13 adapters in float32): run it under `flock /tmp/heavy.lock` on shared machines.
"""
import pathlib
import statistics
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))  # support/


def build(size):
    """SD 2.1 UNet (eps), SD VAE, TASR ControlNet and adapters with random weights (tasr_factory's shapes)."""
    from support import ckpt_factory as cf
    from support import tasr_factory as tf
    import comfy.model_base
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.ops
    from timeaware_sr.model_patches.latent_hint_controlnet import LatentConcatControlNet
    from timeaware_sr.model_patches.sd_components import build_unet, build_vae
    from timeaware_sr.model_patches.tasr.checkpoint import SDVAEHintControlNet

    unet_sd = tf.sd21_unet_state_dict(size)
    model = build_unet(unet_sd, comfy.model_base.ModelType.EPS)
    del unet_sd
    vae = build_vae(cf.vae_state_dict(size))
    config = tf.sd21_config(size)
    for key in ("out_channels", "transformer_depth_output", "use_temporal_resblock", "use_temporal_attention"):
        config.pop(key)
    config["in_channels"] = 8  # x_t and the hint latent; heads as the UNet's (sd21_config)
    network = cf.randomize_(LatentConcatControlNet(**config, operations=comfy.ops.disable_weight_init), 3)
    control_net = SDVAEHintControlNet(network, None, load_device=mm.get_torch_device())
    adapters = comfy.model_patcher.ModelPatcher(tf.adapters_module(size), mm.get_torch_device(), mm.unet_offload_device())
    return model, vae, control_net, adapters

from common import parse_args  # noqa: E402  (tools/benchmarks/common.py)


def main():
    a = parse_args(latent=64, repeats=5)
    import comfy.model_management
    from support import tasr_factory as tf
    from timeaware_sr.model_patches.tasr.adapter_patch import apply_tasr_adapters

    model, vae, control_net, adapters = build(a.size)
    gated = apply_tasr_adapters(model, adapters)
    device = comfy.model_management.get_torch_device()
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(1, 4, a.latent, a.latent, generator=g) * 3).to(device)
    context = torch.randn(1, 77, tf.sd21_config(a.size)["context_dim"], generator=g).to(device)
    hint = torch.rand(1, 3, 8 * a.latent, 8 * a.latent, generator=g)
    control = control_net.copy().set_cond_hint(hint, 1.0, (0.0, 1.0), vae=vae)
    sigma = model.get_model_object("model_sampling").sigmas[500].view(1).to(device)

    def call(patcher):
        comfy.model_management.load_models_gpu([patcher] + control.get_models())
        control.pre_run(patcher.model, lambda p: patcher.get_model_object("model_sampling").percent_to_sigma(p))
        options = {"wrappers": patcher.wrappers, "patches": patcher.model_options["transformer_options"].get("patches", {})}
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            c = control.get_control(x, sigma, {"c_crossattn": context}, 1, options)
            patcher.model.apply_model(x, sigma, c_crossattn=context, control=c, transformer_options=options)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    call(model), call(gated)  # warm-up: hint encoding, loading
    plain, tasr = [], []
    for _ in range(a.repeats):
        plain.append(call(model))
        tasr.append(call(gated))
    print(f"SD2.1 UNet + TASR ControlNet ({a.size}), latent {a.latent}x{a.latent}, batch 1, "
          f"CPU threads {torch.get_num_threads()}, {a.repeats} interleaved repeats")
    for name, times in (("plain ControlNet", plain), ("TASR adapters", tasr)):
        print(f"  {name:17s} min {min(times) * 1e3:9.1f} ms   median {statistics.median(times) * 1e3:9.1f} ms")
    print(f"  ratio TASR / plain: min {min(tasr) / min(plain):.3f}   median {statistics.median(tasr) / statistics.median(plain):.3f}")
    params = sum(p.numel() for p in adapters.model.parameters())
    print(f"  adapter parameters: {params / 1e6:.1f} M")


if __name__ == "__main__":
    main()
