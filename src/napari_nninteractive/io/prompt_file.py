"""The prompt file of the command line: ``{"interactions": [...]}`` in voxel coordinates.

Items (array order, half-open boxes)::

    {"type": "point", "positive": true, "coord": [z, y, x]}
    {"type": "bbox", "positive": true, "bbox": [[z0, z1], [y0, y1], [x0, x1]]}
    {"type": "scribble" | "lasso", "positive": false, "voxels": [[z, y, x], ...]}
    {"type": "lasso", "positive": true, "polygon": [[z, y, x], ...]}    # one slice, filled
    {"type": "mask", "path": "init.nii.gz", "refine": true}            # relative to the file

Every item may add ``"run": false`` to queue it without predicting. Unknown keys or types are
errors that name the item.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core import jsonio
from ..core.errors import UserError
from ..core.geometry import bbox_shape
from ..core.prompts import Box, InitialMask, Lasso, Point, Prompt, Scribble, fill_polygon

#: The most vertices a lasso polygon may have (filling costs vertices x enclosed area).
MAX_POLYGON_VERTICES = 10_000
#: The most interactions one file may hold (each keeps an undo step; real sessions have tens).
MAX_INTERACTIONS = 2_000


class PromptFileError(UserError, ValueError):
    """A prompt file that cannot be used; the message names the file, the item and the fix."""


@dataclass(frozen=True)
class Interaction:
    """One prompt of the file and whether to predict right after it."""

    prompt: Prompt
    run: bool = True


_KEYS = {
    "point": {"coord"},
    "bbox": {"bbox"},
    "scribble": {"voxels"},
    "lasso": {"voxels", "polygon"},
    "mask": {"path", "refine"},
}
_COMMON = {"type", "positive", "run"}


def _voxels_to_crop(voxels: Any, shape: Sequence[int], where: str) -> tuple[np.ndarray, tuple]:
    n_max = math.prod(shape)
    pts = jsonio.as_rows(voxels, len(shape), f"{where}: 'voxels'", PromptFileError, 1, n_max)
    pts = np.round(pts).astype(np.int64)
    inside = np.all((pts >= 0) & (pts < np.asarray(shape)), axis=1)
    if not inside.all():
        bad = pts[~inside][0].tolist()
        raise PromptFileError(f"{where}: voxel {bad} lies outside the image of shape {tuple(shape)}; "
                              f"give voxel indices inside it.")
    lo, hi = pts.min(axis=0), pts.max(axis=0) + 1
    box = tuple((int(a), int(b)) for a, b in zip(lo, hi))
    crop = np.zeros(bbox_shape(box), dtype=bool)
    crop[tuple((pts - lo).T)] = True
    return crop, box


def _point(item: dict, shape: Sequence[int], where: str) -> tuple[float, ...]:
    coord = jsonio.as_numbers(_need(item, "coord", where), len(shape), f"{where}: 'coord'", PromptFileError)
    if any(not 0 <= round(c) < n for c, n in zip(coord, shape)):
        raise PromptFileError(f"{where}: 'coord' {coord} lies outside the image of shape {tuple(shape)}; "
                              f"give voxel indices (z, y, x) inside it.")
    return tuple(coord)


def _mask(item: dict, shape: Sequence[int], base_dir: Path, read_mask, where: str) -> InitialMask:
    if read_mask is None:
        raise PromptFileError(f"{where}: mask items need a reader.")
    name = jsonio.get(item, "path", str, where, PromptFileError)
    refine = jsonio.get(item, "refine", bool, where, PromptFileError, False)
    if not name:
        raise PromptFileError(f"{where}: 'path' is empty; give the mask file, relative to the prompt file.")
    path = Path(name)
    mask = read_mask(path if path.is_absolute() else base_dir / path)
    if np.shape(mask) != tuple(shape):
        raise PromptFileError(f"{where}: the mask {path} has shape {np.shape(mask)} but the image has shape "
                              f"{tuple(shape)}; give a mask on the image's grid.")
    return InitialMask(mask, None, True, refine)


def parse_interaction(item: Any, index: int, shape: Sequence[int], base_dir: Path, read_mask=None,
                      source: str | Path = "") -> Interaction:
    """Turn one JSON item into an :class:`Interaction` (``read_mask(path) -> array`` loads masks).

    Every field's JSON type, length and range is checked before use; ``source`` (the prompt
    file) starts every message of :class:`PromptFileError`.
    """
    where = f"{source}: interaction {index}" if source else f"interaction {index}"
    if not isinstance(item, dict):
        raise PromptFileError(f"{where}: each interaction must be a JSON object, not {jsonio.type_name(item)}.")
    kind = item.get("type")
    if not isinstance(kind, str) or kind not in _KEYS:
        raise PromptFileError(f"{where}: unknown type {kind!r}; use one of {sorted(_KEYS)}.")
    unknown = set(item) - _COMMON - _KEYS[kind]
    if unknown:
        raise PromptFileError(
            f"{where} ({kind}): unknown key(s) {sorted(unknown)}; allowed: {sorted(_COMMON | _KEYS[kind])}."
        )
    where = f"{where} ({kind})"
    positive = jsonio.get(item, "positive", bool, where, PromptFileError, True)
    run = jsonio.get(item, "run", bool, where, PromptFileError, True)
    try:
        if kind == "point":
            return Interaction(Point(_point(item, shape, where), positive), run)
        if kind == "bbox":
            box = jsonio.as_box(_need(item, "bbox", where), len(shape), f"{where}: 'bbox'", PromptFileError)
            return Interaction(Box(box, positive), run)
        if kind == "mask":
            return Interaction(_mask(item, shape, base_dir, read_mask, where), run)
        if kind == "lasso" and "polygon" in item:
            if "voxels" in item:
                raise PromptFileError(f"{where}: give either 'voxels' or 'polygon', not both.")
            vertices = jsonio.as_rows(item["polygon"], len(shape), f"{where}: 'polygon'", PromptFileError,
                                      3, MAX_POLYGON_VERTICES)
            crop, box = fill_polygon(vertices, shape)
            return Interaction(Lasso(crop, box, positive), run)
        crop, box = _voxels_to_crop(_need(item, "voxels", where), shape, where)
        cls = Scribble if kind == "scribble" else Lasso
        return Interaction(cls(crop, box, positive), run)
    except UserError as exc:
        if isinstance(exc, PromptFileError):
            raise
        raise PromptFileError(f"{where}: {exc}") from None  # a prompt or a mask file that cannot be used


def _need(item: dict, key: str, where: str):
    if key not in item:
        raise PromptFileError(f"{where}: missing key {key!r}.")
    return item[key]


def load_prompt_file(path: str | Path, shape: Sequence[int], read_mask=None) -> list[Interaction]:
    """Read and check a prompt file against an image of spatial ``shape``.

    The file is refused before parsing when it is a folder, unreadable or too large, and while
    parsing when it is not strict JSON or nests too deeply (:func:`..core.jsonio.read_json`).
    """
    path = Path(path)
    data = jsonio.read_json(path, PromptFileError, "prompts")
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise PromptFileError(f'{path} must hold {{"interactions": [...]}}.')
    extra = set(data) - {"interactions"}
    if extra:
        raise PromptFileError(f"{path}: unknown top-level key(s) {sorted(extra)}; only 'interactions' is allowed.")
    if len(data["interactions"]) > MAX_INTERACTIONS:
        raise PromptFileError(f"{path} holds {len(data['interactions'])} interactions, more than the "
                              f"{MAX_INTERACTIONS} one file may have; split it into several files.")
    return [parse_interaction(item, i, shape, path.parent, read_mask, path)
            for i, item in enumerate(data["interactions"])]


def interaction_to_json(prompt: Prompt, run: bool = True, mask_path: str | None = None) -> dict:
    """The JSON item for ``prompt`` (the inverse of :func:`parse_interaction`)."""
    item: dict[str, Any]
    if isinstance(prompt, Point):
        item = {"type": "point", "positive": bool(prompt.positive), "coord": [float(c) for c in prompt.coord]}
    elif isinstance(prompt, Box):
        item = {"type": "bbox", "positive": bool(prompt.positive), "bbox": [[int(a), int(b)] for a, b in prompt.bbox]}
    elif isinstance(prompt, InitialMask):
        if mask_path is None:
            raise ValueError("an initial mask needs mask_path (the file it is saved to)")
        item = {"type": "mask", "path": mask_path, "refine": bool(prompt.refine)}
    else:
        offset = np.array([lo for lo, _ in prompt.bbox]) if prompt.bbox is not None else 0
        voxels = (np.argwhere(np.asarray(prompt.mask)) + offset).tolist()
        item = {"type": prompt.kind.value, "positive": bool(prompt.positive), "voxels": voxels}
    if not run:
        item["run"] = False
    return item
