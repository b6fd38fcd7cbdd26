"""6-connected binary dilation and erosion by shifted ORs, equal to ``scipy.ndimage``'s to the voxel.

scipy's ``binary_dilation`` / ``binary_erosion`` with their default structure (the faces-only
cross) visit every voxel through a generic structuring-element loop; on the bounding box of a
large organ's band (millions of voxels) that took 40-50 ms a call. The same result is the mask
OR-ed with itself shifted by one voxel along each axis in both directions: a dozen whole-array
passes of numpy, about ten times faster.
"""

from __future__ import annotations

import numpy as np


def _along(ndim: int, axis: int, part: slice) -> tuple[slice, ...]:
    return tuple(part if a == axis else slice(None) for a in range(ndim))


def dilate(mask: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``ndimage.binary_dilation(mask)`` (cross structure, one iteration, nothing outside the array).

    ``out``: a boolean array of ``mask``'s shape to write into, not ``mask`` itself; returned.
    """
    mask = np.asarray(mask, dtype=bool)
    out = np.empty(mask.shape, bool) if out is None else out
    assert out is not None
    np.copyto(out, mask)
    for axis in range(mask.ndim):
        if mask.shape[axis] < 2:
            continue
        head, tail = _along(mask.ndim, axis, slice(0, -1)), _along(mask.ndim, axis, slice(1, None))
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
                out[_along(mask.ndim, axis, slice(0, 1))] = False
                out[_along(mask.ndim, axis, slice(-1, None))] = False
    return out


__all__ = ["dilate", "erode"]
