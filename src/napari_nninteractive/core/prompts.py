"""Prompt value types and their validation against an image grid.

Every prompt is a small frozen value. ``validated(shape, ...)`` returns the prompt in the
normal form the engines use (rounded, clipped, cropped to its nonzero voxels) or raises a
:class:`PromptError` whose message names the bad value and what to do about it.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np

from .errors import UserError
from .geometry import BBox, as_bbox, bbox_shape, clip_bbox, crop_padded, nonzero_bbox, shift_bbox


class PromptError(UserError, ValueError):
    """A prompt that cannot be used as given; the message says how to fix it."""


class PromptKind(enum.Enum):
    """The kinds of interaction a session understands."""

    POINT = "point"
    BBOX = "bbox"
    SCRIBBLE = "scribble"
    LASSO = "lasso"
    MASK = "mask"


def _check_ndim(what: str, n: int, shape: Sequence[int]) -> None:
    if n != len(shape):
        raise PromptError(
            f"{what} has {n} coordinates but the image has {len(shape)} axes {tuple(shape)}; "
            f"give one value per image axis in array order (z, y, x)."
        )


def as_flag(value: object) -> bool | None:
    """True/False (or 1/0) as a bool; ``None`` for anything else (``"no"`` is truthy, not a flag)."""
    if isinstance(value, bool | np.bool_) or (isinstance(value, int | np.integer) and value in (0, 1)):
        return bool(value)
    return None


def _polarity(value: object, what: str) -> bool:
    """``positive`` as a bool; anything but a flag (:func:`as_flag`) is a PromptError."""
    flag = as_flag(value)
    if flag is None:
        raise PromptError(f"{what}: 'positive' must be true or false, not {value!r}.")
    return flag


@dataclass(frozen=True)
class Point:
    """A click at ``coord`` (voxel coordinates, may be fractional)."""

    coord: tuple[float, ...]
    positive: bool = True
    kind = PromptKind.POINT

    def validated(self, shape: Sequence[int], allow_3d_box: bool = False) -> Point:
        """Round the coordinate (half to even) and check it lies inside the image."""
        _check_ndim("Point", len(self.coord), shape)
        try:
            coord = tuple(float(c) for c in self.coord)
        except (TypeError, ValueError):
            raise PromptError(f"Point {tuple(self.coord)} must be numbers, one per axis.") from None
        if not all(math.isfinite(c) for c in coord):
            raise PromptError(f"Point {tuple(self.coord)} has a non-finite coordinate.")
        rounded = tuple(int(round(c)) for c in coord)
        if any(not 0 <= c < n for c, n in zip(rounded, shape)):
            raise PromptError(
                f"Point {tuple(self.coord)} lies outside the image of shape {tuple(shape)}; click inside the image."
            )
        return Point(rounded, _polarity(self.positive, "Point"))


@dataclass(frozen=True)
class Box:
    """A box prompt; ``bbox`` is ``((lo, hi), ...)`` half-open per axis."""

    bbox: BBox
    positive: bool = True
    kind = PromptKind.BBOX

    def validated(self, shape: Sequence[int], allow_3d_box: bool = False) -> Box:
        """Round, clip and widen the box exactly as the backend spec says (section 3)."""
        _check_ndim("Box", len(self.bbox), shape)
        try:
            raw = [(float(lo), float(hi)) for lo, hi in self.bbox]
        except (TypeError, ValueError):
            raise PromptError(f"Box {self.bbox!r} must be [[lo, hi], ...] numbers per axis.") from None
        if not all(math.isfinite(v) for pair in raw for v in pair):
            raise PromptError(f"Box {self.bbox!r} has a non-finite coordinate.")
        box = tuple((int(round(lo)), int(round(hi))) for lo, hi in raw)
        if any(hi < lo for lo, hi in box):
            raise PromptError(f"Box {box} has lo > hi on an axis; give [[lo, hi], ...] with lo <= hi.")
        flat = [axis for axis, (lo, hi) in enumerate(box) if hi == lo]
        if len(flat) > 1:
            raise PromptError(
                f"Box {box} has zero extent on axes {flat}; a box needs an area on its slice. "
                f"Draw a larger box, or use a point."
            )
        for (lo, hi), n in zip(box, shape):
            if hi < 0 or lo > n or (hi > lo and (hi <= 0 or lo >= n)):
                raise PromptError(f"Box {box} lies outside the image of shape {tuple(shape)}; draw it on the image.")
        clipped = clip_bbox(box, shape)
        widened = tuple(((0, 1) if lo == 0 else (lo - 1, hi)) if hi == lo else (lo, hi) for lo, hi in clipped)
        if not allow_3d_box and not any(hi - lo == 1 for lo, hi in widened):
            raise PromptError(
                f"Box {widened} is a 3-D box, but this model takes only 2-D boxes: draw the box "
                f"on one slice (extent 1 on the sliced axis)."
            )
        return Box(widened, _polarity(self.positive, "Box"))


_R = TypeVar("_R", bound="_RegionPrompt")


@dataclass(frozen=True)
class _RegionPrompt:
    """A 0/1 mask prompt stored as a crop plus the bbox where the crop sits."""

    kind: ClassVar[PromptKind]  # set by each subclass
    mask: np.ndarray = field(repr=False)
    bbox: BBox | None = None
    positive: bool = True

    @classmethod
    def _name(cls) -> str:
        return cls.kind.value.capitalize()

    def validated(self: _R, shape: Sequence[int], allow_3d_box: bool = False) -> _R:
        """Crop the mask to its nonzero voxels inside the image; reject empty masks."""
        mask = np.asarray(self.mask)
        name = self._name()
        if self.bbox is None:
            if mask.shape != tuple(shape):
                raise PromptError(
                    f"{name} mask has shape {mask.shape} but the image has shape {tuple(shape)}; "
                    f"pass a full-size mask, or a crop together with its bbox."
                )
            box = tuple((0, n) for n in shape)
        else:
            box = as_bbox(self.bbox)
            _check_ndim(f"{name} bbox", len(box), shape)
            if mask.shape != bbox_shape(box):
                raise PromptError(
                    f"{name} crop has shape {mask.shape} but its bbox {box} has extent "
                    f"{bbox_shape(box)}; they must match."
                )
        inside = clip_bbox(box, shape)
        crop = crop_padded(mask, shift_bbox(inside, [-lo for lo, _ in box])) != 0
        tight = nonzero_bbox(crop)
        if tight is None:
            raise PromptError(
                f"{name} is empty (no voxel inside the image of shape {tuple(shape)}); "
                f"draw on the image before running."
            )
        values = crop[tuple(slice(lo, hi) for lo, hi in tight)]
        _polarity(self.positive, name)
        return type(self)(values, shift_bbox(tight, [lo for lo, _ in inside]), *self._extra())

    def _extra(self) -> tuple[bool, ...]:
        return (bool(self.positive),)


@dataclass(frozen=True)
class Scribble(_RegionPrompt):
    """Strict cue: every voxel lies inside (positive) or outside (negative) the object."""

    kind = PromptKind.SCRIBBLE


@dataclass(frozen=True)
class Lasso(_RegionPrompt):
    """A filled closed outline on one slice; a loose 'fancy box' around the object."""

    kind = PromptKind.LASSO


@dataclass(frozen=True)
class InitialMask(_RegionPrompt):
    """Start the object from an existing mask, optionally refined by the network."""

    refine: bool = False
    kind = PromptKind.MASK

    def _extra(self) -> tuple[bool, ...]:
        return (True, bool(self.refine))


Prompt = Point | Box | Scribble | Lasso | InitialMask


def fill_polygon(vertices: Sequence[Sequence[float]], shape: Sequence[int]) -> tuple[np.ndarray, BBox]:
    """Rasterise a closed polygon lying on one slice into a filled 0/1 crop and its bbox.

    ``vertices`` are ``(z, y, x)`` voxel coordinates; exactly one axis must be constant (the
    slice). Returns ``(crop, bbox)`` ready for :class:`Lasso`.
    """
    from skimage.draw import polygon  # local: keep `import core.prompts` light

    pts = np.asarray(vertices, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != len(shape) or len(pts) < 3:
        raise PromptError(
            f"A polygon needs at least 3 vertices of {len(shape)} coordinates each; got shape {pts.shape}."
        )
    rounded = np.round(pts)
    flat = [a for a in range(len(shape)) if np.all(rounded[:, a] == rounded[0, a])]
    if len(flat) == len(shape):
        raise PromptError("The lasso polygon lies within one voxel; draw a larger outline around the object.")
    if len(flat) != 1:
        raise PromptError(
            "A lasso polygon must lie on exactly one slice: one coordinate axis must be the same "
            f"for every vertex (found constant axes {flat})."
        )
    axis = flat[0]
    s = int(rounded[0, axis])
    if not 0 <= s < shape[axis]:
        raise PromptError(f"The lasso slice {s} on axis {axis} is outside the image {tuple(shape)}.")
    plane_axes = [a for a in range(len(shape)) if a != axis]
    plane = pts[:, plane_axes] - pts[:, plane_axes].mean(axis=0)
    spread = np.linalg.svd(plane, compute_uv=False)  # the second is 0 when every vertex lies on one line
    if spread[1] <= 1e-6 * spread[0]:
        raise PromptError(
            "The lasso polygon has no area: its vertices lie on a line; draw an outline around the object."
        )
    rr, cc = polygon(pts[:, plane_axes[0]], pts[:, plane_axes[1]], [shape[a] for a in plane_axes])
    if rr.size == 0:
        raise PromptError("The lasso polygon encloses no voxel centre; draw a larger outline.")
    index: list[Any] = [None] * len(shape)  # one index array per axis, every entry set below
    index[axis] = np.full(rr.shape, s)
    index[plane_axes[0]], index[plane_axes[1]] = rr, cc
    full_box = tuple((int(ix.min()), int(ix.max()) + 1) for ix in index)
    crop = np.zeros(bbox_shape(full_box), dtype=bool)
    crop[tuple(ix - lo for ix, (lo, _) in zip(index, full_box))] = True
    return crop, full_box
