"""The objects of an annotation as the user sees them: own voxels, names, visibility (no Qt).

Each object is a label value in a Labels layer. In an instance map or a layer per object the
value alone says which voxels are the object's. In a semantic map several objects share one value
(their class), so an object that is finished keeps a bit-packed copy of its own voxels (a
:class:`~.core.geometry.PackedMask`): its mask is then "voxels of its value that it owned when it
was finished" (hand erasures in the layer still count), and the object being edited owns the
voxels of its value that no finished object claims.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from napari.utils.colormaps import DirectLabelColormap

from .core.geometry import PackedMask


def object_mask(data, value: int, squeeze2d: bool, own: PackedMask | None = None,
                others: Iterable[PackedMask] = ()) -> np.ndarray:
    """The boolean mask (session frame) of the object with ``value`` in a layer's ``data``.

    ``own``: the object's finished voxels, when its value is shared; ``others``: the finished
    voxels of the other objects sharing the value (for the object being edited).
    """
    mask = np.asarray(data) == value
    if squeeze2d:
        mask = mask[None]
    others = list(others)
    if own is not None:
        mask &= own.unpack(mask.shape)
    elif others:
        taken = np.zeros(mask.shape, dtype=bool)
        for other in others:
            other.paint(taken)
        mask &= ~taken
    return mask


def hiding_colormap(original, hidden: set[int], top: int) -> DirectLabelColormap:
    """``original``'s colours for labels 1..``top`` with the ``hidden`` values transparent."""
    values = np.arange(1, max(int(top), max(hidden, default=0)) + 1)
    colors = np.asarray(original.map(values), dtype=np.float32) if len(values) else np.zeros((0, 4), np.float32)
    color_dict = {None: np.array([1.0, 1.0, 1.0, 1.0], np.float32), 0: np.zeros(4, np.float32)}
    for v, c in zip(values.tolist(), colors):
        color_dict[v] = np.zeros(4, np.float32) if v in hidden else c
    return DirectLabelColormap(color_dict=color_dict)
