"""ResShift / SinSR / TAD-SR (SPEC §6): Swin UNet, VQGAN f4 autoencoder, residual-shifting model, loader."""
