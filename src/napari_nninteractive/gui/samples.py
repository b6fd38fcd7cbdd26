"""npe2 sample data: generated volumes with reference labels (nothing is downloaded)."""

from __future__ import annotations


def synthetic_scan():
    """A 96 x 128 x 128 volume with four organ-like objects of different contrast, and noise.

    Returns napari layer data tuples: the image and its reference labels (hidden).
    """
    from ..samples.synthetic import synthetic_volume

    image, labels = synthetic_volume((96, 128, 128), seed=3)
    return [
        (image, {"name": "synthetic scan", "colormap": "gray"}, "image"),
        (labels, {"name": "synthetic reference", "visible": False}, "labels"),
    ]


def abdomen_phantom():
    """A CT-like abdomen (:mod:`~napari_nninteractive.samples.phantom`, seed 0) in Hounsfield units.

    Returns napari layer data tuples: the image in an abdominal window (W400/L40) at its voxel
    size in mm, and its organ labels (hidden; the organ names are the layer's ``name`` feature).
    """
    from ..samples import phantom

    image, labels = phantom.abdomen_phantom()
    scale = phantom.spacing(image.shape)
    names = {"index": [0, *phantom.LABELS], "name": ["background", *phantom.LABELS.values()]}
    return [
        (
            image,
            {"name": "abdomen phantom (CT)", "colormap": "gray", "contrast_limits": (-160, 240), "scale": scale},
            "image",
        ),
        (labels, {"name": "abdomen reference", "visible": False, "scale": scale, "features": names}, "labels"),
    ]
