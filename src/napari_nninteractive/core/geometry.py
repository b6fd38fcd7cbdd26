"""Bounding-box maths: half-open boxes, clipping, unions, padded crops and pastes, bit-packed masks.

A bbox is a tuple of ``(lo, hi)`` pairs, one per axis, half-open, in voxel indices of the
caller's axis order (napari: z, y, x). Nothing here knows about prompts or networks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BBox = tuple[tuple[int, int], ...]


def as_bbox(box: Sequence[Sequence[int]]) -> BBox:
    """Return ``box`` as a tuple of ``(lo, hi)`` int pairs."""
    return tuple((int(lo), int(hi)) for lo, hi in box)


def bbox_shape(box: BBox) -> tuple[int, ...]:
    """Extent of ``box`` per axis (never negative)."""
    return tuple(max(0, hi - lo) for lo, hi in box)


def bbox_is_empty(box: BBox) -> bool:
    """True when ``box`` holds no voxel."""
    return any(hi <= lo for lo, hi in box)


def bbox_inside(box: BBox, shape: Sequence[int]) -> bool:
    """True when ``box`` lies wholly inside ``[0, shape)`` (an empty box may too)."""
    return all(lo >= 0 and hi <= n for (lo, hi), n in zip(box, shape))


def clip_bbox(box: BBox, shape: Sequence[int]) -> BBox:
    """Clip ``box`` to ``[0, shape)``; an axis outside the image becomes empty."""
    return tuple((min(max(lo, 0), n), max(min(max(hi, 0), n), min(max(lo, 0), n))) for (lo, hi), n in zip(box, shape))


def intersect_bbox(a: BBox, b: BBox) -> BBox:
    """Intersection of two boxes (possibly empty)."""
    return tuple((max(la, lb), max(max(la, lb), min(ha, hb))) for (la, ha), (lb, hb) in zip(a, b))


def union_bbox(*boxes: BBox | None) -> BBox | None:
    """Smallest box holding every non-empty box given; ``None`` if there is none."""
    real = [b for b in boxes if b is not None and not bbox_is_empty(b)]
    if not real:
        return None
    return tuple((min(b[i][0] for b in real), max(b[i][1] for b in real)) for i in range(len(real[0])))


def bbox_to_slices(box: BBox) -> tuple[slice, ...]:
    """Slices that index ``box`` in an array."""
    return tuple(slice(lo, hi) for lo, hi in box)


def shift_bbox(box: BBox, offset: Sequence[int]) -> BBox:
    """Move ``box`` by ``offset`` voxels per axis."""
    return tuple((lo + o, hi + o) for (lo, hi), o in zip(box, offset))


def relative_bbox(box: BBox, frame: BBox) -> BBox:
    """``box`` in the frame whose origin is ``frame``'s lower corner."""
    return shift_bbox(box, [-lo for lo, _ in frame])


def along(ndim: int, axis: int, part: slice | int) -> tuple[slice | int, ...]:
    """An index of an ``ndim``-d array taking ``part`` on ``axis`` and everything on the other axes."""
    return tuple(part if a == axis else slice(None) for a in range(ndim))


def open_faces(frame: BBox, shape: Sequence[int], on_border: bool = False) -> list[tuple[int, int]]:
    """``(axis, 0 or -1)`` of each face of ``frame`` that does not lie on the border of an image of ``shape``
    (``on_border``: of each face that does)."""
    return [
        (axis, idx)
        for axis, ((lo, hi), n) in enumerate(zip(frame, shape))
        for idx, at_edge in ((0, lo == 0), (-1, hi == n))
        if at_edge == on_border
    ]


