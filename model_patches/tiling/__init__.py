"""tiling network-level code: tiled model calls (docs/shared.md §7) and the tiled hint encoder."""
