"""tiling network-level code: tiled model calls (SPEC §7) and the tiled hint encoder."""
