"""The session registry: leases, the two clocks, capacity and the reaper.

Each lease token (32 lower-case hex characters from a random UUID, never reused) names one
:class:`Hosted` session. *seen* is stamped by every request that finds its session (except
``/lease_status`` and ``/release``) and *active* by real actions, both when the request starts. A
reaper thread drops, every ``sweep_seconds``, the sessions whose *seen* is older than the liveness
timeout ("dead") or whose *active* is older than the idle timeout ("idle"); unlike the reference
it never drops a session while one of its requests is in flight.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from .config import ServerConfig
from .errors import AtCapacity, LeaseError
from .observe import Metrics, lease_prefix, log_event

log = logging.getLogger(__name__)
S = TypeVar("S")
LEASE_MISSING = "lease token missing"
LEASE_UNKNOWN = "lease expired or unknown"


class Hosted(Generic[S]):
    """One live session: the object, the lock that serializes its actions, its clocks and requests in flight."""

    def __init__(self, token: str, session: S, now: float):
        self.token = token
        self.session = session
        self.lock = threading.Lock()
        self.seen = now
        self.active = now
        self.in_flight = 0


class Registry(Generic[S]):
    """Live sessions by lease token; ``make_session`` builds one per claim."""

    def __init__(
        self,
        config: ServerConfig,
        make_session: Callable[[], S],
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.config = config
        self._make = make_session
        self._metrics = metrics or Metrics()
        self._clock = clock
        self._lock = threading.Lock()
        self._live: dict[str, Hosted[S]] = {}
        self._claiming = 0
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self._live)

    # ------------------------------------------------------------------ leases

    def claim(self) -> Hosted[S]:
        """A new session, or :class:`AtCapacity` when every slot is taken (claims being built count)."""
        limit = self.config.max_sessions
        with self._lock:
            if len(self._live) + self._claiming >= limit:
                raise AtCapacity(f"server is at capacity ({limit} sessions)")
            self._claiming += 1
        try:
            session = self._make()  # outside the lock: building an engine may take a moment
            token = uuid.uuid4().hex
            hosted = Hosted(token, session, self._clock())
            with self._lock:
                self._live[token] = hosted
        finally:
            with self._lock:
                self._claiming -= 1
        log_event("claimed", lease=lease_prefix(token), sessions=len(self._live))
        return hosted

    def release(self, token: str | None) -> None:
        """Drop the session of ``token``; unknown or missing tokens are fine (idempotent)."""
        with self._lock:
            hosted = self._live.pop(token, None) if token else None
        if hosted is not None:
            self._metrics.session_ended("released")
            log_event("released", lease=lease_prefix(token), sessions=len(self._live))

    def peek(self, token: str | None) -> Hosted[S]:
        """The session of ``token`` without stamping a clock, or :class:`LeaseError` (410)."""
        if not token:
            raise LeaseError(LEASE_MISSING)
        with self._lock:
            hosted = self._live.get(token)
        if hosted is None:
            raise LeaseError(LEASE_UNKNOWN)
        return hosted

    @contextmanager
    def use(self, token: str | None, active: bool = False) -> Iterator[Hosted[S]]:
        """The session of ``token`` for one request: stamps *seen* (and *active* for an action), counts it in flight."""
        hosted = self.peek(token)
        with self._lock:
            now = self._clock()
            hosted.seen = now
            if active:
                hosted.active = now
            hosted.in_flight += 1
        try:
            yield hosted
        finally:
            with self._lock:
                hosted.in_flight -= 1

    @contextmanager
    def busy(self, hosted: Hosted[S]) -> Iterator[None]:
        """Count ``hosted`` in flight while work on its behalf runs (even if its request has gone)."""
        with self._lock:
            hosted.in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                hosted.in_flight -= 1

    def touch_active(self, hosted: Hosted[S]) -> None:
        """Stamp *active* (a binary action whose upload has been received and decoded)."""
        with self._lock:
            hosted.active = self._clock()

    def remaining(self, hosted: Hosted[S]) -> float:
        """Seconds left before the idle timeout (0 when it has passed but no sweep has run yet)."""
        return max(0.0, self.config.idle_timeout - (self._clock() - hosted.active))

    # ------------------------------------------------------------------ reaping

    def sweep(self) -> list[tuple[str, str]]:
        """Drop dead and idle sessions that have no request in flight; ``(token, "dead"|"idle")`` each."""
        cfg, dropped = self.config, []
        with self._lock:
            now = self._clock()
            for token, hosted in list(self._live.items()):
                if hosted.in_flight:
                    continue
                if now - hosted.seen > cfg.liveness_timeout:
                    reason = "dead"
                elif now - hosted.active > cfg.idle_timeout:
                    reason = "idle"
                else:
                    continue
                del self._live[token]
                dropped.append((token, reason))
        for token, reason in dropped:
            self._metrics.session_ended(reason)
            log_event("reaped", lease=lease_prefix(token), reason=reason, sessions=len(self._live))
        return dropped

    def start(self) -> None:
        """Start the reaper thread (once)."""
        if self._reaper is None:
            self._stop.clear()
            self._reaper = threading.Thread(target=self._reap, name="nninteractive-reaper", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        while not self._stop.wait(self.config.sweep_seconds):
            try:
                self.sweep()
            except Exception:  # a bug must not stop the reaper for good
                log.exception("the session sweep failed")

    def close(self, timeout: float = 5.0) -> None:
        """Stop the reaper and forget every session."""
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(timeout)
            self._reaper = None
        with self._lock:
            self._live.clear()


__all__ = ["LEASE_MISSING", "LEASE_UNKNOWN", "Hosted", "Registry"]
