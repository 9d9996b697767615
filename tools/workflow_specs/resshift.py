"""ResShift family (SPEC §6) graphs: ResShift 15 steps and SinSR one step. The spec format is in make_workflows.py."""
from .common import SAMPLE

RESSHIFT_RELEASES = "https://github.com/zsyOAOA/ResShift/releases"
RESSHIFT_LICENSE = "NTU S-Lab License 1.0 (non-commercial)"
MODEL_FILES = {
    "autoencoder_vq_f4.pth": {"url": RESSHIFT_RELEASES, "directory": "resshift", "license": RESSHIFT_LICENSE},
    "resshift_realsrx4_s15_v1.pth": {"url": RESSHIFT_RELEASES, "directory": "resshift", "license": RESSHIFT_LICENSE},
    "resshift_realsrx4_s4_v3.pth": {"url": RESSHIFT_RELEASES, "directory": "resshift", "license": RESSHIFT_LICENSE},
    "SinSR_v1.pth": {"url": "https://github.com/wyf0912/SinSR/releases", "directory": "resshift",
                     "license": "SinSR builds on ResShift (NTU S-Lab License 1.0, non-commercial); see its repository"},
}

FILES_NOTE = """
## Model files
Put all in `ComfyUI/models/resshift/`:
- `autoencoder_vq_f4.pth`: ResShift's VQGAN f4 autoencoder, from the ResShift releases
  (https://github.com/zsyOAOA/ResShift/releases). Every network below works on its latents.
- `resshift_realsrx4_s15_v1.pth` (15 steps; `_v2` loads the same way) or `resshift_realsrx4_s4_v3.pth`
  (4 steps), same releases page. Licence: NTU S-Lab License 1.0 (non-commercial use).
- `SinSR_v1.pth` (1 step), from https://github.com/wyf0912/SinSR/releases; SinSR builds on ResShift's
  code, check its repository for the licence terms. TAD-SR has released no weights yet; its files will
  load the same way with preset `tad_sr`.
No hashes are published by the authors.

## Knobs
`preset` on the loader (auto reads it from the file name; a wrong one gives blur or noise),
`steps` on the ResShift Scheduler (0 = the checkpoint's own), the seed. The LR is reflect-padded to a
multiple of 64 px and cropped back after decoding; images with a side of 32 px or less work (the padding
mirrors repeatedly). Big images: swap VAE Encode and VAE Decode for VAE Encode (Tiled) and VAE Decode (Tiled),
and put Tiled Diffusion (TimeAwareSR) between the loader's MODEL and BasicGuider for the network itself.
"""


def graph(ckpt, steps, prefix):
    return {
        1: ("TimeAwareSR_ResShiftLoader", {"ckpt_name": ckpt, "vae_name": "autoencoder_vq_f4.pth", "preset": "auto"}),
        2: ("LoadImage", {"image": SAMPLE}),
        3: ("TimeAwareSR_ResShiftPrepareLR", {"image": (2, 0)}),
        4: ("VAEEncode", {"pixels": (3, 0), "vae": (1, 1)}),
        5: ("BasicGuider", {"model": (1, 0), "conditioning": (3, 1)}),
        6: ("TimeAwareSR_ResShiftScheduler", {"model": (1, 0), "steps": steps}),
        7: ("TimeAwareSR_ResShiftSampler", {}),
        8: ("RandomNoise", {"noise_seed": 42}),
        9: ("SamplerCustomAdvanced", {"noise": (8, 0), "guider": (5, 0), "sampler": (7, 0), "sigmas": (6, 0),
                                      "latent_image": (4, 0)}),
        10: ("VAEDecode", {"samples": (9, 0), "vae": (1, 1)}),
        11: ("TimeAwareSR_ResShiftCropOutput", {"image": (10, 0), "lr_image": (2, 0), "mask": (2, 1)}),
        12: ("TimeAwareSR_ColorFix", {"image": (11, 0), "reference": (2, 0), "method": "wavelet"}),
        13: ("SaveImage", {"images": (12, 0), "filename_prefix": prefix}),
    }


TITLES = {2: "Low-resolution input", 3: "Pad to 64 px, bicubic x4, LR conditioning", 4: "VQ-f4 encode (not quantized)",
          10: "VQ-f4 decode (quantized)", 11: "Crop the padding away"}

WORKFLOWS = {
    # ResShift v1, 15 posterior steps from y + kappa sqrt(eta_T) eps.
    "resshift_x4": (
        graph("resshift_realsrx4_s15_v1.pth", 15, "ResShift_x4"), TITLES,
        "# ResShift x4 (15 steps)\nLR -> pad + bicubic x4 -> VQ-f4 encode -> 15 residual-shifting posterior steps "
        "(the LR image is fed to the network at every step) -> VQ-f4 decode -> crop -> wavelet colour fix.\n"
        + FILES_NOTE,
    ),
    # SinSR (and TAD-SR): one network call at t = T-1, its output is the result.
    "sinsr_onestep_x4": (
        graph("SinSR_v1.pth", 1, "SinSR_x4"), TITLES,
        "# SinSR x4 (one step)\nThe ResShift graph with a one-step distilled network: x_T = y + kappa sqrt(eta_T) "
        "eps, one network call at t = T-1, its clean estimate is decoded. TAD-SR files run the same way "
        "(preset tad_sr).\n" + FILES_NOTE,
    ),
}
