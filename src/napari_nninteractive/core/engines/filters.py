"""Gaussian filters of the weight-free engine on several threads, equal to scipy's to the bit.

``scipy.ndimage`` filters a separable Gaussian one axis at a time, each output line from its input
line alone, and lets go of the GIL meanwhile. Cutting the array across another axis into one chunk
per thread and filtering the chunks at once therefore computes every line as scipy does, in the same
order of axes, in about half the time on 2 cores (:func:`..threaded.run_parts`). Small arrays run
in one piece.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import ndimage

from ..geometry import along
from ..lazy import ImageArray
from ..threaded import run_parts, workers
from . import scratch

#: Arrays smaller than this run in one piece (threads cost more than they save).
MIN_THREADED_VOXELS = 1 << 18


def _filter1d(data: np.ndarray, out: np.ndarray, sigma: float, axis: int, order: int) -> None:
    """``gaussian_filter1d(data, sigma, axis, order, output=out)``; ``data`` may be ``out`` (scipy buffers lines)."""
    k = workers() if data.size >= MIN_THREADED_VOXELS and data.ndim > 1 else 1
    split = max((a for a in range(data.ndim) if a != axis), key=lambda a: data.shape[a], default=axis)
    edges = [i * data.shape[split] // k for i in range(k + 1)]
    parts = [along(data.ndim, split, slice(lo, hi)) for lo, hi in itertools.pairwise(edges) if hi > lo]
    run_parts(lambda sl: ndimage.gaussian_filter1d(data[sl], sigma, axis, order, output=out[sl]), parts)


def _gaussian(data: np.ndarray, sigma: float, orders: list[int], out: np.ndarray) -> None:
    """scipy's ``gaussian_filter(data, sigma, orders, output=out)``: one axis after the other, in place after the first."""
    source = data
    for axis, order in enumerate(orders):
        _filter1d(source, out, sigma, axis, order)
        source = out


def gaussian_filter(data: np.ndarray, sigma: float, out: np.ndarray | None = None) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(data, sigma)`` (output in ``data``'s dtype, reflect mode, truncate 4).

    ``out``: where to write it (``data``'s shape and dtype, or float32 for booleans and integers of
    up to 16 bits: the same values as from a float32 copy; not overlapping ``data``); returned.
    """
    data = np.asarray(data)
    out = np.empty(data.shape, data.dtype) if out is None else out
    if sigma <= 1e-15:  # scipy leaves every axis alone: a copy
        np.copyto(out, data)
        return out
    _gaussian(data, sigma, [0] * data.ndim, out)
    return out


def gaussian_gradient_magnitude(data: np.ndarray, sigma: float, out: np.ndarray | None = None) -> np.ndarray:
    """``scipy.ndimage.gaussian_gradient_magnitude(data, sigma)``: the same sums of squares, in the same order.

    ``out``: where to write it (``data``'s shape and dtype, not overlapping ``data``); returned. The
    second axis's and later terms go through a scratch array (:mod:`.scratch`).
    """
    data = np.asarray(data)
    if sigma <= 1e-15:  # scipy skips the smoothing there: leave that case to it
        result: np.ndarray = ndimage.gaussian_gradient_magnitude(data, sigma)
        if out is None:
            return result
        np.copyto(out, result)
        return out
    out = np.empty(data.shape, data.dtype) if out is None else out
    spare = scratch.empty("filters.gradient_term", data.shape, data.dtype) if data.ndim > 1 else out
    for axis in range(data.ndim):
        part = out if axis == 0 else spare
        _gaussian(data, sigma, [1 if a == axis else 0 for a in range(data.ndim)], part)
        np.multiply(part, part, part)
        if axis:
            out += part
    np.sqrt(out, out, casting="unsafe")
    return out


#: Intensities the float32 solvers take at most: from about 1e19 the squared derivatives of the gradient
#: overflow float32 (masks go wrong, with RuntimeWarnings); this leaves a hundredfold margin.
MAX_INTENSITY = 1e17


def require_float32_range(image: ImageArray) -> None:
    """An :class:`~..encoding.ImageError` for an in-memory image whose values the float32 solvers cannot hold.

    Only floats and 64-bit integers can reach that far; a lazily read image is not read for it.
    """
    from ..encoding import ImageError  # an image check, made where the limit lives

    dtype = np.dtype(image.dtype)
    if not isinstance(image, np.ndarray) or not (dtype.kind == "f" or (dtype.kind in "iu" and dtype.itemsize == 8)):
        return
    peak = max(abs(float(image.max())), abs(float(image.min())))
    if peak <= MAX_INTENSITY:
        return
    how = "by a large power of ten"  # beyond float64 (a long double)
    if math.isfinite(peak):
        k = math.ceil(math.log10(peak / MAX_INTENSITY))
        while peak / 10.0**k > MAX_INTENSITY:  # log10 can round a power of ten down
            k += 1
        how = f"by 1e{k} or more"
    raise ImageError(
        f"The image's intensities reach {peak:.4g}; this engine computes in float32 and needs them within "
        f"±{MAX_INTENSITY:.0e}. Rescale the image (divide it {how}) and load it again."
    )


__all__ = ["MAX_INTENSITY", "gaussian_filter", "gaussian_gradient_magnitude", "require_float32_range"]
