"""The one device thread: every engine run of every session, one at a time, first come first served.

Requests that may run the engine (a prompt with ``run_prediction``, ``predict``, a refined
initial segmentation) hand their work to :meth:`DeviceQueue.run` and wait; undo, redo, reset,
``set_image`` preprocessing and response compression stay on the request's own thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .observe import Metrics

T = TypeVar("T")


class DeviceQueue:
    """A single-worker FIFO executor that counts its queue and times its runs."""

    def __init__(self, metrics: Metrics):
        self._metrics = metrics
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._queued = 0

    @property
    def length(self) -> int:
        """Runs submitted and not finished (waiting, plus the one running)."""
        return self._queued

    def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the device thread after every run queued before it; its result or exception."""

        def job() -> T:
            start = time.perf_counter()
            try:
                return fn()
            finally:
                self._metrics.prediction(time.perf_counter() - start)

        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nninteractive-device")
            pool = self._pool
            self._queued += 1
        try:
            return pool.submit(job).result()
        finally:
            with self._lock:
                self._queued -= 1

    def close(self) -> None:
        """Cancel queued runs and let the thread end (a run in progress finishes on its own); a later run starts a new one."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["DeviceQueue"]
