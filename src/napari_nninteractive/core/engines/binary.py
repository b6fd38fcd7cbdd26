"""6-connected binary dilation and erosion by shifted ORs, equal to ``scipy.ndimage``'s to the voxel.

scipy's ``binary_dilation`` / ``binary_erosion`` with their default structure (the faces-only
cross) visit every voxel through a generic structuring-element loop; on the bounding box of a
large organ's band (millions of voxels) that took 40-50 ms a call. The same result is the mask
OR-ed with itself shifted by one voxel along each axis in both directions: a dozen whole-array
passes of numpy, about ten times faster.
"""

from __future__ import annotations

import numpy as np

from ..geometry import along


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


__all__ = ["dilate", "erode"]
