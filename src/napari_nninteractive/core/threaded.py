"""Bulk array work on several threads, with the values of one thread.

- :func:`copy_into` and :func:`zero`: copies, casts and fills on torch's intra-op threads
  (``torch.set_num_threads``); numpy does them on one. The values are numpy's (a copy is a copy; a
  cast to float32 rounds to nearest in both). Arrays torch cannot view (negative strides,
  read-only, big-endian, dtypes torch does not hold) go through numpy.
- :func:`run_parts`: independent numpy tasks (each writing its own part of an output) on a thread
  pool; numpy and ``scipy.ndimage`` let go of the GIL inside their array operations.

torch is imported only when a tensor is needed, so the weight-free engine can use :func:`run_parts`
without loading it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


def workers() -> int:
    """Threads for bulk work: torch's intra-op thread count where torch is loaded (the user's setting),
    else the CPUs this process may use (at most 8)."""
    if "torch" in sys.modules:
        return max(1, int(sys.modules["torch"].get_num_threads()))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cpus))


def run_parts(task: Callable[[T], None], parts: Sequence[T]) -> None:
    """``task(part)`` for every part, on up to :func:`workers` threads (in this thread when one suffices)."""
    n = min(len(parts), workers())
    if n <= 1:
        for part in parts:
            task(part)
        return
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(task, parts))  # list(): raise a task's exception here


def as_tensor(a: np.ndarray) -> torch.Tensor | None:
    """A tensor sharing ``a``'s memory, or ``None`` where torch cannot view it."""
    if not a.flags.writeable or any(s < 0 for s in a.strides) or not a.dtype.isnative:
        return None
    import torch

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


__all__ = ["as_tensor", "copy_into", "run_parts", "workers", "zero"]
