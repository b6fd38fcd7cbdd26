"""Background work for the widget: loading or connecting a session, and its actions, on napari thread workers.

The session is touched only from the worker thread, one action at a time. Prompts that arrive
while a prediction runs wait in a queue; the next run adds all of them and predicts once, so the
newest state wins. Nothing here touches Qt widgets or layers: results reach the GUI thread
through the worker's ``yielded`` signal, and the widget writes them into layers. A session that
holds resources elsewhere (a remote session's lease) is closed off the GUI thread when it is
replaced (:meth:`SessionRunner.close`, :func:`close_in_background`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from napari.qt.threading import create_worker

from ..core.api import Change, SegmentationSession
from ..core.engines.base import PredictionCancelled, ProgressEvent
from ..core.errors import USER_ERRORS, user_message
from ..core.geometry import bbox_to_slices, nonzero_bbox
from ..core.prompts import Prompt

log = logging.getLogger(__name__)


def close_session(session: object) -> None:
    """Call ``session.close()`` when it has one (a remote session releases its lease); never raises.

    Blocking (a remote session waits up to a few seconds for a server that is gone): call it on a
    worker thread, or use :func:`close_in_background`.
    """
    close = getattr(session, "close", None)
    if not callable(close):
        return
    try:
        close()
    except Exception:  # the session is being dropped: nothing the user can do about it now
        log.warning("closing the session failed", exc_info=True)


def close_in_background(session: object) -> threading.Thread | None:
    """:func:`close_session` on a daemon thread, so the GUI never waits (``None``: nothing to close)."""
    if not callable(getattr(session, "close", None)):
        return None
    thread = threading.Thread(target=close_session, args=(session,), name="nninteractive-close", daemon=True)
    thread.start()
    return thread


def user_errors() -> tuple[type[Exception], ...]:
    """Exceptions that are the user's to fix: shown as a message, never as a traceback."""
    return USER_ERRORS


@dataclass(frozen=True)
class Action:
    """One request: ``kind`` in prompt | predict | undo | redo | reset | mask | next | sync | restore.

    ``tag`` names the object the request belongs to; its :class:`Outcome` carries it back.
    ``restore`` carries ``(mask, prompts, rounds)`` in ``payload``.
    """

    kind: str
    prompt: Prompt | None = None
    run: bool = True
    tag: int = 0
    payload: object = None


@dataclass(frozen=True)
class Outcome:
    """What an action did: its kind and object tag, the session's :class:`~..core.api.Change`, a message.

    ``kind`` is the action's, or ``"cancelled"`` / ``"error"`` (then ``change`` is ``None``). For
    ``next`` the change describes the finished object. ``state`` describes the session after the
    action (undo/redo availability, queued prompts, the current object's history).
    """

    kind: str
    tag: int = 0
    change: Change | None = None
    message: str = ""
    state: Change | None = None


