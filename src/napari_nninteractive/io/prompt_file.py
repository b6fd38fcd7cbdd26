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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core import codec, jsonio
from ..core.errors import UserError
from ..core.prompts import InitialMask, Lasso, Prompt, fill_polygon

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


#: Reads a mask file (``mask`` items) into an array.
MaskReader = Callable[[Path], np.ndarray]

#: The keys a prompt file adds to the codec's (:data:`..core.codec.FIELDS`), by type.
_EXTRA_KEYS = {name: {"run"} | {"lasso": {"polygon"}, "mask": {"path"}}.get(name, set()) for name in codec.TYPES}


def _mask(
    head: codec.Region, item: dict, shape: Sequence[int], base_dir: Path, read_mask: MaskReader | None, where: str
) -> InitialMask:
    """The ``mask`` item's file (``"path"``, relative to ``base_dir``) read on the image's grid."""
    if read_mask is None:
        raise PromptFileError(f"{where}: mask items need a reader.")
    name = jsonio.get(item, "path", str, where, PromptFileError)
    if not name:
        raise PromptFileError(f"{where}: 'path' is empty; give the mask file, relative to the prompt file.")
    path = Path(name)
    mask = read_mask(path if path.is_absolute() else base_dir / path)
    if np.shape(mask) != tuple(shape):
        raise PromptFileError(
            f"{where}: the mask {path} has shape {np.shape(mask)} but the image has shape "
            f"{tuple(shape)}; give a mask on the image's grid."
        )
    return head.make(mask, None)


def _region(shape: Sequence[int], base_dir: Path, read_mask: MaskReader | None) -> codec.RegionDecoder:
    """Reads a region item of a prompt file: a mask file, a lasso polygon, or the codec's voxel list."""

    def region(head: codec.Region, item: dict, where: str) -> Prompt:
        try:
            if head.cls is InitialMask:
                return _mask(head, item, shape, base_dir, read_mask, where)
            if head.cls is Lasso and "polygon" in item:
                if "voxels" in item:
                    raise PromptFileError(f"{where}: give either 'voxels' or 'polygon', not both.")
                vertices = jsonio.as_rows(
                    item["polygon"], len(shape), f"{where}: 'polygon'", PromptFileError, 3, MAX_POLYGON_VERTICES
                )
                return head.make(*fill_polygon(vertices, shape))
            return codec.voxel_region(shape, PromptFileError)(head, item, where)
        except UserError as exc:
            if isinstance(exc, PromptFileError):
                raise
            raise PromptFileError(f"{where}: {exc}") from None  # a polygon or a mask file that cannot be used

    return region


def parse_interaction(
    item: Any,
    index: int,
    shape: Sequence[int],
    base_dir: Path,
    read_mask: MaskReader | None = None,
    source: str | Path = "",
) -> Interaction:
    """Turn one JSON item into an :class:`Interaction` (``read_mask(path) -> array`` loads masks).

    Every field's JSON type, length and range is checked before use (:func:`..core.codec.decode`);
    ``source`` (the prompt file) starts every message of :class:`PromptFileError`.
    """
    where = f"{source}: interaction {index}" if source else f"interaction {index}"
    if not isinstance(item, dict):
        raise PromptFileError(f"{where}: each interaction must be a JSON object, not {jsonio.type_name(item)}.")
    prompt = codec.decode(
        item, shape, where, PromptFileError, extra_keys=_EXTRA_KEYS, region=_region(shape, base_dir, read_mask)
    )
    run = jsonio.get(item, "run", bool, f"{where} ({item['type']})", PromptFileError, True)
    return Interaction(prompt, run)


def load_prompt_file(path: str | Path, shape: Sequence[int], read_mask: MaskReader | None = None) -> list[Interaction]:
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
        raise PromptFileError(
            f"{path} holds {len(data['interactions'])} interactions, more than the "
            f"{MAX_INTERACTIONS} one file may have; split it into several files."
        )
    return [
        parse_interaction(item, i, shape, path.parent, read_mask, path) for i, item in enumerate(data["interactions"])
    ]


def interaction_to_json(prompt: Prompt, run: bool = True, mask_path: str | None = None) -> dict:
    """The JSON item for ``prompt`` (the inverse of :func:`parse_interaction`; an initial mask needs ``mask_path``)."""
    if isinstance(prompt, InitialMask):
        if mask_path is None:
            raise ValueError("an initial mask needs mask_path (the file it is saved to)")
        item = codec.encode(prompt, lambda p: {"path": mask_path})
    else:
        item = codec.encode(prompt)
    if not run:
        item["run"] = False
    return item
