"""starter network-level code."""
