"""Cancel (POST /interrupt) inside the pack's own networks and loops (issue 28).

ComfyUI stops a prompt when `comfy.model_management.throw_exception_if_processing_interrupted()` runs: at
every progress update (each sampler step) and, in ComfyUI 0.3.75, before every comfy.ops layer
(`comfy.ops.run_every_op`). Neither reaches inside one long call: the VAE attention of ComfyUI's Encoder /
Decoder is one product over all latent pixel pairs (a 2048x1 strip through ResShift's VQ-f4 is a 2048x64
latent: minutes of CPU in one call, and Cancel waited for all of it); and a ComfyUI without the per-layer
check would run a whole network forward (a large TADSR encode, a long-strip Swin UNet step) or a whole
Tiled Diffusion step before noticing. So the pack checks itself: before every layer of its networks, per
tile batch and per attention chunk; a flag read each time, never per pixel.
"""
import torch

# A VAE attention above this many multiply-adds (query-key pairs x channels) runs in chunks of queries, each
# about ATTENTION_CHUNK_MACS, with an interrupt check between them. Up to it, ComfyUI's own attention runs as it
# is, so its results are unchanged at the usual sizes (the 96x64 sample through ResShift's real VQ-f4: 8192
# latent pixels x 512 channels = 2^35; a 768x512 px TADSR encode: 6144 x 6144 x 512), and one call is at most
# a few seconds of CPU.
ATTENTION_CHUNKED_ABOVE = 2 ** 35
ATTENTION_CHUNK_MACS = 2 ** 30


def check_interrupt():
    """Raise ComfyUI's InterruptProcessingException if the user cancelled (outside ComfyUI: nothing to do)."""
    import comfy.model_management

    comfy.model_management.throw_exception_if_processing_interrupted()


def _check_hook(module, args):
    if not torch.compiler.is_compiling():  # as ComfyUI's run_every_op: nothing to check inside a compiled graph
        check_interrupt()


def check_before_every_layer(network: torch.nn.Module) -> torch.nn.Module:
    """A check before the forward of the network and of each of its submodules (forward pre-hooks: ComfyUI's
    stock blocks run unchanged, weights and key names too), as ComfyUI 0.3.75 checks before each of its own
    layers; then no single layer of a large input delays Cancel by more than its own time."""
    for module in network.modules():
        module.register_forward_pre_hook(_check_hook)
    return network


def interruptible_attention(attention):
    """ComfyUI's VAE attention function (q, k, v: B, C, H, W) made interruptible on large latents: the
    queries in chunks, each attending to all keys (scaled_dot_product_attention, as ComfyUI's pytorch
    attention), a check before each. Every query's result is computed from all keys alike, so chunking
    changes nothing but float rounding; memory is that of one chunk."""

    def run(q, k, v):
        b, c, h, w = q.shape
        n = h * w
        if n * n * c <= ATTENTION_CHUNKED_ABOVE:
            return attention(q, k, v)
        rows = max(1, ATTENTION_CHUNK_MACS // (n * c))
        q, k, v = (t.reshape(b, 1, c, n).transpose(2, 3) for t in (q, k, v))  # B, 1, N, C
        out = torch.empty_like(q)
        for start in range(0, n, rows):
            check_interrupt()
            out[:, :, start:start + rows] = torch.nn.functional.scaled_dot_product_attention(
                q[:, :, start:start + rows], k, v)
        return out.transpose(2, 3).reshape(b, c, h, w)

    run.chunked = attention  # the function it wraps (and a mark that it is wrapped)
    return run


def make_vae_interruptible(network: torch.nn.Module) -> torch.nn.Module:
    """ComfyUI LDM Encoder / Decoder (or a module holding them): a check before every layer, and every
    AttnBlock's attention chunked on large latents (interruptible_attention)."""
    from comfy.ldm.modules.diffusionmodules.model import AttnBlock

    check_before_every_layer(network)
    for module in network.modules():
        if isinstance(module, AttnBlock) and not hasattr(module.optimized_attention, "chunked"):
            module.optimized_attention = interruptible_attention(module.optimized_attention)
    return network
