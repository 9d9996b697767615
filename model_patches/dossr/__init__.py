"""dossr network-level code."""
