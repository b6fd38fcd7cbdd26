"""What the server tells its operator: structured log lines and Prometheus metrics.

:func:`log_event` writes one JSON object per line to the ``napari_nninteractive.server.events``
logger (requests; sessions claimed, released, reaped). Lines carry at most the first 8
characters of a lease token, and never image data or the API key. :class:`Metrics` counts
requests and prediction times and renders ``GET /metrics`` in the Prometheus text format.
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
import time
from typing import Any

EVENTS = logging.getLogger("napari_nninteractive.server.events")
#: Upper bounds (seconds) of the prediction-latency histogram's buckets.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


def lease_prefix(token: str | None) -> str | None:
    """What logs show of a lease token: its first 8 characters."""
    return None if not token else token[:8]


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One JSON line: ``{"ts": ..., "event": event, **fields}``."""
    if EVENTS.isEnabledFor(level):
        EVENTS.log(level, json.dumps({"ts": round(time.time(), 3), "event": event, **fields}, default=str))


class Metrics:
    """Thread-safe counters for ``/metrics``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int], int] = {}
        self._buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self._latency_count = 0
        self._sessions_ended: dict[str, int] = {}

    def request(self, path: str, status: int) -> None:
        with self._lock:
            key = (path, status)
            self._requests[key] = self._requests.get(key, 0) + 1

    def prediction(self, seconds: float) -> None:
        with self._lock:
            self._buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self._latency_sum += seconds
            self._latency_count += 1

    def session_ended(self, reason: str) -> None:
        with self._lock:
            self._sessions_ended[reason] = self._sessions_ended.get(reason, 0) + 1

    def render(self, sessions: int, max_sessions: int, queue: int) -> str:
        """The Prometheus text exposition of everything counted, plus the gauges given."""
        with self._lock:
            requests = sorted(self._requests.items())
            buckets, total, count = list(self._buckets), self._latency_sum, self._latency_count
            ended = sorted(self._sessions_ended.items())
        out = [
            "# HELP nninteractive_sessions Live sessions.",
            "# TYPE nninteractive_sessions gauge",
            f"nninteractive_sessions {sessions}",
            "# HELP nninteractive_max_sessions Session slots (--max-sessions).",
            "# TYPE nninteractive_max_sessions gauge",
            f"nninteractive_max_sessions {max_sessions}",
            "# HELP nninteractive_device_queue_length Engine runs waiting for or holding the device.",
            "# TYPE nninteractive_device_queue_length gauge",
            f"nninteractive_device_queue_length {queue}",
            "# HELP nninteractive_prediction_seconds Time of one engine run on the device.",
            "# TYPE nninteractive_prediction_seconds histogram",
        ]
        running = 0
        for bound, n in zip((*LATENCY_BUCKETS, float("inf")), buckets):
            running += n
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f'nninteractive_prediction_seconds_bucket{{le="{le}"}} {running}')
        out += [f"nninteractive_prediction_seconds_sum {total:.6f}", f"nninteractive_prediction_seconds_count {count}"]
        out += [
            "# HELP nninteractive_sessions_ended_total Sessions ended, by reason.",
            "# TYPE nninteractive_sessions_ended_total counter",
        ]
        out += [f'nninteractive_sessions_ended_total{{reason="{r}"}} {n}' for r, n in ended]
        out += [
            "# HELP nninteractive_requests_total HTTP requests, by path and status.",
            "# TYPE nninteractive_requests_total counter",
        ]
        out += [f'nninteractive_requests_total{{path="{p}",status="{s}"}} {n}' for (p, s), n in requests]
        return "\n".join(out) + "\n"


__all__ = ["EVENTS", "LATENCY_BUCKETS", "PROMETHEUS", "Metrics", "lease_prefix", "log_event"]
