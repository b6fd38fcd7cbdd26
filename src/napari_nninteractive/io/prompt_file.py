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

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.geometry import bbox_shape
from ..core.prompts import Box, InitialMask, Lasso, Point, Prompt, Scribble, fill_polygon


class PromptFileError(ValueError):
    """A prompt file that cannot be used; the message names the item and the fix."""


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
    pts = np.asarray(voxels)
    if pts.ndim != 2 or pts.shape[1] != len(shape) or len(pts) == 0:
        raise PromptFileError(f"{where}: 'voxels' must be a non-empty list of [z, y, x] triples.")
    pts = np.round(pts.astype(float)).astype(int)
    inside = np.all((pts >= 0) & (pts < np.asarray(shape)), axis=1)
    if not inside.all():
        bad = pts[~inside][0].tolist()
        raise PromptFileError(f"{where}: voxel {bad} lies outside the image of shape {tuple(shape)}.")
    lo, hi = pts.min(axis=0), pts.max(axis=0) + 1
    box = tuple((int(a), int(b)) for a, b in zip(lo, hi))
    crop = np.zeros(bbox_shape(box), dtype=bool)
    crop[tuple((pts - lo).T)] = True
    return crop, box


def parse_interaction(item: Any, index: int, shape: Sequence[int], base_dir: Path, read_mask=None) -> Interaction:
    """Turn one JSON item into an :class:`Interaction` (``read_mask(path) -> array`` loads masks)."""
    where = f"interaction {index}"
    if not isinstance(item, dict):
        raise PromptFileError(f"{where}: each interaction must be a JSON object, got {item!r}.")
    kind = item.get("type")
    if kind not in _KEYS:
        raise PromptFileError(f"{where}: unknown type {kind!r}; use one of {sorted(_KEYS)}.")
    unknown = set(item) - _COMMON - _KEYS[kind]
    if unknown:
        raise PromptFileError(
            f"{where} ({kind}): unknown key(s) {sorted(unknown)}; allowed: {sorted(_COMMON | _KEYS[kind])}."
        )
    positive = item.get("positive", True)
    run = item.get("run", True)
    if not isinstance(positive, bool) or not isinstance(run, bool):
        raise PromptFileError(f"{where}: 'positive' and 'run' must be true or false.")
    try:
        if kind == "point":
            return Interaction(Point(tuple(_need(item, "coord", where)), positive), run)
        if kind == "bbox":
            return Interaction(Box(tuple(tuple(p) for p in _need(item, "bbox", where)), positive), run)
        if kind == "mask":
            if read_mask is None:
                raise PromptFileError(f"{where}: mask items need a reader.")
            path = Path(_need(item, "path", where))
            path = path if path.is_absolute() else base_dir / path
            return Interaction(InitialMask(read_mask(path), None, True, bool(item.get("refine", False))), run)
        if kind == "lasso" and "polygon" in item:
            if "voxels" in item:
                raise PromptFileError(f"{where}: give either 'voxels' or 'polygon', not both.")
            crop, box = fill_polygon(item["polygon"], shape)
            return Interaction(Lasso(crop, box, positive), run)
        crop, box = _voxels_to_crop(_need(item, "voxels", where), shape, where)
        cls = Scribble if kind == "scribble" else Lasso
        return Interaction(cls(crop, box, positive), run)
    except PromptFileError:
        raise
    except (TypeError, ValueError) as exc:
        raise PromptFileError(f"{where} ({kind}): {exc}") from None


def _need(item: dict, key: str, where: str):
    if key not in item:
        raise PromptFileError(f"{where} ({item['type']}): missing key {key!r}.")
    return item[key]


def load_prompt_file(path: str | Path, shape: Sequence[int], read_mask=None) -> list[Interaction]:
    """Read and check a prompt file against an image of spatial ``shape``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PromptFileError(f"{path} does not exist.") from None
    except json.JSONDecodeError as exc:
        raise PromptFileError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise PromptFileError(f'{path} must hold {{"interactions": [...]}}.')
    extra = set(data) - {"interactions"}
    if extra:
        raise PromptFileError(f"{path}: unknown top-level key(s) {sorted(extra)}; only 'interactions' is allowed.")
    return [parse_interaction(item, i, shape, path.parent, read_mask) for i, item in enumerate(data["interactions"])]


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
