"""Upsampling a 0/1 prediction to a zoomed crop, computed only where it is needed, bit-identical to torch.

AutoZoom upsamples the coarse prediction (P^3) to the whole crop (S^3, up to 768^3 at zoom 4) with
trilinear interpolation (align_corners False) and thresholds it at 0.5 (spec 5). Only the part of the
crop inside the image is used, and most of it lies in blocks where the coarse prediction is all 0 or
all 1. :func:`upsample_mask_region` computes the thresholded result over a region of the crop:

- where the 2x2x2 block of coarse voxels an output voxel reads is uniform, the answer is known
  (all 0 gives exactly 0; all 1 gives 1 within a few float32 roundings);
- elsewhere the trilinear value is computed in float64 and, where it lies within 1e-5 of 0.5, once more
  exactly as torch's CPU kernel computes it in float32: per-axis source indices and weights from a
  fused multiply-add, then ``fma(w0, a, round(w1 * b))`` along x, y and z in turn.

The replica is checked against torch itself before it is trusted: the per-axis tables against a
one-axis interpolation for every size pair, and the whole computation against a full interpolation of
a small random mask once per process. Where either check fails (another torch build, another CPU),
the full torch interpolation is used, so the result is always what ``F.interpolate`` gives.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .autozoom import resample_trilinear, upsample_mask
from .geometry import BBox, bbox_inside, bbox_is_empty, bbox_shape, bbox_to_slices
from .threaded import run_parts

_F32 = np.float32
SLAB_VOXELS = 1 << 22  # output voxels per slab
NEAR_HALF = 1e-5  # float32 roundings move a value by < 1e-6; closer to 0.5 than this it is computed exactly


def fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a * b + c`` rounded once to float32 (a fused multiply-add) for float32 arrays.

    The product is exact in float64; the sum's rounding error is recovered exactly (two-sum), and it
    decides the one case where rounding the float64 sum to float32 could differ: a sum that lands
    exactly halfway between two float32 values.
    """
    p = np.asarray(a, np.float64) * np.asarray(b, np.float64)
    q = np.asarray(c, np.float64)
    s = p + q
    bp = s - p
    err = (p - (s - bp)) + (q - bp)  # s + err == p + q exactly
    t = s.astype(_F32)
    t64 = t.astype(np.float64)
    other = np.where(t64 < s, np.nextafter(t, _F32(np.inf)), np.nextafter(t, _F32(-np.inf)))
    mid = (t64 + other.astype(np.float64)) / 2  # exact: both are float32 values
    tie = (s == mid) & (err != 0)
    if tie.any():  # the exact sum is just above or below the midpoint: round to that side
        up = np.maximum(t, other)
        down = np.minimum(t, other)
        t = np.where(tie, np.where(err > 0, up, down), t)
    return np.asarray(t, _F32)


