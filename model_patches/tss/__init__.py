"""tss network-level code."""
