"""What the benchmarks in tools/benchmarks/ start with: their common arguments, ComfyUI on the
chosen device (printed, since every number depends on it), and random SD 2.1 UNets of test or real size.
A benchmark imports it as `from common import ...` (its own folder is first on sys.path when it runs) and
puts tests/ on sys.path for `support`."""
import argparse


def parse_args(*, size: bool = True, latent: int | None = None, repeats: int | None = None, add=None):
    """--size (real|tiny), --latent, --repeats (when given a default), --device; add(parser) adds a
    benchmark's own arguments. Sets ComfyUI up on that device before anything imports it."""
    ap = argparse.ArgumentParser()
    if size:
        ap.add_argument("--size", default="real", choices=["real", "tiny"])
    if latent is not None:
        ap.add_argument("--latent", type=int, default=latent)
    if repeats is not None:
        ap.add_argument("--repeats", type=int, default=repeats)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    if add is not None:
        add(ap)
    args = ap.parse_args()
    from support import env

    env.setup(cpu=args.device == "cpu")
    print(f"device: {env.device_name()}")
    return args


def random_sd21_unet(size: str, *model_type):
    """A ComfyUI MODEL holding an SD 2.1 eps UNet with seeded random weights (ckpt_factory's layout)."""
    from support import ckpt_factory as cf
    from timeaware_sr.model_patches.sd_components import build_unet

    sd = cf.unet_state_dict("sd21", size, "eps")
    return build_unet({k[len(cf.UNET_PREFIX):]: v for k, v in sd.items()}, *model_type)
