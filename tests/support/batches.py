"""Checks that a sampler treats each image of a batch on its own, with its own variance map."""


def assert_each_image_follows_its_own_map(sample, variance, map_effect: float):
    """`sample(images, variance)` samples the latent images at index `images` (a slice of a batch of 2)
    with that variance map. Each image of the batched run must equal a run of that image alone, and
    giving image 2 image 1's map must move it by more than `map_effect` (relative), so the map matters."""
    both = sample(slice(0, 2), variance)
    scale = both.abs().max()
    for i in range(2):
        alone = sample(slice(i, i + 1), variance[i:i + 1])
        # the same math on a batch of 1 vs 2: float32 kernels may sum in another order (~1e-6 relative)
        assert (both[i] - alone[0]).abs().max() <= 1e-4 * scale, f"image {i + 1} depends on the batch"
    swapped = sample(slice(1, 2), variance[:1])
    assert (swapped[0] - both[1]).abs().max() > map_effect * scale, "the variance map did not matter"