class SessionRunner:
    """Runs session actions on one background worker at a time; never blocks the GUI.

    Parameters
    ----------
    session
        The session (image already set). Owned by the runner from now on.
    on_outcome
        Called on the GUI thread with each :class:`Outcome`.
    on_idle
        Called on the GUI thread when the queue is empty and no worker runs.
    """

    def __init__(
        self,
        session: SegmentationSession,
        on_outcome: Callable[[Outcome], None],
        on_idle: Callable[[], None] = lambda: None,
    ):
        self.session = session
        self.on_outcome = on_outcome
        self.on_idle = on_idle
        self._queue: deque[Action] = deque()
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._running = False
        self._closed = False
        self._session_closed = False
        #: Set once the session is closed after :meth:`close` (a new session on the same server may wait for it).
        self.session_closed = threading.Event()
        self._live_workers = 0  # started workers whose `finished` the GUI thread has not handled
        self.worker = None
        self.last_progress: ProgressEvent | None = None
        #: When the action in flight started (``time.monotonic()``), for the elapsed time the dock shows.
        self.action_started = time.monotonic()
        session.set_run_control(self._record_progress, self._cancel.is_set)

    # ------------------------------------------------------------------ GUI thread

    @property
    def busy(self) -> bool:
        """True while an action runs or its outcomes have not reached the GUI thread yet."""
        return self._running or self._live_workers > 0

    def submit(self, action: Action) -> None:
        """Queue an action; starts a worker if none runs (ignored after :meth:`close`)."""
        with self._lock:
            if self._closed:
                return
            self._queue.append(action)
            if self._running:
                return
            self._running = True
            # what runs now is this action: the dock reads these at once, before the worker starts
            self.last_progress, self.action_started = None, time.monotonic()
        self._live_workers += 1
        self.worker = create_worker(self._work, _start_thread=False)
        self.worker.yielded.connect(self._deliver)
        self.worker.finished.connect(self._finished)
        self.worker.aborted.connect(self._aborted)
        self.worker.start()

    def cancel(self) -> None:
        """Cancel the prediction in flight (its prompts stay queued in the session)."""
        if self._running:
            self._cancel.set()

    @property
    def cancelling(self) -> bool:
        """Cancel was pressed and the action in flight has not stopped yet (the engine stops at its next check:
        before each convolution for the network)."""
        return self._running and self._cancel.is_set()

    def close(self) -> None:
        """Stop: drop queued actions, cancel the one in flight and close the session off the GUI thread.

        The session is closed (:func:`close_session`: a remote session releases its lease) by the
        worker once its action is over, or at once on a daemon thread when none runs; never here.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.clear()
            running = self._running
        self._cancel.set()
        if not running:
            self._close_session(background=True)

    def _close_session(self, background: bool) -> None:
        with self._lock:
            if self._session_closed:
                return
            self._session_closed = True

        def close() -> None:
            try:
                close_session(self.session)
            finally:
                self.session_closed.set()

        if background and callable(getattr(self.session, "close", None)):
            threading.Thread(target=close, name="nninteractive-close", daemon=True).start()
        else:
            close()

    @property
    def closed(self) -> bool:
        return self._closed

    def wait(self, timeout: float = 30.0) -> None:
        """Block until idle (tests and shutdown only; processes Qt events meanwhile)."""
        from qtpy.QtCore import QCoreApplication, QElapsedTimer

        timer = QElapsedTimer()
        timer.start()
        while self.busy and timer.elapsed() < timeout * 1000:
            QCoreApplication.processEvents()

    def _deliver(self, outcome: Outcome) -> None:
        if not self._closed:  # after close, late news belongs to nobody (a new session may be attached)
            self.on_outcome(outcome)

    def _aborted(self) -> None:
        """napari quit the worker (its viewer closes): the generator is left as it is, nothing runs any more."""
        with self._lock:
            self._running = False
            self._queue.clear()
        if self._closed:
            self._close_session(background=True)

    def _finished(self) -> None:
        # signals of one worker arrive in order: every outcome it yielded was handled before this
        self._live_workers -= 1
        if not self.busy:
            self.on_idle()

    # ------------------------------------------------------------------ worker thread

    def _record_progress(self, event: ProgressEvent) -> None:
        self.last_progress = event

    def _take(self) -> list[Action] | None:
        with self._lock:
            if self._closed or not self._queue:
                self._running = False
                return None
            first = self._queue.popleft()
            batch = [first]
            while (
                first.kind == "prompt"
                and self._queue
                and self._queue[0].kind == "prompt"
                and self._queue[0].tag == first.tag
            ):
                batch.append(self._queue.popleft())
            return batch

    def _work(self):
        try:
            yield from self._actions()
        finally:
            if self._closed:  # closed while this worker ran: it closes the session (on its thread)
                self._close_session(background=False)

    def _actions(self):
        s = self.session
        while (batch := self._take()) is not None:
            self._cancel.clear()
            self.last_progress = None
            self.action_started = time.monotonic()
            kind, tag = batch[0].kind, batch[0].tag
            try:
                if kind in ("prompt", "mask"):  # consecutive prompts of one object: one prediction
                    change = s.add_prompts([a.prompt for a in batch], run=any(a.run for a in batch))
                elif kind == "predict":
                    change = s.predict()
                elif kind == "undo":
                    change = s.undo()
                elif kind == "redo":
                    change = s.redo()
                elif kind == "reset":
                    change = s.reset_object()
                elif kind == "next":  # hands back the finished object's voxels and history
                    change = s.next_object()
                elif kind == "restore":
                    s.next_object()
                    change = s.restore_object(*batch[0].payload)
                elif kind == "sync":  # the whole object, e.g. for a re-created output layer
                    mask = s.read_mask()
                    box = nonzero_bbox(mask)
                    values = None if box is None else mask[bbox_to_slices(box)]
                    change = Change(box, values, None)
                else:
                    raise ValueError(f"unknown action {kind!r}")
            except PredictionCancelled:
                yield self._failed(
                    "cancelled", tag, "Prediction cancelled; the mask is unchanged and the prompts stay queued."
                )
                continue
            except user_errors() as exc:
                yield self._failed("error", tag, user_message(exc))
                continue
            except MemoryError:
                yield self._failed(
                    "error", tag, "Out of memory during the prediction; close other programs or use a smaller image."
                )
                continue
            except Exception as exc:  # a bug: report it, and keep the runner alive for the next action
                log.exception("the %s action failed", kind)
                yield self._failed(
                    "error",
                    tag,
                    f"Unexpected error ({type(exc).__name__}: {exc}); the mask is unchanged. This is a bug in "
                    "napari-nninteractive: please report it with the steps that led to it (details in napari's log).",
                )
                continue
            state = s.state() if kind in ("next", "sync") else change
            yield Outcome(kind, tag, change, " ".join(change.notices), state)

    def _failed(self, kind: str, tag: int, message: str) -> Outcome:
        try:
            state = self.session.state()
        except Exception:
            log.debug("no session state after a failed action", exc_info=True)
            state = None
        return Outcome(kind, tag, None, message, state)


def load_session_worker(make_session: Callable[[], SegmentationSession], volume: np.ndarray):
    """A worker (not started) that makes a session and hands it ``volume``.

    ``make_session`` builds it: a local :class:`~..core.session.Session` around an engine (loading the
    weights), or a :class:`~..core.remote.client.RemoteSession` (claiming a lease on a server). Its
    ``returned`` signal carries ``(session, None)``, or ``(None, error)`` with the
    :class:`~..core.errors.UserError` (or ``MemoryError``) for a problem the user can fix (wrong
    folder, unusable image, a checkpoint that would run code, a server that is down or full, a
    wrong API key, an image the server refuses, ...). A session made but not handed over is closed.
    """

    def work():
        session = None
        try:
            session = make_session()
            session.set_image(volume)
        except user_errors() as exc:
            close_session(session)
            return None, exc
        except MemoryError:
            close_session(session)
            return None, MemoryError("Out of memory while loading; close other programs or use a smaller image.")
        except BaseException:
            close_session(session)
            raise
        return session, None

    return create_worker(work, _start_thread=False)
