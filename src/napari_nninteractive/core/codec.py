"""Prompts as JSON items and back: the one codec of prompt files, prompt logs and session files.

An item is ``{"type": NAME, "positive": BOOL, FIELDS...}`` with ``NAME`` from :data:`TYPES`::

    {"type": "point", "positive": true, "coord": [z, y, x]}
    {"type": "bbox", "positive": true, "bbox": [[z0, z1], [y0, y1], [x0, x1]]}      # half-open
    {"type": "scribble" | "lasso", "positive": false, "voxels": [[z, y, x], ...]}
    {"type": "mask", "positive": true, <region fields>, "refine": false}

Voxel lists are the default form of scribbles and lassos; a file format with another form of
region (a mask file named by ``"path"``, an array of the session archive) passes its own
``region`` encoder and decoder, and every other field still comes from here.

:func:`decode` checks every field's JSON type, length and range and raises the caller's
:class:`~.errors.UserError` subclass with a message that starts with ``where`` (the file and the
item) and names the field. Items come in two kinds:

* ``stored=False``: items people write (prompt files, prompt logs). Coordinates may be
  fractional, boxes are checked by :meth:`.prompts.Box.validated` when they run; messages name
  the item's type and say what to give instead.
* ``stored=True``: items this package stored (session files), in the normal form the engines
  use: boxes are integer, non-empty and inside the image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from . import jsonio
from .errors import UserError
from .geometry import BBox, bbox_shape
from .prompts import Box, InitialMask, Lasso, Point, Prompt, Scribble

#: The JSON ``"type"`` name of every prompt class (file formats: never rename one).
TYPES: dict[str, type] = {"point": Point, "bbox": Box, "scribble": Scribble, "lasso": Lasso, "mask": InitialMask}
#: The keys every item may have.
COMMON_KEYS = frozenset({"type", "positive"})
#: The keys of each type's own fields in the codec's default form.
FIELDS: dict[str, frozenset[str]] = {
    "point": frozenset({"coord"}),
    "bbox": frozenset({"bbox"}),
    "scribble": frozenset({"voxels"}),
    "lasso": frozenset({"voxels"}),
    "mask": frozenset({"refine"}),
}

RegionPrompt = Scribble | Lasso | InitialMask


@dataclass(frozen=True)
class Region:
    """What :func:`decode` read of a region item (scribble, lasso, mask) before its voxels."""

    cls: type[RegionPrompt]
    positive: bool = True
    refine: bool = False

    def make(self, crop: np.ndarray, bbox: BBox | None) -> RegionPrompt:
        """The prompt of ``crop`` placed at ``bbox`` (``None``: ``crop`` is image-sized)."""
        if self.cls is InitialMask:
            return InitialMask(crop, bbox, True, self.refine)
        return self.cls(crop, bbox, self.positive)


RegionEncoder = Callable[[RegionPrompt], dict[str, Any]]
RegionDecoder = Callable[[Region, dict[str, Any], str], Any]


# ----------------------------------------------------------------------------- encode


def type_name(prompt: Prompt) -> str:
    """The JSON ``"type"`` of ``prompt``."""
    for name, cls in TYPES.items():
        if isinstance(prompt, cls):
            return name
    raise TypeError(f"{type(prompt).__name__} is not a prompt type; use one of {', '.join(sorted(TYPES))}.")


def box_field(bbox: BBox) -> list[list[int]]:
    """A box as JSON: ``[[lo, hi], ...]`` integers."""
    return [[int(lo), int(hi)] for lo, hi in bbox]


def voxel_fields(prompt: RegionPrompt) -> dict[str, Any]:
    """The default form of a scribble or lasso: ``{"voxels": [[z, y, x], ...]}`` (image coordinates).

    An initial mask has no default form (prompt files name a mask file, session files store an
    array): :class:`ValueError`.
    """
    if isinstance(prompt, InitialMask):
        raise ValueError("an initial mask has no voxel-list form; pass a region encoder (e.g. the path of its file)")
    offset = np.array([lo for lo, _ in prompt.bbox]) if prompt.bbox is not None else 0
    return {"voxels": (np.argwhere(np.asarray(prompt.mask)) + offset).tolist()}


def encode(prompt: Prompt, region: RegionEncoder | None = None) -> dict[str, Any]:
    """The JSON item of ``prompt``; ``region(prompt)`` gives a region prompt's fields (default :func:`voxel_fields`)."""
    item: dict[str, Any] = {"type": type_name(prompt), "positive": bool(prompt.positive)}
    if isinstance(prompt, Point):
        item["coord"] = [float(c) for c in prompt.coord]
    elif isinstance(prompt, Box):
        item["bbox"] = box_field(prompt.bbox)
    else:
        item.update((region or voxel_fields)(prompt))
        if isinstance(prompt, InitialMask):
            item["refine"] = bool(prompt.refine)
    return item


# ----------------------------------------------------------------------------- decode


def need(item: dict[str, Any], key: str, where: str, error: type[UserError]) -> Any:
    """``item[key]``, or ``error`` naming the missing key."""
    if key not in item:
        raise error(f"{where}: missing key {key!r}.")
    return item[key]


def inside_box(value: Any, shape: Sequence[int], where: str, error: type[UserError]) -> BBox:
    """A non-empty integer box ``[[lo, hi], ...]`` inside ``shape`` (``where`` names the field)."""
    # as_box checked len(shape) pairs of two numbers, integers (integer=True): a BBox
    box = cast(BBox, jsonio.as_box(value, len(shape), where, error, integer=True))
    if any(not 0 <= lo < hi <= n for (lo, hi), n in zip(box, shape)):
        raise error(f"{where} = {[list(b) for b in box]} is empty or not inside {tuple(shape)}.")
    return box


