"""Background work for the widget: model loading and session actions on napari thread workers.

The session is touched only from the worker thread, one action at a time. Prompts that arrive
while a prediction runs wait in a queue; the next run adds all of them and predicts once, so the
newest state wins. Nothing here touches Qt widgets or layers: results reach the GUI thread
through the worker's ``yielded`` signal, and the widget writes them into layers.
"""

from __future__ import annotations

import logging
import threading
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
from ..core.session import Session

log = logging.getLogger(__name__)


def user_errors() -> tuple[type[Exception], ...]:
    """Exceptions that are the user's to fix: shown as a message, never as a traceback."""
    return USER_ERRORS


@dataclass(frozen=True)
class Action:
    """One request: ``kind`` in prompt | predict | undo | redo | reset | mask | next | sync | restore.

    ``tag`` names the object the request belongs to; its :class:`Outcome` carries it back.
    ``restore`` carries ``(mask, prompts)`` in ``payload``.
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
        self._live_workers = 0  # started workers whose `finished` the GUI thread has not handled
        self.worker = None
        self.last_progress: ProgressEvent | None = None
        session.set_run_control(self._record_progress, self._cancel.is_set)

    # ------------------------------------------------------------------ GUI thread

    @property
    def busy(self) -> bool:
        """True while an action runs or its outcomes have not reached the GUI thread yet."""
        return self._running or self._live_workers > 0

    def submit(self, action: Action) -> None:
        """Queue an action; starts a worker if none runs."""
        with self._lock:
            self._queue.append(action)
            if self._running:
                return
            self._running = True
        self._live_workers += 1
        self.worker = create_worker(self._work, _start_thread=False)
        self.worker.yielded.connect(self.on_outcome)
        self.worker.finished.connect(self._finished)
        self.worker.start()

    def cancel(self) -> None:
        """Cancel the prediction in flight (its prompts stay queued in the session)."""
        if self._running:
            self._cancel.set()

    def wait(self, timeout: float = 30.0) -> None:
        """Block until idle (tests and shutdown only; processes Qt events meanwhile)."""
        from qtpy.QtCore import QCoreApplication, QElapsedTimer

        timer = QElapsedTimer()
        timer.start()
        while self.busy and timer.elapsed() < timeout * 1000:
            QCoreApplication.processEvents()

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
            if not self._queue:
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
        s = self.session
        while (batch := self._take()) is not None:
            self._cancel.clear()
            self.last_progress = None
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
            state = s.state() if kind in ("next", "sync") else change
            yield Outcome(kind, tag, change, " ".join(change.notices), state)

    def _failed(self, kind: str, tag: int, message: str) -> Outcome:
        try:
            state = self.session.state()
        except Exception:
            log.debug("no session state after a failed action", exc_info=True)
            state = None
        return Outcome(kind, tag, None, message, state)


def load_session_worker(make_engine: Callable[[], object], volume: np.ndarray):
    """A worker (not started) that builds the engine and a session holding ``volume``.

    Its ``returned`` signal carries ``(session, None)``, or ``(None, error)`` with the
    :class:`~.core.errors.UserError` (or ``MemoryError``) for a problem the user can fix (wrong
    folder, unusable image, a checkpoint that would run code, ...).
    """

    def work():
        try:
            session = Session(make_engine())
            session.set_image(volume)
        except user_errors() as exc:
            return None, exc
        except MemoryError:
            return None, MemoryError("Out of memory while loading; close other programs or use a smaller image.")
        return session, None

    return create_worker(work, _start_thread=False)
