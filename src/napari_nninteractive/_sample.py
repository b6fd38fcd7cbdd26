"""npe2 sample data: a generated scan-like volume (nothing is downloaded)."""

from __future__ import annotations


def synthetic_scan():
    """A 96 x 128 x 128 volume with four organ-like objects of different contrast, and noise.

    Returns napari layer data tuples: the image and its reference labels (hidden).
    """
    from .testing import synthetic_volume

    image, labels = synthetic_volume((96, 128, 128), seed=3)
    return [
        (image, {"name": "synthetic scan", "colormap": "gray"}, "image"),
        (labels, {"name": "synthetic reference", "visible": False}, "labels"),
    ]
