"""Scratch arrays for the weight-free engine's large temporaries, kept by the engine and reused.

Memory fresh from the operating system costs a page fault per page when it is first written. For
the region of a large organ (a liver's box solves about 14 M voxels, a click on it up to the whole
35 M-voxel CT) the temporaries of one solve come to several hundred megabytes, and on the
project's 2-core VM their page faults took as long as the computation itself (about 1 s of a 2 s
box). Big arrays are mapped fresh by the allocator on
every request, so it does not recycle them; a :class:`Scratch` does: each named temporary lives in a
buffer, grown when a larger one is asked for and reused by the next solve.

An engine owns one :class:`Scratch` and solves inside ``with scratch.using(pool):``; the functions
it calls take their big temporaries with :func:`empty` / :func:`full`, which outside such a block
(or below :data:`MIN_BYTES`) are ordinary allocations. Rules for those functions: a scratch array is
valid until the same name is asked for again, so it must not outlive the function that took it
(never return one to a caller that keeps it), and two arrays alive at the same time need two names.
A pool keeps at most :data:`MAX_KEPT_BYTES`.

Arrays allocated during a solve (new scratch buffers too) are faulted in with ordinary pages
(:func:`small_pages`): numpy advises the kernel to back large arrays with 2 MB huge pages, and on
the project's VM the first click on a liver-sized object (about 600 MB of fresh memory) took
1.75-2.9 s that way and 1.1-1.4 s with ordinary pages. The price is paid warm: a box on the liver
takes 0.93-0.97 s instead of 0.87-0.94 s (huge pages cost fewer address translations). Huge pages
for the kept buffers alone gave the best warm and first-box times but first clicks of 1.2-2.1 s,
so the steadier choice was taken.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt

#: Requests below this many bytes get an ordinary new array (the allocator recycles small blocks itself).
MIN_BYTES = 4 << 20

#: Bytes one :class:`Scratch` keeps at most; a request beyond that gets an ordinary array.
MAX_KEPT_BYTES = 2 << 30

_active = threading.local()


class Scratch:
    """The buffers one engine keeps for its temporaries (the largest request per name).

    It keeps at most ``max_bytes`` (default :data:`MAX_KEPT_BYTES`): a buffer that would go beyond
    is handed out once and not kept, so a very large region costs its page faults again rather
    than memory the machine may not have.
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        self._buffers: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self.max_bytes = MAX_KEPT_BYTES if max_bytes is None else max_bytes

    def take(self, name: str, nbytes: int) -> np.ndarray:
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < nbytes:
            self._buffers.pop(name, None)  # let the smaller one go first
            buffer = np.empty(nbytes, np.uint8)
            if self.kept_bytes + nbytes <= self.max_bytes:
                self._buffers[name] = buffer
        return buffer[:nbytes]

    @property
    def kept_bytes(self) -> int:
        return sum(b.nbytes for b in self._buffers.values())

    def release(self) -> None:
        """Drop the buffers (they are rebuilt by the next large solve)."""
        self._buffers = {}


@contextmanager
def using(pool: Scratch) -> Iterator[None]:
    """Take scratch arrays from ``pool`` in this block (in this thread).

    A pool already in use in another thread is not shared: this block then gets a private one.
    """
    owned = pool._lock.acquire(blocking=False)
    previous = getattr(_active, "pool", None)
    _active.pool = pool if owned else Scratch()
    try:
        yield
    finally:
        _active.pool = previous
        if owned:
            pool._lock.release()


class _PageAdvice:
    """numpy's process-wide huge-page advice, switched off while any :func:`small_pages` block is open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0  # open blocks, in every thread
        self._before = True  # the advice when the first of them opened

    def enter(self, switch: Callable[[bool], object]) -> None:
        with self._lock:
            if not self._inside:
                self._before = bool(switch(False))
            self._inside += 1

    def leave(self, switch: Callable[[bool], object]) -> None:
        with self._lock:
            self._inside -= 1
            if not self._inside:
                switch(self._before)


_page_advice = _PageAdvice()


@contextmanager
def small_pages() -> Iterator[None]:
    """Allocate new arrays without numpy's huge-page advice in this block (all threads), then restore it.

    numpy's switch is process-wide and private (``numpy._core.multiarray._set_madvise_hugepage``,
    also set by the ``NUMPY_MADVISE_HUGEPAGE`` environment variable); where it is missing, this
    does nothing. Other threads' arrays allocated meanwhile get ordinary pages too, which only
    changes how fast they are mapped. Blocks may overlap, nested or in several threads: the
    first to open turns the advice off and the last to close restores what it was then (a change
    made by anyone else meanwhile is undone).
    """
    switch = getattr(_numpy_multiarray(), "_set_madvise_hugepage", None)
    if switch is None:
        yield
        return
    _page_advice.enter(switch)
    try:
        yield
    finally:
        _page_advice.leave(switch)


def _numpy_multiarray() -> object:
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


def empty(name: str, shape: tuple[int, ...], dtype: npt.DTypeLike) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype``: the active pool's buffer ``name``."""
    dt = np.dtype(dtype)
    nbytes = math.prod(shape) * dt.itemsize
    pool: Scratch | None = getattr(_active, "pool", None)
    if pool is None or nbytes < MIN_BYTES:
        return np.empty(shape, dt)
    return pool.take(name, nbytes).view(dt).reshape(shape)


def full(name: str, shape: tuple[int, ...], dtype: npt.DTypeLike, value: float) -> np.ndarray:
    """:func:`empty`, filled with ``value``."""
    out = empty(name, shape, dtype)
    out.fill(value)
    return out
