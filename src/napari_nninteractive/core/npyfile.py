"""What a ``.npy`` file or ``.npz`` member declares, read from its header before numpy allocates.

A ``.npy`` header states shape and dtype; ``np.load`` allocates that much before reading. For
files from someone else the declared size is compared with what the file really holds first.
"""

from __future__ import annotations

import math
from typing import IO, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.lib.npyio import NpzFile


def read_header(f: IO[bytes]) -> tuple[tuple[int, ...], np.dtype, int] | None:
    """``(shape, dtype, header length)`` of the ``.npy`` data at ``f``'s position, or None if it is not one.

    Errors of the underlying stream (a damaged zip member) propagate.
    """
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            return None
    except ValueError:
        return None
    return tuple(int(s) for s in shape), np.dtype(dtype), f.tell()


def declared_nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


def member_header(npz: NpzFile, key: str) -> tuple[tuple[int, ...], np.dtype, int, int] | None:
    """``(shape, dtype, header length, stored size)`` of the member ``key`` of an open ``np.load`` npz."""
    assert npz.zip is not None, "member_header needs an open npz"  # NpzFile.zip is None once closed
    try:
        info = npz.zip.getinfo(key + ".npy")
    except KeyError:
        return None
    with npz.zip.open(info) as f:
        head = read_header(f)
    return None if head is None else (*head, info.file_size)


__all__ = ["declared_nbytes", "member_header", "read_header"]
