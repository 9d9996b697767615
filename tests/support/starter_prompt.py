"""A small API prompt around the bundled starter model, for live tests that need a real, fast run:
LR image -> bicubic resize -> pixel "VAE" encode -> DoSSR Scheduler + Sampler -> decode -> save."""


def starter_dossr_prompt(image_node: dict, width=32, height=24, steps=2, t1=500, sampler_t1=None, seed=7,
                         prefix="starter_dossr") -> dict:
    """`image_node` is the API node that makes the LR IMAGE (e.g. a LoadImage); outputs go to node "s9"."""
    return {
        "s1": {"class_type": "TimeAwareSR_StarterModelLoader", "inputs": {"model_name": "starter_sr.safetensors"}},
        "s2": image_node,
        "s3": {"class_type": "ImageScale", "inputs": {"image": ["s2", 0], "upscale_method": "bicubic", "width": width,
                                                      "height": height, "crop": "center"}},
        "s4": {"class_type": "VAEEncode", "inputs": {"pixels": ["s3", 0], "vae": ["s1", 1]}},
        "s5": {"class_type": "TimeAwareSR_DoSSRScheduler", "inputs": {"model": ["s1", 0], "steps": steps, "t1": t1,
                                                                      "final_clean": True}},
        "s6": {"class_type": "TimeAwareSR_DoSSRSampler", "inputs": {"order": 2, "t1": sampler_t1 or t1}},
        "s7": {"class_type": "SamplerCustom", "inputs": {
            "model": ["s1", 0], "add_noise": True, "noise_seed": seed, "cfg": 1.0, "positive": ["s1", 2],
            "negative": ["s1", 2], "sampler": ["s6", 0], "sigmas": ["s5", 0], "latent_image": ["s4", 0]}},
        "s8": {"class_type": "VAEDecode", "inputs": {"samples": ["s7", 0], "vae": ["s1", 1]}},
        "s9": {"class_type": "SaveImage", "inputs": {"images": ["s8", 0], "filename_prefix": prefix}},
    }
