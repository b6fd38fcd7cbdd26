"""Simulated users: prompts from a reference mask, and corrective prompts from the errors.

Follows ``evaluation.md``: the initial prompt is placed on the object's largest slice; a
correction goes into the largest connected error component, negative with probability
``|FP| / (|FP| + |FN|)``. 2-D prompts (box, scribble, lasso) are drawn on the slice, over all
three orthogonal axes, that holds the most voxels of the region (first axis, then first slice
wins ties), like a user scrolling to where the object or the error is largest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..core.geometry import nonzero_bbox
from ..core.prompts import Box, Lasso, Point, Prompt, PromptKind, Scribble

KINDS = (PromptKind.POINT, PromptKind.BBOX, PromptKind.SCRIBBLE, PromptKind.LASSO)


@dataclass(frozen=True)
class SliceChoice:
    """A slice ``index`` along ``axis`` and the region's 2-D mask on it."""

    axis: int
    index: int
    plane: np.ndarray  # 2-D bool


def largest_slice(region: np.ndarray) -> SliceChoice:
    """The orthogonal slice holding the most voxels of ``region`` (ties: lower axis, then index)."""
    best = None
    for axis in range(region.ndim):
        other = tuple(a for a in range(region.ndim) if a != axis)
        areas = region.sum(axis=other)
        idx = int(np.argmax(areas))
        if best is None or areas[idx] > best[0]:
            best = (int(areas[idx]), axis, idx)
    _, axis, idx = best
    return SliceChoice(axis, idx, np.take(region, idx, axis=axis).astype(bool))


def _embed(choice: SliceChoice, plane_mask: np.ndarray, positive: bool, cls) -> Prompt:
    """A one-slice region prompt (crop + bbox) from a 2-D mask on ``choice``'s slice."""
    box2d = nonzero_bbox(plane_mask)
    crop2d = plane_mask[tuple(slice(lo, hi) for lo, hi in box2d)]
    crop = np.expand_dims(crop2d, choice.axis)
    bbox = list(box2d)
    bbox.insert(choice.axis, (choice.index, choice.index + 1))
    return cls(crop, tuple(bbox), positive)


def _first_argmax(values: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(values)), values.shape))


def point_prompt(
    region: np.ndarray, positive: bool = True, rng: np.random.Generator | None = None, depth: str = "slice"
) -> Point:
    """A click in ``region``.

    ``depth="slice"``: the voxel farthest from the boundary (2-D distance transform maximum) on
    the largest slice; ``"volume"``: the 3-D distance-transform maximum; ``"random"``: a random
    voxel of the region (``rng``).
    """
    if depth == "random":
        voxels = np.argwhere(region)
        return Point(tuple(int(v) for v in voxels[(rng or np.random.default_rng()).integers(len(voxels))]), positive)
    if depth == "volume":
        return Point(_first_argmax(ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1, 1:-1]), positive)
    choice = largest_slice(region)
    dist = ndimage.distance_transform_edt(np.pad(choice.plane, 1))[1:-1, 1:-1]
    yx = list(_first_argmax(dist))
    yx.insert(choice.axis, choice.index)
    return Point(tuple(yx), positive)


def box_prompt(
    region: np.ndarray, positive: bool = True, rng: np.random.Generator | None = None, jitter: int = 0
) -> Box:
    """The tight 2-D box of ``region`` on its largest slice, each edge moved by up to ``jitter``."""
    choice = largest_slice(region)
    box2d = [list(p) for p in nonzero_bbox(choice.plane)]
    if jitter and rng is not None:
        for lo_hi, n in zip(box2d, choice.plane.shape):
            lo_hi[0] = int(np.clip(lo_hi[0] + rng.integers(-jitter, jitter + 1), 0, n - 1))
            lo_hi[1] = int(np.clip(lo_hi[1] + rng.integers(-jitter, jitter + 1), lo_hi[0] + 1, n))
    box = [tuple(p) for p in box2d]
    box.insert(choice.axis, (choice.index, choice.index + 1))
    return Box(tuple(box), positive)


def scribble_prompt(region: np.ndarray, positive: bool = True, width: int = 2, erosion: int = 2) -> Scribble:
    """A ``width``-px curve inside ``region`` on its largest slice: skeleton of the eroded slice.

    The longest skeleton branch component is kept; the stroke is clipped to the region, so a
    scribble is always a strict cue.
    """
    from skimage.morphology import disk, skeletonize

    choice = largest_slice(region)
    plane = choice.plane
    eroded = ndimage.binary_erosion(plane, disk(erosion)) if erosion else plane
    if not eroded.any():
        eroded = plane
    skeleton = skeletonize(eroded)
    labels, n = ndimage.label(skeleton, structure=np.ones((3, 3)))
    if n > 1:
        sizes = ndimage.sum_labels(skeleton, labels, index=np.arange(1, n + 1))
        skeleton = labels == (1 + int(np.argmax(sizes)))
    stroke = ndimage.binary_dilation(skeleton, np.ones((width, width), bool)) if width > 1 else skeleton
    stroke &= plane
    if not stroke.any():
        stroke = skeleton & plane if (skeleton & plane).any() else plane
    return _embed(choice, stroke, positive, Scribble)


def lasso_prompt(region: np.ndarray, positive: bool = True, margin: int = 2) -> Lasso:
    """The outline of ``region`` on its largest slice, dilated by ``margin`` voxels, filled."""
    choice = largest_slice(region)
    filled = ndimage.binary_fill_holes(choice.plane)
    if margin:
        filled = ndimage.binary_dilation(filled, iterations=margin)
    return _embed(choice, filled, positive, Lasso)


def make_prompt(kind: PromptKind, region: np.ndarray, positive: bool, rng: np.random.Generator) -> Prompt:
    """A prompt of ``kind`` for ``region`` (which must be non-empty)."""
    if kind is PromptKind.POINT:
        return point_prompt(region, positive)
    if kind is PromptKind.BBOX:
        return box_prompt(region, positive)
    if kind is PromptKind.SCRIBBLE:
        return scribble_prompt(region, positive)
    if kind is PromptKind.LASSO:
        return lasso_prompt(region, positive)
    raise ValueError(f"no simulated prompt for {kind}")


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of ``mask`` (lowest label wins ties)."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return labels == 1
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (1 + int(np.argmax(sizes)))


def correction(
    kind: PromptKind, reference: np.ndarray, prediction: np.ndarray, rng: np.random.Generator
) -> Prompt | None:
    """A corrective prompt of ``kind`` for the current errors, or ``None`` when there are none."""
    ref, pred = reference.astype(bool), prediction.astype(bool)
    fn, fp = ref & ~pred, pred & ~ref
    n_fn, n_fp = int(fn.sum()), int(fp.sum())
    if n_fn + n_fp == 0:
        return None
    negative = rng.random() < n_fp / (n_fp + n_fn)
    region = largest_component(fp if negative else fn)
    return make_prompt(kind, region, not negative, rng)
