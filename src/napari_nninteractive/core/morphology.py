"""Binary morphology equal to ``scipy.ndimage``'s to the voxel, faster: 6-connected dilation and erosion
by shifted ORs, and a binary opening with a cubic window and replicated edges on bit-packed rows.

scipy's ``binary_dilation`` / ``binary_erosion`` with their default structure (the faces-only
cross) visit every voxel through a generic structuring-element loop; on the bounding box of a
large organ's band (millions of voxels) that took 40-50 ms a call. The same result is the mask
OR-ed with itself shifted by one voxel along each axis in both directions: a dozen whole-array
passes of numpy, about ten times faster (:func:`dilate`, :func:`erode`).

AutoZoom opens the change mask of a zoomed prediction with a 5^3 window (spec 5) before planning
refinement patches; for a large object that mask spans tens of millions of voxels. Packing each row
into 64-bit words (one bit per voxel, little-endian, the row's two ends replicated into padding bits)
lets every min/max step along z and y work on a word per 64 voxels, and along x on shifted words.
The result equals ``scipy.ndimage`` minimum then maximum filtering with ``mode="nearest"`` exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .geometry import along

_Op = Callable[..., np.ndarray]


def _read_shifted(words: np.ndarray, d: int) -> np.ndarray:
    """Bit ``x`` of the result is bit ``x + d`` of each row (0 where that lies outside the row's words)."""
    out = np.empty_like(words)
    if d > 0:
        np.right_shift(words, np.uint64(d), out=out)
        out[..., :-1] |= words[..., 1:] << np.uint64(64 - d)
    else:
        np.left_shift(words, np.uint64(-d), out=out)
        out[..., 1:] |= words[..., :-1] >> np.uint64(64 + d)
    return out


def _bit(words: np.ndarray, q: int) -> np.ndarray:
    w, j = divmod(q, 64)
    return np.asarray((words[..., w] >> np.uint64(j)) & np.uint64(1))


def _set_bit(words: np.ndarray, q: int, value: np.ndarray) -> None:
    w, j = divmod(q, 64)
    one = np.uint64(1) << np.uint64(j)
    words[..., w] = (words[..., w] & ~one) | (value << np.uint64(j))


def _along_x(words: np.ndarray, r: int, op: _Op) -> np.ndarray:
    out: np.ndarray = words.copy()
    for d in range(-r, r + 1):
        if d:
            op(out, _read_shifted(words, d), out=out)
    return out


def _along(words: np.ndarray, axis: int, r: int, op: _Op) -> np.ndarray:
    n = words.shape[axis]
    padded = words.take(np.clip(np.arange(-r, n + r), 0, n - 1), axis=axis)  # replicated ends
    out = padded.take(range(n), axis=axis)
    for d in range(1, 2 * r + 1):
        op(out, padded.take(range(d, d + n), axis=axis), out=out)
    return out


def binary_opening_nearest(mask: np.ndarray, size: int) -> np.ndarray:
    """Minimum then maximum filter (``size^3``, odd ``size``, replicated edges) of a 3-D bool array."""
    r = size // 2
    nz, ny, nx = mask.shape
    nbits = nx + 2 * r
    rows = np.zeros((nz, ny, -(-nbits // 64) * 8), np.uint8)
    padded = np.pad(np.asarray(mask, bool), ((0, 0), (0, 0), (r, r)), mode="edge")
    rows[..., : -(-nbits // 8)] = np.packbits(padded, axis=-1, bitorder="little")
    words = rows.view(np.uint64)
    words = _along_x(words, r, np.bitwise_and)
    for axis in (0, 1):
        words = _along(words, axis, r, np.bitwise_and)
    for axis in (0, 1):
        words = _along(words, axis, r, np.bitwise_or)
    left, right = _bit(words, r), _bit(words, r + nx - 1)  # replicate the eroded row's ends again
    for q in range(r):
        _set_bit(words, q, left)
        _set_bit(words, r + nx + q, right)
    words = _along_x(words, r, np.bitwise_or)
    bits = np.unpackbits(np.ascontiguousarray(words).view(np.uint8), axis=-1, count=nbits, bitorder="little")
    return np.asarray(bits[..., r : r + nx], dtype=bool)


def dilate(mask: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``ndimage.binary_dilation(mask)`` (cross structure, one iteration, nothing outside the array).

    ``out``: a boolean array of ``mask``'s shape to write into, not ``mask`` itself; returned.
    """
    mask = np.asarray(mask, dtype=bool)
    if out is None:
        out = np.empty(mask.shape, bool)
    np.copyto(out, mask)
    for axis in range(mask.ndim):
        if mask.shape[axis] < 2:
            continue
        head, tail = along(mask.ndim, axis, slice(0, -1)), along(mask.ndim, axis, slice(1, None))
        np.logical_or(out[head], mask[tail], out=out[head])
        np.logical_or(out[tail], mask[head], out=out[tail])
    return out


def erode(mask: np.ndarray, iterations: int = 1, border_value: bool = False) -> np.ndarray:
    """``ndimage.binary_erosion(mask, iterations=iterations, border_value=border_value)`` (cross structure).

    An erosion is the complement of the dilation of the complement, the outside of the array
    counting as ``border_value``: where it is 1 the outside never erodes, where it is 0 the
    outermost layer of every face goes as well.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, not {iterations}")
    mask = np.asarray(mask, dtype=bool)
    out: np.ndarray = mask.copy()
    spare = np.empty(mask.shape, bool)
    for _ in range(iterations):
        np.logical_not(out, out=spare)
        dilate(spare, out=out)
        np.logical_not(out, out=out)
        if not border_value:
            for axis in range(mask.ndim):
                out[along(mask.ndim, axis, 0)] = False
                out[along(mask.ndim, axis, -1)] = False
    return out


__all__ = ["binary_opening_nearest", "dilate", "erode"]
