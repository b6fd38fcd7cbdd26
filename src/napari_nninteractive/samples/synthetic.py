"""A scan-like synthetic volume with four blob objects, and a box around an object on one slice."""

from __future__ import annotations

import numpy as np


def synthetic_volume(shape=(128, 128, 128), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A scan-like float32 volume (a few blobs of different contrast, noise) and its label map."""
    rng = np.random.default_rng(seed)
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    image = np.full(shape, 20.0, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.uint8)
    for label in range(1, 5):
        centre = [rng.uniform(0.25, 0.75) * s for s in shape]
        radii = [rng.uniform(0.08, 0.18) * s for s in shape]
        d = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii))
        inside = d <= 1
        labels[inside & (labels == 0)] = label
        image[inside] = 60.0 + 40.0 * label
    image += rng.normal(0, 8, shape).astype(np.float32)
    return image, labels


def enclosing_box(obj: np.ndarray, z: int, margin: int = 2) -> list[list[int]]:
    """Prompt-file bbox enclosing ``obj`` on slice ``z`` with ``margin`` voxels around it."""
    ys, xs = np.nonzero(obj[z])
    return [
        [z, z + 1],
        [int(ys.min()) - margin, int(ys.max()) + 1 + margin],
        [int(xs.min()) - margin, int(xs.max()) + 1 + margin],
    ]
