"""TADSR (docs/tadsr.md §5): time-aware VAE encoder, one-step SD 2.1 LoRA."""