def linear_table(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices ``i0, i1`` and float32 weights ``w0, w1`` of each output index, as torch's CPU kernel has them."""
    o = np.arange(n_out)
    if n_in == n_out:  # torch copies
        return o, o, np.ones(n_out, _F32), np.zeros(n_out, _F32)
    scale = _F32(n_in) / _F32(n_out)
    src = fma32(np.full(n_out, scale, _F32), (o + 0.5).astype(_F32), np.full(n_out, -0.5, _F32))
    src = np.maximum(src, _F32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    w1 = np.clip(src - i0.astype(_F32), _F32(0), _F32(1)).astype(_F32)
    i1 = i0 + (i0 < n_in - 1)
    return i0, i1, (_F32(1) - w1).astype(_F32), w1


@functools.lru_cache(maxsize=64)
def _checked_table(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """:func:`linear_table`, or ``None`` where a one-axis torch interpolation shows other weights."""
    i0, i1, w0, w1 = linear_table(n_in, n_out)
    eye = torch.zeros((1, n_in, n_in, 1, 1))
    eye[0, torch.arange(n_in), torch.arange(n_in)] = 1
    seen = F.interpolate(eye, size=(n_out, 1, 1), mode="trilinear", align_corners=False)[0, :, :, 0, 0].numpy()
    o = np.arange(n_out)
    expected = np.zeros((n_in, n_out), _F32)
    expected[i1, o] = w1
    same = i0 == i1
    expected[i0[~same], o[~same]] = w0[~same]
    expected[i0[same], o[same]] = fma32(w0[same], np.ones(int(same.sum()), _F32), w1[same])
    return (i0, i1, w0, w1) if np.array_equal(expected, seen) else None


def _exact_values(
    pred: np.ndarray, tables: Sequence[tuple[np.ndarray, ...]], where: tuple[np.ndarray, ...]
) -> np.ndarray:
    """Torch's float32 trilinear values at output voxels ``where`` (index arrays), computed as its kernel does."""
    (z0, z1, d0, d1), (y0, y1, h0, h1), (x0, x1, w0, w1) = (
        tuple(t[i] for t in table) for table, i in zip(tables, where)
    )
    p = pred

    def along_x(iz: np.ndarray, iy: np.ndarray) -> np.ndarray:
        return fma32(w0, p[iz, iy, x0].astype(_F32), (w1 * p[iz, iy, x1].astype(_F32)).astype(_F32))

    def along_y(iz: np.ndarray) -> np.ndarray:
        return fma32(h0, along_x(iz, y0), (h1 * along_x(iz, y1)).astype(_F32))

    return fma32(d0, along_y(z0), (d1 * along_y(z1)).astype(_F32))


def _region_values(pred: np.ndarray, size: Sequence[int], region: BBox) -> np.ndarray | None:
    """The thresholded upsampling over ``region``, or ``None`` where the replica is not known to match torch."""
    found = [_checked_table(n, s) for n, s in zip(pred.shape, size)]
    if any(t is None for t in found) or not _replica_matches_torch():
        return None
    tables = [tuple(a[lo:hi] for a in t) for t, (lo, hi) in zip(found, region) if t is not None]
    p = np.asarray(pred, dtype=bool)
    # The 2x2x2 block each output voxel reads, as 8 bits, gathered through each axis' first index: 0 (nothing
    # set) is below 0.5, 255 (all set) above it; only the voxels in between need a value.
    # Only the coarse voxels the region reads (at zoom 4 a crop reaching past the image reads a fraction).
    reads = tuple((int(t[0].min()), int(t[1].max()) + 1) for t in tables)
    firsts = [t[0] - lo for t, (lo, _) in zip(tables, reads)]
    by_z = _block_codes(p[bbox_to_slices(reads)]).take(firsts[0], 0)
    out = np.empty(bbox_shape(region), bool)
    plane = out.shape[1] * out.shape[2]
    step = max(1, SLAB_VOXELS // plane)

    def slab(z: int) -> None:  # slabs keep the temporaries small and in cache, and run on several threads
        code = by_z[z : z + step].take(firsts[1], 1).take(firsts[2], 2)
        part = out[z : z + step]
        np.equal(code, 255, out=part)
        flat = np.flatnonzero((code + np.uint8(1)) > 1)  # neither 0 nor 255 (uint8 wraps 255 to 0)
        if not flat.size:
            return
        where = np.unravel_index(flat, code.shape)
        where = (where[0] + z, where[1], where[2])
        value = _value_from_code(code.ravel()[flat], *(t[3][i] for t, i in zip(tables, where)))
        decided = value >= 0.5
        near = np.flatnonzero(np.abs(value - 0.5) < NEAR_HALF)
        if near.size:
            decided[near] = _exact_values(p, tables, tuple(w[near] for w in where)) >= 0.5
        part.ravel()[flat] = decided

    run_parts(slab, range(0, out.shape[0], step))  # each slab writes only its own part of ``out``
    return out


def _block_codes(p: np.ndarray) -> np.ndarray:
    """Per input voxel k: bit ``4 dz + 2 dy + dx`` is ``p[k + (dz, dy, dx)]``, the last index along an axis repeated."""

    def shifted(a: np.ndarray, axis: int) -> np.ndarray:  # a[k + 1] along axis, the last index repeated
        n = a.shape[axis]
        return np.asarray(a.take(np.minimum(np.arange(1, n + 1), n - 1), axis))

    code = np.zeros(p.shape, np.uint8)
    z = p.astype(np.uint8)
    for dz in (0, 1):
        y = z
        for dy in (0, 1):
            x = y
            for dx in (0, 1):
                code |= x << np.uint8(4 * dz + 2 * dy + dx)
                x = shifted(x, 2)
            y = shifted(y, 1)
        z = shifted(z, 0)
    return code


def _value_from_code(code: np.ndarray, wz: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """Trilinear values (float64, not torch's rounding) of 2x2x2 blocks given as bit codes and upper weights."""
    wz, wy, wx = (np.asarray(w, np.float64) for w in (wz, wy, wx))

    def bit(i: int) -> np.ndarray:
        return np.asarray((code >> np.uint8(i)) & np.uint8(1), np.float64)

    def lerp(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
        return np.asarray(a + w * (b - a))

    rows = [lerp(bit(4 * dz + 2 * dy), bit(4 * dz + 2 * dy + 1), wx) for dz in (0, 1) for dy in (0, 1)]
    return lerp(lerp(rows[0], rows[1], wy), lerp(rows[2], rows[3], wy), wz)


@functools.lru_cache(maxsize=1)
def _replica_matches_torch() -> bool:
    """Once per process: the replica gives torch's exact float32 values on a small random mask."""
    rng = np.random.default_rng(0)
    pred = rng.random((9, 10, 11)) > 0.5
    size = (27, 23, 40)  # ratios 1/3, 10/23, 11/40: inexact weights, ties near 0.5
    tables = [linear_table(n, s) for n, s in zip(pred.shape, size)]
    where = tuple(a.ravel() for a in np.indices(size))
    mine = _exact_values(pred, tables, where).reshape(size)
    theirs = resample_trilinear(pred.astype(np.float32), size).numpy()
    return bool(np.array_equal(mine, theirs))


def upsample_mask_region(pred: np.ndarray, size: Sequence[int], region: BBox | None = None) -> np.ndarray:
    """``F.interpolate(pred, size, trilinear) >= 0.5`` over ``region`` of the output (default: all of it).

    ``pred`` is a 0/1 array; the result is a bool array of the region's shape, bit-identical to
    thresholding the full torch interpolation and cropping it, without computing the rest.
    """
    box = tuple((0, s) for s in size) if region is None else region
    if bbox_is_empty(box) or not bbox_inside(box, size):
        raise ValueError(f"region {box} is not a non-empty part of the output {tuple(size)}")
    if pred.shape == tuple(size):
        return np.array(pred, dtype=bool)[bbox_to_slices(box)]
    out = _region_values(np.asarray(pred), size, box)
    if out is None:
        out = upsample_mask(pred, size)[bbox_to_slices(box)]
    assert out.shape == bbox_shape(box)
    return out
