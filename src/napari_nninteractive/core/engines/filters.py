"""Gaussian filters of the weight-free engine on several threads, equal to scipy's to the bit.

``scipy.ndimage`` filters a separable Gaussian one axis at a time, each output line from its input
line alone, and lets go of the GIL meanwhile. Cutting the array across another axis into one chunk
per thread and filtering the chunks at once therefore computes every line as scipy does, in the same
order of axes, in about half the time on 2 cores. Small arrays run in one piece.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage

#: Arrays smaller than this run in one piece (threads cost more than they save).
MIN_THREADED_VOXELS = 1 << 18


def _threads() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _filter1d(
    data: np.ndarray, out: np.ndarray, sigma: float, axis: int, order: int, pool: ThreadPoolExecutor | None
) -> None:
    """``gaussian_filter1d(data, sigma, axis, order, output=out)``; ``data`` may be ``out`` (scipy buffers lines)."""
    if pool is None or data.ndim < 2:
        ndimage.gaussian_filter1d(data, sigma, axis, order, output=out)
        return
    split = max((a for a in range(data.ndim) if a != axis), key=lambda a: data.shape[a])
    n, k = data.shape[split], _threads()
    edges = [i * n // k for i in range(k + 1)]
    parts = [
        tuple(slice(lo, hi) if a == split else slice(None) for a in range(data.ndim))
        for lo, hi in itertools.pairwise(edges)
        if hi > lo
    ]
    list(pool.map(lambda sl: ndimage.gaussian_filter1d(data[sl], sigma, axis, order, output=out[sl]), parts))


def _gaussian(
    data: np.ndarray, sigma: float, orders: list[int], out: np.ndarray, pool: ThreadPoolExecutor | None
) -> None:
    """scipy's ``gaussian_filter(data, sigma, orders, output=out)``: one axis after the other, in place after the first."""
    source = data
    for axis, order in enumerate(orders):
        _filter1d(source, out, sigma, axis, order, pool)
        source = out


def _pool(size: int) -> ThreadPoolExecutor | None:
    threads = _threads()
    return ThreadPoolExecutor(threads) if threads > 1 and size >= MIN_THREADED_VOXELS else None


def gaussian_filter(data: np.ndarray, sigma: float) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(data, sigma)`` (output in ``data``'s dtype, reflect mode, truncate 4)."""
    data = np.asarray(data)
    if sigma <= 1e-15:  # scipy leaves every axis alone: a copy
        return np.array(data, copy=True)
    out = np.empty(data.shape, data.dtype)
    pool = _pool(data.size)
    try:
        _gaussian(data, sigma, [0] * data.ndim, out, pool)
    finally:
        if pool is not None:
            pool.shutdown()
    return out


def gaussian_gradient_magnitude(data: np.ndarray, sigma: float) -> np.ndarray:
    """``scipy.ndimage.gaussian_gradient_magnitude(data, sigma)``: the same sums of squares, in the same order."""
    data = np.asarray(data)
    if sigma <= 1e-15:  # scipy skips the smoothing there: leave that case to it
        result: np.ndarray = ndimage.gaussian_gradient_magnitude(data, sigma)
        return result
    out = np.empty(data.shape, data.dtype)
    pool = _pool(data.size)
    try:
        for axis in range(data.ndim):
            orders = [1 if a == axis else 0 for a in range(data.ndim)]
            if axis == 0:
                _gaussian(data, sigma, orders, out, pool)
                np.multiply(out, out, out)
            else:
                tmp = np.empty(data.shape, data.dtype)
                _gaussian(data, sigma, orders, tmp, pool)
                np.multiply(tmp, tmp, tmp)
                out += tmp
    finally:
        if pool is not None:
            pool.shutdown()
    np.sqrt(out, out, casting="unsafe")
    return out


__all__ = ["gaussian_filter", "gaussian_gradient_magnitude"]
