"""ResShift / SinSR / TAD-SR (docs/resshift.md §6): Swin UNet, VQGAN f4 autoencoder, residual-shifting model, loader."""
