"""AutoZoom: zoom schedule, border-change test, resampling and refinement planning (spec 5).

Pure functions on numpy arrays / torch tensors; the orchestration lives in
:mod:`napari_nninteractive.core.engines.network`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from .geometry import (
    BBox,
    bbox_is_empty,
    bbox_shape,
    bbox_to_slices,
    clip_bbox,
    intersect_bbox,
    nonzero_bbox,
    relative_bbox,
    shift_bbox,
)
from .morphology import binary_opening_nearest

MAX_ZOOM = 4.0
ZOOM_STEP = 1.5


@dataclass(frozen=True)
class AutoZoomConfig:
    """Thresholds of AutoZoom; the defaults are the spec's exact values."""

    enabled: bool = True
    max_zoom: float = MAX_ZOOM
    zoom_step: float = ZOOM_STEP
    border_abs_change: int = 1500
    border_min_change: int = 100
    border_rel_change: float = 0.2
    opening_size: int = 5
    inner_margin: int = 24
    greedy_fallback_k: int = 10
    no_candidate_fallback_k: int = 25
    max_halvings: int = 3


# ----------------------------------------------------------------------------- schedule


def starting_zoom(extent: Sequence[int], patch_size: Sequence[int], max_zoom: float = MAX_ZOOM) -> float:
    """``max(1, max_axis((extent + P // 3) / P))`` capped at ``max_zoom``."""
    z = max((e + p // 3) / p for e, p in zip(extent, patch_size))
    return float(min(max_zoom, max(1.0, z)))


def next_zoom(zoom: float, step: float = ZOOM_STEP, max_zoom: float = MAX_ZOOM) -> float:
    """The zoom after a zoom-out: ``min(max_zoom, step * zoom)``."""
    return float(min(max_zoom, zoom * step))


def crop_size(patch_size: Sequence[int], zoom: float) -> tuple[int, ...]:
    """Crop edge ``round(P * zoom)`` per axis (round half to even)."""
    return tuple(int(round(p * zoom)) for p in patch_size)


def max_filter_size(zoom: float) -> int:
    """Odd max-filter size for point/scribble channels before area downsampling.

    ``k`` is the odd number nearest to ``2 * zoom - 1`` (ties go up); no filter (1) below 1.5.
    Gives 1.5 -> 3, 2.25 -> 3, 3.375 -> 5, 4 -> 7.
    """
    if zoom < 1.5:
        return 1
    return 2 * int(math.floor((2 * zoom - 1) / 2)) + 1


# ----------------------------------------------------------------------------- border test


def face_triggers(prev: np.ndarray, pred: np.ndarray, cfg: AutoZoomConfig = AutoZoomConfig()) -> list[bool]:
    """For each of the 6 faces of the cube: does the change there ask for a zoom-out?

    Per face ``a = sum(prev)``, ``b = sum(pred)``, ``d = count(prev != pred)``,
    ``rel = max(a, b) / max(min(a, b), 1e-5) - 1``; trigger if ``d > 1500``, or ``d > 100``
    and ``rel > 0.2``.
    """
    out = []
    for axis in range(prev.ndim):
        for idx in (0, -1):
            fa = np.take(prev, idx, axis=axis).astype(bool)
            fb = np.take(pred, idx, axis=axis).astype(bool)
            a, b = int(fa.sum()), int(fb.sum())
            d = int(np.count_nonzero(fa != fb))
            rel = max(a, b) / max(min(a, b), 1e-5) - 1
            out.append(d > cfg.border_abs_change or (d > cfg.border_min_change and rel > cfg.border_rel_change))
    return out


# ----------------------------------------------------------------------------- resampling


def _as5d(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(x)
    return t.reshape((1, 1) + tuple(t.shape[-3:])) if t.ndim == 3 else t


def resample_trilinear(x: np.ndarray | torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Trilinear (align_corners False) resampling of a 3-D float array to ``size``."""
    return _resample(x, size, "trilinear")


def resample_area(x: np.ndarray | torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Area-average resampling (adaptive average pooling) of a 3-D array to ``size``."""
    return _resample(x, size, "area")


def resample_nearest(x: np.ndarray | torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Nearest-neighbour resampling of a 3-D array to ``size``."""
    return _resample(x, size, "nearest")


def _aligned_step(crop: int, out: int) -> int | None:
    """Output cells per block for which resampling a sub-range gives bit-identical values, or ``None``.

    With ``crop / out = k / m`` in lowest terms and ``m`` a power of two (every AutoZoom ratio:
    1.5, 2.25, 3.375, 4), source coordinates are exact binary fractions, so a block-aligned
    sub-range reproduces the full call's indices and weights exactly.
    """
    from math import gcd

    m = out // gcd(crop, out)
    return m if crop > out and m & (m - 1) == 0 else None


#: Writes the crop's values over ``part`` (a box of the crop frame) into ``dst`` (an array of that box's shape).
Fill = Callable[[np.ndarray, BBox], None]


def fill_from(values: np.ndarray, region: BBox) -> Fill:
    """The :data:`Fill` of a crop whose values over ``region`` (crop frame) are ``values``."""

    def fill(dst: np.ndarray, part: BBox) -> None:
        dst[...] = values[bbox_to_slices(relative_bbox(part, region))]

    return fill


def resample_sparse_into(
    fill: Fill,
    region: BBox,
    crop_shape: Sequence[int],
    size: Sequence[int],
    targets: Sequence[tuple[str, torch.Tensor]],
) -> BBox | None:
    """Resample a crop that is zero outside ``region`` to ``size`` without building the crop.

    ``fill`` writes the crop's values (e.g. :func:`fill_from`) straight into the part that is resampled.
    Each ``(mode, all-zero float32 tensor of size)`` of ``targets`` receives ``F.interpolate`` of the whole
    zero-filled crop (``mode`` trilinear with align_corners False, area or nearest) bit for bit: only the
    output cells that can read ``region`` are computed, from one block-aligned part of the crop. Ratios
    without an exact block size fall back to the full crop. Returns the box of the targets that was
    written (``None``: nothing, the region is empty).
    """
    if bbox_is_empty(region):
        return None
    steps = [_aligned_step(c, p) for c, p in zip(crop_shape, size)]
    if any(m is None for m in steps):
        full = np.zeros(tuple(crop_shape), np.float32)
        fill(full[bbox_to_slices(region)], region)
        for mode, out in targets:
            out[...] = _resample(torch.from_numpy(full), size, mode)
        return tuple((0, p) for p in size)
    blocks = cast("list[int]", steps)  # none is None past the fallback
    outs: list[tuple[int, int]] = []
    in_pairs: list[tuple[int, int]] = []
    for (r0, r1), c, p, m in zip(region, crop_shape, size, blocks):
        scale = c / p  # every output cell o reads only crop voxels in [o * scale - 1, (o + 1) * scale + 1]
        lo = max(0, int(np.floor((r0 - 1) / scale - 1)))
        hi = min(p, int(np.ceil((r1 + 1) / scale)) + 1)
        lo, hi = lo // m * m, min(p, -(-hi // m) * m)
        outs.append((lo, hi))
        in_pairs.append((lo * c // p, hi * c // p))
    ins = tuple(in_pairs)
    sub = np.zeros(bbox_shape(ins), np.float32)
    common = intersect_bbox(ins, region)
    fill(sub[bbox_to_slices(shift_bbox(common, [-lo for lo, _ in ins]))], common)
    for mode, out in targets:
        out[bbox_to_slices(tuple(outs))] = _resample(torch.from_numpy(sub), bbox_shape(tuple(outs)), mode)
    return tuple(outs)


def _resample(x: np.ndarray | torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
    extra = {"align_corners": False} if mode == "trilinear" else {}
    return F.interpolate(_as5d(x).float(), size=tuple(size), mode=mode, **extra)[0, 0]


def max_filter(x: np.ndarray, k: int) -> np.ndarray:
    """Cubic ``k^3`` max filter with replicated edges of a non-negative 3-D array.

    Done separably (exact for max) and only around the nonzero voxels: far from them the
    result is 0, and there replicating an edge of zeros gives zeros too.
    """
    x = np.asarray(x)
    if k <= 1:
        return x
    r = k // 2
    box = nonzero_bbox(x)
    if box is None:
        return np.zeros_like(x)
    region = clip_bbox(tuple((lo - 2 * r, hi + 2 * r) for lo, hi in box), x.shape)
    sub = x[bbox_to_slices(region)]
    for axis in range(3):
        pad = [(0, 0)] * 3
        pad[axis] = (r, r)
        padded = np.pad(sub, pad, mode="edge")
        n = sub.shape[axis]
        view = [slice(None)] * 3
        view[axis] = slice(0, n)
        out = padded[tuple(view)].copy()
        for shift in range(1, k):
            view[axis] = slice(shift, shift + n)
            np.maximum(out, padded[tuple(view)], out=out)
        sub = out
    result = np.zeros_like(x)
    result[bbox_to_slices(region)] = sub
    return result


def upsample_mask(pred: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Upsample a 0/1 prediction: trilinear on floats, then ``>= 0.5``."""
    return (resample_trilinear(pred.astype(np.float32), size) >= 0.5).numpy()


def binary_opening(mask: np.ndarray, size: int = 5) -> np.ndarray:
    """Opening (min then max filter, ``size^3``, replicated edges) of a bool array.

    Computed only around the nonzero voxels, on bit-packed rows (:mod:`.morphology`); identical to
    ``scipy.ndimage`` filtering of the whole array.
    """
    box = nonzero_bbox(mask)
    if box is None:
        return np.zeros(mask.shape, dtype=bool)
    margin = 2 * (size // 2)
    region = clip_bbox(tuple((lo - margin, hi + margin) for lo, hi in box), mask.shape)
    sl = bbox_to_slices(region)
    out = np.zeros(mask.shape, dtype=bool)
    out[sl] = binary_opening_nearest(mask[sl], size)
    return out


# ----------------------------------------------------------------------------- refinement


def inner_margin(patch_size: Sequence[int], spec_margin: int = 24) -> int:
    """The margin of a refinement patch's inner box: the spec's 24 for patches of 64 and more.

    The spec's rule assumes the 192^3 patch. A smaller patch (e.g. a 32^3 network trained with
    ``--plans cpu-small``) would keep a core of a few voxels or none, and covering a large change
    would take tens of thousands of passes; there the margin shrinks so the core keeps 16 voxels
    (half the patch below 32).
    """
    return min([spec_margin] + [max(p // 4, (p - 16) // 2) for p in patch_size])


def inner_box(centre: Sequence[int], patch_size: Sequence[int], margin: int) -> BBox:
    """``[c - P//2 + margin, c + (P - P//2) - margin)`` per axis (unclipped)."""
    return tuple((c - p // 2 + margin, c + (p - p // 2) - margin) for c, p in zip(centre, patch_size))


def full_box(centre: Sequence[int], patch_size: Sequence[int]) -> BBox:
    """``[c - P//2, c + (P - P//2))`` per axis: the patch the network sees."""
    return tuple((c - p // 2, c + (p - p // 2)) for c, p in zip(centre, patch_size))


def _grid_candidates(diff: np.ndarray, strides: Sequence[int]) -> list[tuple[int, ...]]:
    box = nonzero_bbox(diff)
    assert box is not None, "diff is not empty"  # plan_refinement returns early for an empty diff
    axes = [range(lo, hi, s) for (lo, hi), s in zip(box, strides)]
    return [c for c in itertools.product(*axes) if diff[c]]


def plan_refinement(diff: np.ndarray, patch_size: Sequence[int], cfg: AutoZoomConfig = AutoZoomConfig()) -> list[BBox]:
    """Refinement patches (full boxes, local frame of ``diff``) that cover the changed voxels.

    ``diff`` is the opened change mask over the planning region. Implements the greedy grid
    search and the deterministic fallback of spec section 5. Returns ``[]`` if ``diff`` is empty.
    """
    diff = np.asarray(diff, dtype=bool)
    box = nonzero_bbox(diff)
    if box is None:
        return []
    shape = diff.shape
    strides = [max(1, int(round((hi - 1 - lo) / 4))) for lo, hi in box]
    candidates = _grid_candidates(diff, strides)
    halvings = 0
    while not candidates and halvings < cfg.max_halvings:
        strides = [max(1, s // 2) for s in strides]
        halvings += 1
        candidates = _grid_candidates(diff, strides)

    uncovered = diff.copy()
    covered = np.zeros(shape, dtype=bool)
    boxes: list[BBox] = []

    margin = inner_margin(patch_size, cfg.inner_margin)

    def inner_slices(c: Sequence[int]) -> tuple[slice, ...]:
        return bbox_to_slices(clip_bbox(inner_box(c, patch_size, margin), shape))

    def take(c: Sequence[int]) -> None:
        boxes.append(full_box(c, patch_size))
        sl = inner_slices(c)
        covered[sl] = True
        uncovered[sl] = False

    if candidates:
        # A candidate's count changes only when a taken box overlaps its inner box: only those are counted again.
        inner_of = {c: clip_bbox(inner_box(c, patch_size, margin), shape) for c in candidates}
        count_of = {c: int(np.count_nonzero(uncovered[bbox_to_slices(inner_of[c])])) for c in candidates}
        while candidates and uncovered.any():
            best = int(np.argmax([count_of[c] for c in candidates]))  # first wins ties
            if count_of[candidates[best]] == 0:
                break
            chosen = inner_of[candidates[best]]
            take(candidates[best])
            candidates = [c for c in candidates if not covered[c]]
            for c in candidates:
                if not bbox_is_empty(intersect_bbox(inner_of[c], chosen)):
                    count_of[c] = int(np.count_nonzero(uncovered[bbox_to_slices(inner_of[c])]))
        k_max = cfg.greedy_fallback_k
    else:
        k_max = cfg.no_candidate_fallback_k

    rest = nonzero_bbox(uncovered)  # what is left lies in this box, which only shrinks
    while rest is not None:
        # Lexicographic order inside a box is the order of the whole array: list only the box's voxels.
        left = np.flatnonzero(uncovered[bbox_to_slices(rest)])  # C order, and far cheaper than argwhere
        n = len(left)
        k = min(n, k_max)
        picks = [0] if k == 1 else [(i * (n - 1)) // (k - 1) for i in range(k)]
        options = [
            tuple(int(v) + lo for v, (lo, _) in zip(np.unravel_index(left[i], bbox_shape(rest)), rest)) for i in picks
        ]
        counts = [int(np.count_nonzero(uncovered[inner_slices(c)])) for c in options]
        take(options[int(np.argmax(counts))])
        found = nonzero_bbox(uncovered[bbox_to_slices(rest)])
        rest = None if found is None else shift_bbox(found, [lo for lo, _ in rest])
    return boxes
