"""Test-size SD models that ComfyUI's own loaders accept, for tests only.

ComfyUI detects a checkpoint's family by matching its UNet config against the released sizes
(`comfy.supported_models.models`), so the narrow UNets the factories build (model_channels 32,
a 64-wide text context) match nothing. `register()` appends one config to that list (in place,
as ComfyUI holds it) that accepts exactly those test sizes. It runs in the test process
(support.env.setup) and, through the `comfy_test_plugin` custom-node folder, in the live test
server, so stock nodes (Load Checkpoint, UNETLoader) and the pack's loaders load tiny files as
they load the real ones. The pack itself knows nothing of test sizes.

A tiny SD 2.x checkpoint for stock Load Checkpoint: tiny UNet, tiny OpenCLIP text tower (the
TestSizeSD2 clip below), and a real-size VAE or (the shipped stand-in) a 32-wide one. ComfyUI's VAE
class builds every SD VAE at the released width (ch 128) whatever the weights say, so `register()`
also wraps `comfy.sd.VAE.__init__` to pass ComfyUI's own `config=` argument for an SD VAE narrower
than released; real VAEs, and every call that brings its own config, are untouched.
"""
TEST_HEAD_CHANNELS = 16  # attention head width of the factories' tiny UNets
TEST_TEXT_WIDTH = 64  # ckpt_factory.TINY_CONTEXT: tiny text encoders and the UNets' context_dim
TEST_TEXT_LAYERS = 3  # ckpt_factory.OPENCLIP["tiny"]
_registered = []


def _configs():
    import comfy.latent_formats
    import comfy.sd1_clip
    import comfy.supported_models
    import comfy.supported_models_base
    import comfy.text_encoders.sd2_clip

    class TestSizeClipH(comfy.sd1_clip.SDClipModel):
        """SD 2.x's OpenCLIP-H text model (penultimate layer) at the tiny factory width."""

        def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
            config = {"architectures": ["CLIPTextModel"], "hidden_act": "gelu", "hidden_size": TEST_TEXT_WIDTH,
                      "intermediate_size": 4 * TEST_TEXT_WIDTH, "num_attention_heads": 4,
                      "num_hidden_layers": TEST_TEXT_LAYERS, "projection_dim": TEST_TEXT_WIDTH,
                      "max_position_embeddings": 77, "vocab_size": 49408, "layer_norm_eps": 1e-5,
                      "bos_token_id": 0, "eos_token_id": 49407, "pad_token_id": 1, "model_type": "clip_text_model"}
            super().__init__(device=device, layer="hidden", layer_idx=-2, textmodel_json_config=config, dtype=dtype,
                             special_tokens={"start": 49406, "end": 49407, "pad": 0}, return_projected_pooled=True,
                             model_options=model_options)

    class TestSizeSD2Clip(comfy.sd1_clip.SD1ClipModel):
        def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
            super().__init__(device=device, dtype=dtype, model_options=model_options, clip_name="h",
                             clip_model=TestSizeClipH, **kwargs)

    class TestSizeSD(comfy.supported_models.SD20):
        """Any SD1.x/2.x/XL-structured UNet narrower than the released 320 channels. SD 2.x's
        schedule, latent format, eps/v detection and text-encoder layout (cond_stage_model.model.)."""

        unet_config = {}
        unet_extra_config = {"num_heads": -1, "num_head_channels": TEST_HEAD_CHANNELS}
        latent_format = comfy.latent_formats.SD15

        @classmethod
        def matches(cls, unet_config, state_dict=None, **kwargs):  # newer ComfyUI also passes unet_key_prefix
            return (unet_config.get("model_channels", 320) < 320 and "context_dim" in unet_config
                    and unet_config.get("use_temporal_attention") is False)

        def model_type(self, state_dict, prefix=""):
            if self.unet_config.get("use_linear_in_transformer"):  # SD 2.x-shaped: eps or v by the marker bias
                return super().model_type(state_dict, prefix)
            import comfy.model_base

            return comfy.model_base.ModelType.EPS

        def clip_target(self, state_dict={}):
            return comfy.supported_models_base.ClipTarget(comfy.text_encoders.sd2_clip.SD2Tokenizer, TestSizeSD2Clip)

    return [TestSizeSD]


RELEASED_VAE_CH = 128


def narrow_vae_config(sd: dict) -> dict | None:
    """VAE(config=...) for an LDM-format SD VAE narrower than released, else None (ComfyUI decides)."""
    conv_in = sd.get("encoder.conv_in.weight")
    if conv_in is None or "decoder.conv_in.weight" not in sd or "post_quant_conv.weight" not in sd:
        return None
    ch = conv_in.shape[0]
    if ch >= RELEASED_VAE_CH:
        return None
    ddconfig = {"double_z": True, "z_channels": sd["decoder.conv_in.weight"].shape[1], "resolution": 256,
                "in_channels": 3, "out_ch": 3, "ch": ch, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2,
                "attn_resolutions": [], "dropout": 0.0}
    return {"params": {"ddconfig": ddconfig, "embed_dim": sd["post_quant_conv.weight"].shape[1]}}


def _wrap_vae_init():
    import comfy.sd

    original = comfy.sd.VAE.__init__
    if getattr(original, "test_size_vae", False):
        return

    def __init__(self, sd=None, device=None, config=None, *args, **kwargs):
        if config is None and sd:
            config = narrow_vae_config(sd)
        original(self, sd, device, config, *args, **kwargs)

    __init__.test_size_vae = True
    comfy.sd.VAE.__init__ = __init__


def register():
    """Idempotent; appends in place so every holder of ComfyUI's list sees the test sizes."""
    import comfy.supported_models

    if not _registered:
        _registered.extend(_configs())
    for config in _registered:
        if config not in comfy.supported_models.models:
            comfy.supported_models.models.append(config)
    _wrap_vae_init()
    return _registered

