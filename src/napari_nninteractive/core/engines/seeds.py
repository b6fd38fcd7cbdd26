"""Where prompts seed the weight-free engines: footprints, edge-aware click balls, local corrections, cuts.

Pure functions on numpy arrays; boxes are half-open ``((lo, hi), ...)`` in image coordinates and
``roi`` is the frame a seed array covers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ..geometry import (
    BBox,
    bbox_is_empty,
    bbox_shape,
    bbox_to_slices,
    clip_bbox,
    intersect_bbox,
    nonzero_bbox,
    relative_bbox,
    union_bbox,
)
from ..morphology import dilate
from ..prompts import Box, Lasso, Point, Prompt
from . import filters


def ball(r: int) -> np.ndarray:
    g = np.arange(-r, r + 1)
    zz, yy, xx = np.meshgrid(g, g, g, indexing="ij")
    return zz**2 + yy**2 + xx**2 <= r * r


def paint(target: np.ndarray, roi: BBox, box: BBox, values: np.ndarray) -> None:
    """OR ``values`` (shaped like ``box``, image frame) into ``target`` (ROI frame)."""
    w = window(box, roi)
    if w is not None:
        target[w[1]] |= values[w[2]].astype(bool)


def window(box: BBox, roi: BBox) -> tuple[BBox, tuple[slice, ...], tuple[slice, ...]] | None:
    """The part of ``box`` inside ``roi``: (its image-frame box, its slices in ``roi``'s frame, in ``box``'s).

    ``None`` when they do not meet. Seeds are painted through these views, so a prompt costs the
    size of its footprint, not of the region.
    """
    common = intersect_bbox(box, roi)
    if bbox_is_empty(common):
        return None
    return common, bbox_to_slices(relative_bbox(common, roi)), bbox_to_slices(relative_bbox(common, box))


def complement(inner: BBox, frame: BBox) -> list[tuple[slice, ...]]:
    """Slices (in ``frame``'s frame) of disjoint slabs that cover ``frame`` except ``inner``."""
    common = intersect_bbox(inner, frame)
    if bbox_is_empty(common):
        return [tuple(slice(None) for _ in frame)]
    rel = relative_bbox(common, frame)
    slabs = []
    for axis, (lo, hi) in enumerate(rel):
        head = tuple(slice(a, b) for a, b in rel[:axis])
        tail = tuple(slice(None) for _ in rel[axis + 1 :])
        slabs += [head + (slice(0, lo),) + tail, head + (slice(hi, None),) + tail]
    return slabs


def assign(fg: np.ndarray, bg: np.ndarray, region: np.ndarray, positive: bool) -> None:
    if positive:
        fg |= region
        bg &= ~region
    else:
        bg |= region
        fg &= ~region


def flat_axis(box: BBox) -> int | None:
    flat = [a for a, (lo, hi) in enumerate(box) if hi - lo == 1]
    return flat[0] if len(flat) == 1 else None


def central(inside: np.ndarray, box: BBox, roi: BBox) -> np.ndarray:
    """The central half (per in-plane axis) of a box/lasso region: likely object voxels."""
    out = np.zeros_like(inside)
    shrunk = []
    for lo, hi in box:
        ext = hi - lo
        q = ext // 4 if ext > 3 else 0
        shrunk.append((lo + q, hi - q))
    paint(out, roi, tuple(shrunk), np.ones(bbox_shape(tuple(shrunk)), bool))
    central: np.ndarray = out & inside
    return central


def extent(p: Prompt) -> BBox:
    """The box a validated prompt covers (a point: its voxel)."""
    if isinstance(p, Point):
        return tuple((int(c), int(c) + 1) for c in p.coord)  # validated: integers
    assert p.bbox is not None, "validated region prompts have a bbox"
    return p.bbox


def footprint(p: Prompt, r: int) -> tuple[BBox, np.ndarray]:
    """Where a prompt was placed, as (box, values): a point's ball, a box, a region's voxels."""
    if isinstance(p, Point):
        return tuple((int(c) - r, int(c) + r + 1) for c in p.coord), ball(r)  # validated: integers
    assert p.bbox is not None, "validated region prompts have a bbox"
    if isinstance(p, Box):
        return p.bbox, np.ones(bbox_shape(p.bbox), bool)
    return p.bbox, p.mask


def point_ball(p: Point, r: int, img: np.ndarray, roi: BBox, near_edge: int | None = None) -> tuple[BBox, np.ndarray]:
    """A click's ball, less the part beyond an edge inside it (the side the click is on is kept).

    The ball's (lightly smoothed) intensities are split in two where they separate best (Otsu);
    when the two groups differ by more than three of their standard deviations, only the voxels of
    the click's group connected to it stay. A click outside ``roi`` (an earlier one, away from a
    correction window) keeps its whole ball: its side cannot be told from the part inside.

    ``near_edge`` (a correction click): when an edge crosses the ball, the click's side is kept
    only as far from the click as the nearest voxel it drops (across the edge, or cut off from the
    click), and at least ``near_edge`` voxels. A correction right next to an edge is a fix of the
    boundary there: the click may sit on a boundary voxel whose own side is the wrong one, and a
    full ball would then seed the neighbour beyond the edge.
    """
    box, ball = footprint(p, r)
    common = intersect_bbox(box, roi)
    if bbox_is_empty(common) or not all(lo <= int(c) < hi for c, (lo, hi) in zip(p.coord, roi)):
        return box, ball
    local = filters.gaussian_filter(np.asarray(img[bbox_to_slices(relative_bbox(common, roi))], np.float32), 0.7)
    inside = ball[bbox_to_slices(relative_bbox(common, box))]
    centre = tuple(int(c) - lo for c, (lo, _) in zip(p.coord, common))
    keep = same_side(local, inside, centre)
    if near_edge is not None and not np.array_equal(keep, inside):
        across = inside & ~keep
        reach = max(near_edge, min(r, int(ndimage.distance_transform_edt(~across)[centre])))
        grid = np.indices(keep.shape)
        keep &= sum((g - c) ** 2 for g, c in zip(grid, centre)) <= reach * reach
    out = np.zeros(ball.shape, bool)
    out[bbox_to_slices(relative_bbox(common, box))] = keep
    return box, out


def same_side(local: np.ndarray, inside: np.ndarray, centre: tuple[int, ...]) -> np.ndarray:
    values = np.sort(local[inside])
    n = values.size
    if n < 8:
        return inside
    csum = np.cumsum(values, dtype=np.float64)
    k = np.arange(1, n)
    m1 = csum[:-1] / k
    m2 = (csum[-1] - csum[:-1]) / (n - k)
    split = int(np.argmax(k * (n - k) * (m1 - m2) ** 2))
    lo_vals, hi_vals = values[: split + 1], values[split + 1 :]
    # a floor for rounding noise, relative to the values: the split does not depend on the image's unit
    noise = np.sqrt((lo_vals.var() + hi_vals.var()) / 2) + 1e-6 * max(abs(float(values[0])), abs(float(values[-1])))
    if hi_vals.mean() - lo_vals.mean() <= 3 * noise:
        return inside
    threshold = (values[split] + values[split + 1]) / 2
    side = inside & ((local > threshold) == (local[centre] > threshold))
    labels, _ = ndimage.label(side)
    if not labels[centre]:
        return inside
    same: np.ndarray = labels == labels[centre]
    return same


def local_update(old: np.ndarray, new: np.ndarray, zone: np.ndarray, positive: bool | None = None) -> np.ndarray:
    """``new`` where it differs from ``old`` in regions connected to ``zone``, ``old`` elsewhere.

    A correction acts where it was placed: changes the recomputation makes away from the new
    prompts (e.g. a shifted intensity model) do not undo what earlier prompts established. With
    ``positive`` True only additions count (a positive correction never removes), with False only
    removals.
    """
    old_b, new_b = old.astype(bool), new.astype(bool)
    diff = old_b != new_b
    if positive is not None:
        diff &= new_b if positive else old_b
    box = nonzero_bbox(diff)
    out = old.astype(np.uint8, copy=True)
    if box is None:
        return out
    sl = bbox_to_slices(box)
    labels, _ = ndimage.label(diff[sl])
    keep = np.unique(labels[dilate(zone[sl]) & diff[sl]])
    take = np.isin(labels, keep[keep > 0])
    out[sl][take] = new[sl][take]
    return out


def cuts_bulk(before: np.ndarray, values: np.ndarray, n_old: int, factor: float) -> bool:
    """Whether a change (``before`` -> ``values``, 0/1 on one box) cuts an object of ``n_old`` voxels through its bulk.

    The cut is the surface between what the change removes and what stays (6-neighbours), on the
    whole object's result (a correction window's faces would hide it). A neck (a neighbour
    reached through a thin bridge, the other lung through the airways) is much thinner than
    either part it joins: its surface is far below the smaller part's ``size^(2/3)`` (the face of
    a cube that size). A cut through homogeneous tissue, where no edge told the regions apart,
    runs across the smaller part: its surface exceeds ``factor`` times that.
    """
    kept = values != 0
    removed = before.astype(bool, copy=False) & ~kept
    n_removed = int(np.count_nonzero(removed))
    smaller = min(n_removed, n_old - n_removed)
    surface = int(np.count_nonzero(kept & dilate(removed)))
    return smaller > 0 and surface > factor * smaller ** (2 / 3)


def footprints(mask: np.ndarray, new: Sequence[Prompt], r: int) -> tuple[BBox, np.ndarray]:
    """The change that sets only the prompts' own voxels in ``mask`` (later prompts win where they overlap).

    A positive box or lasso (in a batch with negative prompts) adds nothing: its footprint holds
    background too.
    """
    kept = [p for p in new if not (p.positive and isinstance(p, Box | Lasso))]
    drawn = union_bbox(*(footprint(p, r)[0] for p in kept))
    assert drawn is not None  # a change that removes has a negative prompt
    changed = clip_bbox(drawn, mask.shape)
    values = (mask[bbox_to_slices(changed)] != 0).astype(np.uint8)
    for p in kept:
        box, voxels = footprint(p, r)
        w = window(box, changed)
        if w is not None:
            values[w[1]][voxels[w[2]].astype(bool, copy=False)] = 1 if p.positive else 0
    return changed, values
