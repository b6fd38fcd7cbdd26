"""A segmentation session on an nnInteractive server, with the same interface as the local one.

:class:`RemoteSession` implements :class:`~..api.SegmentationSession` over the remote protocol
(:mod:`.protocol`), so the widget, ``nninteractive-segment --server`` and the evaluation run
unchanged on a GPU machine elsewhere::

    with RemoteSession("http://gpu-box:1527", api_key=None) as session:   # key: NN_INTERACTIVE_API_KEY
        session.set_image(volume)
        change = session.add_prompts([Point((40, 100, 120))])
        mask = session.read_mask()

It keeps the object's mask here and pastes the boxes the server sends back; a heartbeat thread
keeps the lease alive while requests run. Several URLs are a pool: the session is claimed from the
first server with a free slot. When the server has forgotten the session (it expired, or the server
restarted), the next operation claims a new one, uploads the image again, seeds it with the current
mask and says that the earlier prompts are gone. Undo goes as deep as the server keeps (one level
on the reference server; unlimited, with redo, on ``nninteractive-serve``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..api import CancelCheck, Capabilities, Change, ProgressCallback
from ..encoding import ImageError
from ..engines.base import PredictionCancelled, ProgressEvent
from ..geometry import BBox, bbox_to_slices, nonzero_bbox, union_bbox
from ..lazy import LazyImage, as_channel_first
from ..prompts import InitialMask, Prompt, PromptError, PromptKind
from ..undo import Rounds
from . import wire
from .protocol import (
    EXTENSIONS,
    FORWARD_PASSES,
    KIND_FLAGS,
    PROTOCOL_VERSION,
    initial_seg_request,
    parse_meta,
    prompt_request,
)
from .transport import (
    API_KEY_ENV,
    Heartbeat,
    Lease,
    RemoteError,
    Server,
    ServerFailed,
    SessionExpired,
    Timeouts,
    Traffic,
    claim,
    parse_servers,
)

_T = TypeVar("_T")


#: Queued prompts, the object's history and how many of the queued prompts wait here (not sent yet).
_State = tuple[tuple[Prompt, ...], tuple[Prompt, ...], int]


@dataclass(frozen=True)
class _Op:
    """One undoable operation: the server steps it took, and the queue and history before and after."""

    steps: int
    before: _State
    after: _State


_MISSING_LICENCE = "!!MISSING!!"
EXPIRED_NOTICE = (
    "The server had forgotten this session (it was idle too long, or restarted): a new session was started "
    "with the image and your current mask, but the earlier prompts are gone, so the next prompt refines the mask "
    "without them."
)


def capabilities_from(snapshot: dict[str, Any], url: str) -> Capabilities:
    """Our :class:`~..api.Capabilities` from a server's ``/capabilities`` snapshot."""
    flags = snapshot.get("supported_interactions") or {}
    kinds = {kind for kind, flag in KIND_FLAGS.items() if flags.get(flag)}
    if flags.get("bbox3d"):
        kinds.add(PromptKind.BBOX)
    if snapshot.get("supports_initial_label"):
        kinds.add(PromptKind.MASK)
    raw_ext = snapshot.get(EXTENSIONS)
    ext: dict[str, Any] = raw_ext if isinstance(raw_ext, dict) else {}
    undo = ext.get("undo_levels", 1) if ext else (1 if snapshot.get("supports_undo") else 0)
    if not snapshot.get("supports_undo", False):
        undo = 0
    licence = snapshot.get("license")
    patch = snapshot.get("patch_size")
    what = ext.get("description") or "nnInteractive"
    parts = [f"{what} on the server {url}"]
    if patch:
        parts.append(f"patch {tuple(patch)}")
    return Capabilities(
        name=str(ext.get("engine") or "nnInteractive server"),
        description=", ".join(parts),
        supported_kinds=frozenset(kinds),
        supports_3d_box=bool(flags.get("bbox3d")),
        n_image_channels=None,
        undo_depth=undo if isinstance(undo, int) else None,
        redo=bool(ext.get("redo")) and undo != 0,
        licence=None if licence in (None, "", _MISSING_LICENCE) else str(licence),
        device=ext.get("device"),
        pass_name=str(ext.get("pass_name") or "forward pass"),
    )


