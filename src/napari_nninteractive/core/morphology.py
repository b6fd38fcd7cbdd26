"""Binary opening with a cubic window and replicated edges, on bit-packed rows.

AutoZoom opens the change mask of a zoomed prediction with a 5^3 window (spec 5) before planning
refinement patches; for a large object that mask spans tens of millions of voxels. Packing each row
into 64-bit words (one bit per voxel, little-endian, the row's two ends replicated into padding bits)
lets every min/max step along z and y work on a word per 64 voxels, and along x on shifted words.
The result equals ``scipy.ndimage`` minimum then maximum filtering with ``mode="nearest"`` exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

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


__all__ = ["binary_opening_nearest"]