def voxels_to_crop(value: Any, shape: Sequence[int], where: str, error: type[UserError]) -> tuple[np.ndarray, BBox]:
    """A JSON voxel list as ``(crop, bbox)``: every voxel (rounded) must lie inside ``shape``."""
    pts = jsonio.as_rows(value, len(shape), f"{where}: 'voxels'", error, 1, math.prod(shape))
    pts = np.round(pts).astype(np.int64)
    inside = np.all((pts >= 0) & (pts < np.asarray(shape)), axis=1)
    if not inside.all():
        bad = pts[~inside][0].tolist()
        raise error(
            f"{where}: voxel {bad} lies outside the image of shape {tuple(shape)}; give voxel indices inside it."
        )
    lo, hi = pts.min(axis=0), pts.max(axis=0) + 1
    box = tuple((int(a), int(b)) for a, b in zip(lo, hi))
    crop = np.zeros(bbox_shape(box), dtype=bool)
    crop[tuple((pts - lo).T)] = True
    return crop, box


def _type(item: dict[str, Any], where: str, error: type[UserError], stored: bool) -> str:
    """The item's ``"type"``, a name of :data:`TYPES`."""
    kind = jsonio.get(item, "type", str, where, error) if stored else item.get("type")
    if not isinstance(kind, str) or kind not in TYPES:
        noun = "prompt type" if stored else "type"  # the wording each file format has always used
        raise error(f"{where}: unknown {noun} {kind!r}; use one of {sorted(TYPES)}.")
    return kind


def _coord(
    item: dict[str, Any], shape: Sequence[int], where: str, error: type[UserError], stored: bool
) -> tuple[float, ...]:
    """The item's ``"coord"``: one number per axis, inside ``shape`` once rounded (as :meth:`.Point.validated` does)."""
    coord = jsonio.as_numbers(need(item, "coord", where, error), len(shape), f"{where}: 'coord'", error)
    if any(not 0 <= round(c) < n for c, n in zip(coord, shape)):
        if stored:
            raise error(f"{where}: 'coord' {coord} is not inside {tuple(shape)}.")
        raise error(
            f"{where}: 'coord' {coord} lies outside the image of shape {tuple(shape)}; "
            f"give voxel indices (z, y, x) inside it."
        )
    return tuple(coord)


def bbox_of(
    item: dict[str, Any], shape: Sequence[int], where: str, error: type[UserError], stored: bool = False
) -> BBox:
    """The item's ``"bbox"``: any numbers (``stored``: integer, non-empty and inside ``shape``)."""
    value = need(item, "bbox", where, error)
    if stored:
        return inside_box(value, shape, f"{where}: 'bbox'", error)
    # pairs of any finite numbers: a box people wrote keeps them until Box.validated rounds them
    return cast(BBox, jsonio.as_box(value, len(shape), f"{where}: 'bbox'", error))


def voxel_region(shape: Sequence[int], error: type[UserError]) -> RegionDecoder:
    """The default region decoder: a scribble's or lasso's ``"voxels"`` list (mask items are refused)."""

    def region(head: Region, item: dict[str, Any], where: str) -> RegionPrompt:
        if head.cls is InitialMask:
            raise error(f"{where}: mask items are not accepted here.")
        return head.make(*voxels_to_crop(need(item, "voxels", where, error), shape, where, error))

    return region


def decode(
    item: Any,
    shape: Sequence[int],
    where: str,
    error: type[UserError],
    *,
    stored: bool = False,
    extra_keys: Mapping[str, Set[str]] | None = None,
    region: RegionDecoder | None = None,
) -> Any:
    """The prompt of the JSON ``item`` on an image of spatial ``shape``, checked field by field.

    Parameters
    ----------
    item
        The parsed JSON item.
    shape
        The image's spatial shape: coordinates, boxes and voxels must fit it.
    where
        Starts every message (e.g. ``"prompts.json: interaction 3"``).
    error
        The :class:`~.errors.UserError` subclass raised.
    stored
        The item was stored by this package (session files): see the module notes.
    extra_keys
        When given, keys beyond :data:`COMMON_KEYS`, :data:`FIELDS` and ``extra_keys[type]``
        are refused; when ``None`` they are ignored.
    region
        ``region(head, item, where)`` reads a region item's voxels (default: its ``"voxels"``
        list; ``head.make(crop, bbox)`` builds the prompt); its result is returned as is.

    Returns
    -------
    Point or Box or object
        The prompt; for a region item, what ``region`` returns.
    """
    if not isinstance(item, dict):
        raise error(f"{where} must be a JSON object, not {jsonio.type_name(item)}.")
    kind = _type(item, where, error, stored)
    where = where if stored else f"{where} ({kind})"
    if extra_keys is not None:
        allowed = COMMON_KEYS | FIELDS[kind] | set(extra_keys.get(kind, ()))
        unknown = set(item) - allowed
        if unknown:
            raise error(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}.")
    positive = jsonio.get(item, "positive", bool, where, error, True)
    if kind == "point":
        return Point(_coord(item, shape, where, error, stored), positive)
    if kind == "bbox":
        return Box(bbox_of(item, shape, where, error, stored), positive)
    if kind == "mask" and not positive:
        raise error(f'{where}: a mask item is the object itself, always positive; drop "positive": false.')
    refine = jsonio.get(item, "refine", bool, where, error, False) if kind == "mask" else False
    return (region or voxel_region(shape, error))(Region(TYPES[kind], positive, refine), item, where)


__all__ = [
    "COMMON_KEYS",
    "FIELDS",
    "TYPES",
    "Region",
    "bbox_of",
    "box_field",
    "decode",
    "encode",
    "inside_box",
    "need",
    "type_name",
    "voxel_fields",
    "voxel_region",
    "voxels_to_crop",
]
