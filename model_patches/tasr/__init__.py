"""tasr network-level code."""