class RemoteSession:
    """Interactive segmentation on an nnInteractive server (see :mod:`.client`).

    Parameters
    ----------
    servers
        One URL (``http://host:1527``, ``https://...``), several (a pool), or one string of
        comma-separated URLs; ``host:port`` means ``http://host:port``.
    api_key
        The server's key; ``None`` or empty: the ``NN_INTERACTIVE_API_KEY`` environment variable.
    autozoom
        ``True``/``False`` sets AutoZoom for this session; ``None`` keeps the server's default.
    heartbeat_seconds
        Heartbeat period; default ``max(5, liveness timeout / 2)`` as the server declares.

    Raises a :class:`~.transport.RemoteError` when no server can be claimed.
    """

    def __init__(
        self,
        servers: str | Sequence[str],
        api_key: str | None = None,
        autozoom: bool | None = None,
        timeouts: Timeouts | None = None,
        heartbeat_seconds: float | None = None,
        transport: Any = None,
    ):
        key = api_key or os.environ.get(API_KEY_ENV) or None
        self._key = key
        self._transport = transport
        self._servers = [Server(url, key, timeouts or Timeouts(), transport) for url in parse_servers(servers)]
        self._autozoom = autozoom
        self._heartbeat_seconds = heartbeat_seconds
        self._lock = threading.RLock()
        self.progress: ProgressCallback | None = None
        self.should_cancel: CancelCheck | None = None
        self._image: Any = None
        self._mask: np.ndarray | None = None
        self._pending: list[Prompt] = []
        self._passes = 0  # forward passes of the operation running (from the server's X-Meta)
        self._held = 0  # the last queued prompts not sent yet (an initial mask is queued among them)
        self._history: tuple[Prompt, ...] = ()
        self._undo: list[_Op] = []  # oldest first
        self._redo: list[_Op] = []
        self._available = 0  # steps the server can still undo
        self._heartbeat: Heartbeat | None = None
        self._lease = self._connect()

    # ------------------------------------------------------------------ connection

    def _connect(self) -> Lease:
        lease = claim(self._servers)
        try:
            snapshot = lease.server.call("GET", "/capabilities", "the capability query").json()
            if not isinstance(snapshot, dict) or "supported_interactions" not in snapshot:
                raise RemoteError(f"{lease.server.url} did not describe its model; it is not an nnInteractive server.")
            if self._autozoom is not None:
                self._call(
                    lease, "POST", "/set_do_autozoom", "the AutoZoom setting", json={"do_autozoom": self._autozoom}
                )
        except BaseException:
            self._release(lease)
            raise
        self.snapshot: dict[str, Any] = snapshot
        self._capabilities = capabilities_from(snapshot, lease.server.url)
        levels = self._capabilities.undo_depth
        self._levels: int | None = levels
        self._extended = isinstance(snapshot.get(EXTENSIONS), dict)
        if self._heartbeat is not None:
            self._heartbeat.stop()
        self._heartbeat = Heartbeat(lease, self._key, self._heartbeat_seconds, self._transport)
        return lease

    def _release(self, lease: Lease) -> None:
        with contextlib.suppress(RemoteError):
            lease.server.call("POST", "/release", "the release", lease=lease.token, timeout=5)

    def close(self) -> None:
        """Release the session on the server and stop the heartbeat (the local mask stays readable)."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        self._release(self._lease)
        for server in self._servers:
            server.close()

    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteSession({self._lease.server.url!r})"

    @property
    def server_url(self) -> str:
        """The URL of the server holding the session."""
        return self._lease.server.url

    @property
    def traffic(self) -> Traffic:
        """Bytes and requests exchanged with the current server."""
        return self._lease.server.traffic

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def protocol_version(self) -> str:
        return str(self.snapshot.get("inference_session_version", PROTOCOL_VERSION))

    def set_run_control(self, progress: ProgressCallback | None, should_cancel: CancelCheck | None) -> None:
        """Progress: one event per request to the server; ``should_cancel`` is asked before a prediction is sent."""
        self.progress, self.should_cancel = progress, should_cancel

    # ------------------------------------------------------------------ requests

    def _call(self, lease: Lease, method: str, path: str, what: str, **kwargs: Any) -> Any:
        return lease.server.call(method, path, what, lease=lease.token, **kwargs)

    def _send(self, path: str, what: str, **kwargs: Any) -> list[tuple[BBox, np.ndarray]]:
        """A prediction-response request; the boxes it returns (none, or one)."""
        if self.progress is not None:
            self.progress(ProgressEvent("predict", 0, None, f"{what} on {self.server_url}"))
        response = self._call(self._lease, "POST", path, what, **kwargs)
        meta_text = response.headers.get("x-meta")
        if not meta_text:
            return []
        try:
            meta = parse_meta(meta_text)
            passes = meta.get(FORWARD_PASSES) or 0
            self._passes += int(passes) if isinstance(passes, int) else 0
            box = meta.get("bbox")
            if not meta.get("ran_prediction") or box is None or not response.content:
                return []
            mask = self._require_mask()
            bbox = tuple((int(lo), int(hi)) for lo, hi in box)
            values = wire.decode(response.content, max_bytes=mask.nbytes * 8)
            inside = len(bbox) == 3 and all(0 <= lo < hi <= n for (lo, hi), n in zip(bbox, mask.shape))
            if not inside or values.shape != tuple(hi - lo for lo, hi in bbox):
                raise ValueError(f"box {box} with values of shape {values.shape} does not fit the image {mask.shape}")
        except (ValueError, TypeError) as exc:  # ProtocolError and WireError are ValueErrors
            raise ServerFailed(
                f"The server at {self.server_url} sent an answer to {what} that is not valid ({exc}); your mask here "
                "is unchanged. Is it an nnInteractive server of protocol 2.6?"
            ) from None
        return [(bbox, values)]

    def _with_lease(self, op: Callable[[], _T]) -> tuple[_T, tuple[str, ...]]:
        """Run ``op``; when the server has forgotten the session, start a new one and run it again."""
        with self._lock:
            self._passes = 0  # counted by _send, reported by _apply
            notices: tuple[str, ...] = ()
            if self._heartbeat is not None and self._heartbeat.expired.is_set():
                self._renew()
                notices = (EXPIRED_NOTICE,)
            try:
                return op(), notices
            except SessionExpired:
                self._renew()
                return op(), (EXPIRED_NOTICE,)

    def _renew(self) -> None:
        """A new lease (from the pool) with the image, the current mask and the queued prompts."""
        self._lease = self._connect()
        self._undo, self._redo, self._available = [], [], 0
        if self._image is None:
            return
        self._upload_image()
        mask = self._require_mask()
        if mask.any() and PromptKind.MASK in self._capabilities.supported_kinds:
            request = initial_seg_request(mask, run=False)
            self._send(request.path, "the mask", body=wire.encode(mask), meta=request.meta)
        regions: list[tuple[BBox, np.ndarray]] = []
        for prompt in self._pending[: len(self._pending) - self._held]:
            regions += self._send_prompt(prompt, False, regions)

    def _upload_image(self) -> None:
        image = self._image
        self._call(self._lease, "POST", "/set_image", "the image upload", body=wire.encode(image, image=True))
        self._call(
            self._lease,
            "POST",
            "/set_target_buffer",
            "the mask buffer",
            json={"shape": [int(n) for n in image.shape[1:]], "dtype": "uint8"},
        )

    def _send_prompt(
        self, prompt: Prompt, run: bool, earlier: list[tuple[BBox, np.ndarray]]
    ) -> list[tuple[BBox, np.ndarray]]:
        """Send one prompt; the regions it changes (``earlier``: those of the same operation before it).

        The server never sends an initial mask back, so its region is made here (as the local
        session writes it: the object replaced inside the union of its old extent and the mask).
        """
        what = f"the {prompt.kind.value} prompt"
        if not isinstance(prompt, InitialMask):
            request = prompt_request(prompt, run)
            if request.array is not None:
                return self._send(request.path, what, body=wire.encode(request.array), meta=request.meta)
            return self._send(request.path, what, json=request.json)
        assert prompt.bbox is not None  # validated
        full = np.zeros(self.shape, dtype=np.uint8)
        full[bbox_to_slices(prompt.bbox)] = prompt.mask
        request = initial_seg_request(full, run=prompt.refine and run)
        refined = self._send(request.path, what, body=wire.encode(full), meta=request.meta)
        box = union_bbox(nonzero_bbox(self._require_mask()), prompt.bbox, *(b for b, _ in earlier))
        assert box is not None  # the initial mask is not empty
        return [(box, full[bbox_to_slices(box)]), *refined]

    # ------------------------------------------------------------------ image and mask

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(Z, Y, X)`` of the image (a 2-D image has ``Z == 1``)."""
        mask = self._require_mask()
        return (int(mask.shape[0]), int(mask.shape[1]), int(mask.shape[2]))

    def _require_mask(self) -> np.ndarray:
        if self._mask is None:
            raise ImageError("No image is set; call set_image(...) first.")
        return self._mask

    def set_image(self, image: np.ndarray) -> None:
        """Upload ``image`` (``(Z, Y, X)``, ``(C, Z, Y, X)`` or ``(Y, X)``, as it is); starts a fresh object."""
        arr = as_channel_first(image)
        data = np.asarray(arr[:]) if isinstance(arr, LazyImage) else np.asarray(arr)
        if min(data.shape[1:]) < 1:
            raise ImageError(f"The image shape {data.shape[1:]} has an empty axis.")
        if data.dtype.name not in wire.DTYPES:
            data = data.astype(np.float32)
        self._image, self._mask = data, None
        try:
            with self._lock:
                if self._heartbeat is not None and self._heartbeat.expired.is_set():
                    self._lease = self._connect()
                try:
                    self._upload_image()
                except SessionExpired:
                    self._lease = self._connect()
                    self._upload_image()
        except BaseException:
            self._image = None
            raise
        self._mask = np.zeros(data.shape[1:], dtype=np.uint8)
        self._pending, self._history, self._undo, self._redo = [], (), [], []
        self._held = self._available = 0

    def read_mask(self) -> np.ndarray:
        """A copy of the current object's 0/1 mask (``uint8``, image grid)."""
        copy: np.ndarray = self._require_mask().copy()
        return copy

    # ------------------------------------------------------------------ operations

    def state(self) -> Change:
        self._require_mask()
        return self._change(None)

    def add_prompts(self, prompts: Sequence[Prompt], run: bool = True) -> Change:
        """Validate here and send ``prompts``; the last one carries the prediction when ``run``.

        An initial mask takes effect on the server as soon as it arrives, so while one is queued
        (``run=False``) it and the prompts after it wait here until the next prediction.
        """
        shape = self._require_mask().shape
        caps = self._capabilities
        valid = []
        for prompt in prompts:
            if prompt.kind not in caps.supported_kinds:
                raise PromptError(
                    f"The server's model does not support {prompt.kind.value} prompts; use one of "
                    f"{sorted(k.value for k in caps.supported_kinds)}."
                )
            valid.append(prompt.validated(shape, allow_3d_box=caps.supports_3d_box))
        if not valid:
            return self.predict() if run else self._change(None)
        cancelled = run and self.should_cancel is not None and self.should_cancel()
        run_now = run and not cancelled
        before = self._queue_state()
        for prompt in valid:
            self._history = (prompt,) if isinstance(prompt, InitialMask) else self._history + (prompt,)
        self._pending += valid
        if not run_now and (self._held or any(isinstance(p, InitialMask) for p in valid)):
            self._held += len(valid)  # they wait here: nothing is sent
            self._push(0, before)
            change = self._change(None)
        else:
            change = self._run(before, run_now, self._held + len(valid), one_record=len(valid) == 1)
        if cancelled:
            raise PredictionCancelled("prediction cancelled")
        return change

    def predict(self) -> Change:
        """Predict with every queued prompt (nothing changes when none is queued)."""
        self._require_mask()
        if not self._pending:
            return self._change(None)
        if self.should_cancel is not None and self.should_cancel():
            raise PredictionCancelled("prediction cancelled")
        return self._run(self._queue_state(), True, self._held, one_record=False)

    def _run(self, before: _State, run: bool, unsent: int, one_record: bool) -> Change:
        """Send the last ``unsent`` queued prompts (the last one predicting when ``run``), or ``/predict``."""
        batch = self._pending[len(self._pending) - unsent :]
        sent: list[Prompt] = []

        def send() -> list[tuple[BBox, np.ndarray]]:
            sent.clear()  # after a renewed lease, every prompt goes again
            regions: list[tuple[BBox, np.ndarray]] = []
            if not batch:
                return self._send("/predict", "the prediction", json={})
            for i, prompt in enumerate(batch):
                regions += self._send_prompt(prompt, run and i == len(batch) - 1, regions)
                sent.append(prompt)
            return regions

        self._held = unsent  # not on the server yet: a renewed lease must not get them twice
        try:
            regions, notices = self._with_lease(send)
        except BaseException:
            self._held = unsent - len(sent)  # what reached the server stays queued there
            if sent:
                self._push(len(sent), before, one_record=False)
            raise
        self._held = 0
        if run:
            self._pending = []
        self._push(max(1, len(batch)), before, one_record=one_record and run)
        return self._apply(regions, notices)

    def _queue_state(self) -> _State:
        return tuple(self._pending), self._history, self._held

    def _set_queue_state(self, state: _State) -> None:
        self._pending, self._history, self._held = list(state[0]), state[1], state[2]

    def _push(self, steps: int, before: _State, one_record: bool = True) -> None:
        """An operation of ``steps`` server steps; without our extension the server keeps one ``add_*`` only."""
        op = _Op(steps, before, self._queue_state())
        self._redo = []
        if self._levels is None:
            self._undo.append(op)
        elif self._extended:
            self._undo.append(op)
            self._available = min(self._levels, self._available + steps)
        else:  # reference server: each add_* replaces the one undo record; other actions discard it
            self._undo = [op] if one_record and self._levels else []
            self._available = len(self._undo)

    def undo(self) -> Change:
        """Undo the last operation (as deep as the server keeps)."""
        if not self._can_undo():
            return self._change(None)
        op = self._undo.pop()
        regions, notices = self._with_lease(lambda: self._repeat("/undo", "the undo", op.steps))
        self._available -= op.steps
        if self._capabilities.redo:
            self._redo.append(op)
        self._set_queue_state(op.before)
        return self._apply(regions, notices)

    def redo(self) -> Change:
        """Redo the last undone operation (servers offering redo only)."""
        if not self._redo:
            return self._change(None)
        op = self._redo.pop()
        regions, notices = self._with_lease(lambda: self._repeat("/redo", "the redo", op.steps))
        self._undo.append(op)
        if self._levels is not None:
            self._available = min(self._levels, self._available + op.steps)
        self._set_queue_state(op.after)
        return self._apply(regions, notices)

    def _repeat(self, path: str, what: str, times: int) -> list[tuple[BBox, np.ndarray]]:
        """``/undo`` or ``/redo`` once per server step of an operation; the boxes they return."""
        regions = []
        for _ in range(times):
            regions += self._send(path, what, json={})
        return regions

    def _can_undo(self) -> bool:
        return bool(self._undo) and (self._levels is None or self._undo[-1].steps <= self._available)

    def reset_object(self) -> Change:
        """Clear the mask and prompts (undoable where the server keeps undo for resets: ours)."""
        mask = self._require_mask()
        box = nonzero_bbox(mask)
        before = self._queue_state()
        self._with_lease(self._reset_on_server)
        self._pending, self._history, self._held = [], (), 0
        if self._extended:
            self._push(1, before)
        else:
            self._undo, self._redo, self._available = [], [], 0
        return self._apply([(box, np.zeros_like(mask[bbox_to_slices(box)]))] if box else [], ())

    def _reset_on_server(self) -> None:
        self._call(self._lease, "POST", "/reset_interactions", "the reset", json={})
        if len(self._pending) > self._held and not self._extended:  # the reference keeps queued prompts through a reset
            self._upload_image()

    def next_object(self) -> Change:
        """Finish the current object and start an empty one (not undoable)."""
        mask = self._require_mask()
        finished = self._change(nonzero_bbox(mask))
        self._with_lease(self._reset_on_server)
        mask[...] = 0
        self._pending, self._history, self._undo, self._redo = [], (), [], []
        self._held = self._available = 0
        return finished

    def restore_object(self, mask: np.ndarray, prompts: Sequence[Prompt] = (), rounds: Rounds | None = None) -> Change:
        """Make ``mask`` the current object on the server (an initial segmentation, no prediction).

        The server cannot take the earlier ``prompts`` back; they stay the object's history here.
        ``rounds`` is not used: this session does not replay prompts (its undo steps are the server's).
        """
        current = self._require_mask()
        mask = np.asarray(mask)
        if mask.shape != current.shape:
            raise PromptError(f"The restored mask has shape {mask.shape} but the image has shape {current.shape}.")
        caps = self._capabilities
        if mask.any() and PromptKind.MASK not in caps.supported_kinds:
            raise PromptError(
                "This server's model cannot start from an existing mask, so the object cannot be reopened here; "
                "segment it anew, or use a server (or a local engine) that takes initial masks."
            )
        prompts = tuple(p.validated(current.shape, allow_3d_box=caps.supports_3d_box) for p in prompts)
        new = (mask != 0).astype(np.uint8)

        def seed() -> None:
            if new.any():
                request = initial_seg_request(new, run=False)
                self._send(request.path, "the restored mask", body=wire.encode(new), meta=request.meta)
            else:
                self._reset_on_server()

        _, notices = self._with_lease(seed)
        box = union_bbox(nonzero_bbox(current), nonzero_bbox(new))
        self._pending, self._undo, self._redo = [], [], []
        self._held = self._available = 0
        self._history = prompts
        return self._apply([(box, new[bbox_to_slices(box)])] if box else [], notices)

    # ------------------------------------------------------------------ changes

    def _apply(self, regions: list[tuple[BBox, np.ndarray]], notices: tuple[str, ...]) -> Change:
        """Paste the server's boxes into the local mask; the change they made."""
        mask = self._require_mask()
        box = union_bbox(*(b for b, _ in regions))
        if box is None:
            return self._change(None, notices=notices, passes=self._passes)
        before = mask[bbox_to_slices(box)].copy()
        for b, values in regions:
            mask[bbox_to_slices(b)] = values != 0
        flipped = before != mask[bbox_to_slices(box)]
        return self._change(box, flipped, notices, self._passes)

    def _change(
        self,
        box: BBox | None,
        flipped: np.ndarray | None = None,
        notices: tuple[str, ...] = (),
        passes: int = 0,
    ) -> Change:
        state = (self._can_undo(), bool(self._redo), len(self._pending), self._history, None)  # rounds: not known
        return Change.of(self._require_mask(), box, flipped, state, notices, passes)


__all__ = ["EXPIRED_NOTICE", "RemoteSession", "capabilities_from"]
