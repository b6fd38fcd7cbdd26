"""Images read on demand (dask, zarr, memory maps, HDF5): only the voxels a step needs are loaded.

:class:`LazyImage` gives any array-like with ``shape``, ``dtype`` and basic slicing the
channel-first ``(C, Z, Y, X)`` view the engines index; every index returns a NumPy array.
Whole-image passes (checks, normalisation statistics) go through :func:`slabs`, a few Z slices
at a time, so an image larger than memory never has to fit in it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, SupportsIndex

import numpy as np

from .geometry import BBox

SLAB_BYTES = 64 * 2**20  # bytes read per step of a whole-image pass

#: One index of one axis, and an index of a whole :class:`LazyImage`.
AxisIndex = SupportsIndex | slice
Index = AxisIndex | tuple[AxisIndex, ...]


class ArraySource(Protocol):
    """What :class:`LazyImage` reads: an array-like with ``shape``, ``dtype`` and basic slicing."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> Any: ...

    def __getitem__(self, key: Any, /) -> Any: ...


def is_lazy(image: object) -> bool:
    """True for array-likes that are not NumPy arrays (dask, zarr, h5py, ...)."""
    return not isinstance(image, np.ndarray) and all(hasattr(image, a) for a in ("shape", "dtype", "__getitem__"))


class LazyImage:
    """Channel-first view ``(C, Z, Y, X)`` of a lazily read ``(Y, X)``, ``(Z, Y, X)`` or ``(C, Z, Y, X)`` array."""

    def __init__(self, source: ArraySource):
        self.source = source
        nd = len(source.shape)
        if nd not in (2, 3, 4):
            raise ValueError(f"a lazily read image needs 2 to 4 axes, not {nd}")
        self._lead = 4 - nd  # axes added in front: (C) for 3-D, (C, Z) for 2-D
        self.shape = (1,) * self._lead + tuple(int(s) for s in source.shape)
        self.dtype = np.dtype(source.dtype)
        self.ndim = 4

    def __getitem__(self, key: Index) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (4 - len(key))
        added, inner = key[: self._lead], key[self._lead :]
        values = np.asarray(self.source[inner])
        for k in reversed(added):  # the added axes have length 1
            if isinstance(k, slice):
                values = values[None][k]
            elif int(k) not in (0, -1):
                raise IndexError(f"index {k} is out of range for an axis of length 1")
        return values

    def __repr__(self) -> str:
        return f"LazyImage({type(self.source).__name__}, shape={self.shape}, dtype={self.dtype})"


#: A channel-first ``(C, Z, Y, X)`` image as the engines take it: in memory, or read on demand.
ImageArray = np.ndarray | LazyImage


def slabs(image: ImageArray, box: BBox | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(z0, values)`` over ``box`` (whole image by default) of a ``(C, Z, Y, X)`` image, ``SLAB_BYTES`` at a time.

    ``values`` is ``(C, dz, *box[1:])`` as NumPy; ``z0`` is its first Z in the image.
    """
    shape = image.shape[1:]
    box = tuple((0, n) for n in shape) if box is None else box
    (z_lo, z_hi), rest = box[0], box[1:]
    per_z = max(1, image.shape[0] * int(np.prod([hi - lo for lo, hi in rest])) * np.dtype(image.dtype).itemsize)
    dz = max(1, SLAB_BYTES // per_z)
    tail = tuple(slice(lo, hi) for lo, hi in rest)
    for z0 in range(z_lo, z_hi, dz):
        yield z0, np.asarray(image[(slice(None), slice(z0, min(z0 + dz, z_hi))) + tail])


WORK_BYTES_PER_VOXEL = 4  # the session's mask (1), a uint16 labels layer (2), the scribble layer (1)


def available_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``), or ``None`` where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def working_memory_problem(shape: Sequence[int], image_in_memory: bool) -> str | None:
    """Why annotating an image of spatial ``shape`` would not fit in memory, or ``None`` when it fits."""
    free = available_memory()
    voxels = int(np.prod([int(s) for s in shape]))
    need = voxels * WORK_BYTES_PER_VOXEL
    if free is None or need < free:
        return None
    where = "" if image_in_memory else "; the image itself is read on demand"
    return (
        f"This image has {voxels / 1e9:.2f} billion voxels: annotating it needs about {need / 2**30:.1f} GiB of "
        f"working memory (masks and labels, {WORK_BYTES_PER_VOXEL} bytes per voxel{where}) but only "
        f"{free / 2**30:.1f} GiB are free. Open a cropped region or a lower-resolution level of the image "
        "(nothing was changed)."
    )


def as_channel_first(image: np.ndarray) -> ImageArray:
    """``(Z, Y, X)`` -> ``(1, Z, Y, X)``; ``(Y, X)`` -> ``(1, 1, Y, X)``; ``(C, Z, Y, X)`` kept.

    No copy is made; an array read on demand (dask, zarr, ...) becomes a
    :class:`LazyImage` and is never loaded whole. Raises :class:`~.encoding.ImageError` for other
    shapes or non-numeric data.
    """
    from .encoding import ImageError  # encoding imports this module

    lazy = is_lazy(image)
    arr = image if lazy else np.asarray(image)
    if np.dtype(arr.dtype).kind not in "biuf":
        raise ImageError(f"The image has dtype {arr.dtype}; a numeric (integer or float) image is needed.")
    if lazy and len(arr.shape) in (2, 3, 4):
        return LazyImage(arr)
    if arr.ndim == 2:
        return arr[None, None]
    if arr.ndim == 3:
        return arr[None]
    if arr.ndim == 4:
        return arr
    raise ImageError(
        f"The image has {len(arr.shape)} axes {tuple(arr.shape)}; pass (z, y, x), (channel, z, y, x) or a 2-D (y, x) slice."
    )


__all__ = [
    "SLAB_BYTES",
    "ArraySource",
    "ImageArray",
    "LazyImage",
    "as_channel_first",
    "available_memory",
    "is_lazy",
    "slabs",
    "working_memory_problem",
]
