"""Synthetic scenes shared by the weight-free engine's tests."""

import numpy as np

from ..conftest import DATA_DIR, sphere

CT = DATA_DIR / "slicerio" / "CTChest4.nrrd"
SEG = DATA_DIR / "slicerio" / "Segmentation.seg.nrrd"

SHAPE = (64, 96, 96)
A_C, A_R = (32, 40, 40), 14
B_C, B_R = (32, 40, 66), 13  # touches A, same intensity


def scene(seed=0, with_b=True):
    rng = np.random.default_rng(seed)
    a, b = sphere(SHAPE, A_C, A_R), sphere(SHAPE, B_C, B_R)
    img = np.full(SHAPE, 40.0, np.float32)
    img[a] = 120
    if with_b:
        img[b] = 120
    img += rng.normal(0, 10, SHAPE).astype(np.float32)
    return img, a, b


def blobs(seed, *spheres):
    """(image, mask per sphere): spheres ((centre, radius), ...) at 120 on 40, noise sigma 10."""
    rng = np.random.default_rng(seed)
    masks = [sphere(SHAPE, c, r) for c, r in spheres]
    img = np.where(np.any(masks, axis=0), 120.0, 40.0).astype(np.float32) + rng.normal(0, 10, SHAPE).astype(np.float32)
    return (img, *masks)