def nonzero_bbox(mask: np.ndarray) -> BBox | None:
    """Tight bbox of the nonzero voxels of ``mask``; ``None`` when all are zero."""
    if mask.ndim == 3:  # two passes with contiguous reductions instead of three strided ones
        planes = np.flatnonzero(mask.any(axis=(1, 2)))
        if planes.size == 0:
            return None
        rows_cols = np.asarray(mask[planes[0] : planes[-1] + 1].any(axis=0))  # 2-D: an array, never a scalar
        rows, cols = np.flatnonzero(rows_cols.any(axis=1)), np.flatnonzero(rows_cols.any(axis=0))
        return (
            (int(planes[0]), int(planes[-1]) + 1),
            (int(rows[0]), int(rows[-1]) + 1),
            (int(cols[0]), int(cols[-1]) + 1),
        )
    box: list[tuple[int, int]] = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(np.any(mask, axis=other)) if other else np.flatnonzero(mask)
        if hits.size == 0:
            return None
        box.append((int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


@dataclass(frozen=True)
class PackedMask:
    """A boolean mask kept as its bbox plus the bit-packed crop there (1 bit per voxel; ``bbox`` None: empty)."""

    bbox: BBox | None
    bits: np.ndarray

    @classmethod
    def of(cls, mask: np.ndarray) -> PackedMask:
        """From a full-size mask (cropped to its nonzero voxels)."""
        box = nonzero_bbox(mask)
        return cls(None, np.zeros(0, np.uint8)) if box is None else cls.of_region(box, mask[bbox_to_slices(box)])

    @classmethod
    def of_region(cls, bbox: BBox, values: np.ndarray) -> PackedMask:
        """From the mask's ``values`` over ``bbox`` (zero elsewhere)."""
        return cls(tuple(bbox), np.packbits(np.asarray(values, dtype=bool)))

    def crop(self) -> np.ndarray:
        """The boolean values over ``bbox`` (not for an empty mask: ``bbox`` None)."""
        assert self.bbox is not None, "an empty PackedMask has no crop"
        shape = bbox_shape(self.bbox)
        return np.unpackbits(self.bits, count=int(np.prod(shape))).reshape(shape).astype(bool)

    def paint(self, out: np.ndarray) -> None:
        """Set the mask's voxels of the full-size boolean ``out`` to True."""
        if self.bbox is not None:
            out[bbox_to_slices(self.bbox)] |= self.crop()

    def unpack(self, shape: Sequence[int]) -> np.ndarray:
        """The full-size boolean mask."""
        out = np.zeros(tuple(shape), bool)
        self.paint(out)
        return out


def window(centre: Sequence[int], size: Sequence[int]) -> BBox:
    """Window of ``size`` voxels around ``centre``: ``[c - s // 2, c + s // 2 + s % 2)``."""
    return tuple((int(c) - s // 2, int(c) + s // 2 + s % 2) for c, s in zip(centre, size))


def crop_padded(array: np.ndarray, box: BBox, fill: float = 0) -> np.ndarray:
    """Copy of the ``box`` region of the last ``len(box)`` axes of ``array``.

    Parts of ``box`` outside the array are filled with ``fill``; leading axes (channels) are
    kept whole. The result always has the box's shape.
    """
    spatial = array.shape[-len(box) :]
    lead = array.shape[: array.ndim - len(box)]
    inside = clip_bbox(box, spatial)
    out = np.full(lead + bbox_shape(box), fill, dtype=array.dtype)
    if bbox_is_empty(inside):
        return out
    dst = shift_bbox(inside, [-lo for lo, _ in box])
    out[(...,) + bbox_to_slices(dst)] = array[(...,) + bbox_to_slices(inside)]
    return out


def paste_clipped(target: np.ndarray, values: np.ndarray, box: BBox) -> BBox:
    """Write ``values`` (shaped like ``box``) into ``target`` where ``box`` lies inside it.

    Returns the part of ``box`` that was written (clipped to ``target``).
    """
    inside = clip_bbox(box, target.shape)
    if bbox_is_empty(inside):
        return inside
    src = shift_bbox(inside, [-lo for lo, _ in box])
    target[bbox_to_slices(inside)] = values[bbox_to_slices(src)]
    return inside
