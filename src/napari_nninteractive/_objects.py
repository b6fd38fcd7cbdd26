"""The objects of an annotation as the user sees them: own voxels, names, visibility (no Qt).

Each object is a label value in a Labels layer. In an instance map or a layer per object the
value alone says which voxels are the object's. In a semantic map several objects share one value
(their class), so an object that is finished keeps a bit-packed copy of its own voxels
(:class:`OwnMask`): its mask is then "voxels of its value that it owned when it was finished"
(hand erasures in the layer still count), and the object being edited owns the voxels of its
value that no finished object claims.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from napari.utils.colormaps import DirectLabelColormap

from .core.geometry import BBox, bbox_to_slices, nonzero_bbox


@dataclass(frozen=True)
class OwnMask:
    """One object's voxels in the session frame ``(Z, Y, X)``, bit-packed over their bbox."""

    bbox: BBox
    shape: tuple[int, ...]
    bits: np.ndarray

    @classmethod
    def of(cls, bbox: BBox, values: np.ndarray) -> OwnMask:
        return cls(bbox, tuple(values.shape), np.packbits(np.asarray(values, dtype=bool)))

    @classmethod
    def from_mask(cls, mask: np.ndarray) -> OwnMask | None:
        """From a full-size mask (``None`` when it is empty)."""
        box = nonzero_bbox(mask)
        return None if box is None else cls.of(box, mask[bbox_to_slices(box)])

    def paint(self, out: np.ndarray) -> None:
        """Set the object's voxels of the full-size boolean ``out`` (session frame) to True."""
        values = np.unpackbits(self.bits, count=int(np.prod(self.shape))).reshape(self.shape).astype(bool)
        out[bbox_to_slices(self.bbox)] |= values


def object_mask(data, value: int, squeeze2d: bool, own: OwnMask | None = None,
                others: Iterable[OwnMask] = ()) -> np.ndarray:
    """The boolean mask (session frame) of the object with ``value`` in a layer's ``data``.

    ``own``: the object's finished voxels, when its value is shared; ``others``: the finished
    voxels of the other objects sharing the value (for the object being edited).
    """
    mask = np.asarray(data) == value
    if squeeze2d:
        mask = mask[None]
    others = list(others)
    if own is not None:
        keep = np.zeros(mask.shape, dtype=bool)
        own.paint(keep)
        mask &= keep
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
