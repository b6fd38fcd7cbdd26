"""Bulk array copies on torch's intra-op threads.

numpy copies, casts and fills on one thread; torch splits the same element-wise work across every
intra-op thread (``torch.set_num_threads``). The values are those of numpy's (a copy is a copy; a
cast to float32 rounds to nearest in both). Arrays torch cannot view (negative strides, read-only,
big-endian, dtypes torch does not hold) go through numpy.
"""

from __future__ import annotations

import numpy as np
import torch


def as_tensor(a: np.ndarray) -> torch.Tensor | None:
    """A tensor sharing ``a``'s memory, or ``None`` where torch cannot view it."""
    if not a.flags.writeable or any(s < 0 for s in a.strides) or not a.dtype.isnative:
        return None
    try:
        return torch.from_numpy(a)
    except (TypeError, ValueError):  # a dtype torch does not hold
        return None


def copy_into(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` (same shape; cast to ``dst``'s dtype)."""
    src = np.asarray(src)
    d, s = as_tensor(dst), as_tensor(src)
    if d is None or s is None or d.shape != s.shape or np.may_share_memory(dst, src):  # numpy handles overlap
        dst[...] = src
    else:
        d.copy_(s)


def zero(dst: np.ndarray) -> None:
    """``dst[...] = 0``."""
    d = as_tensor(dst)
    if d is None:
        dst[...] = 0
    else:
        d.zero_()


__all__ = ["as_tensor", "copy_into", "zero"]
