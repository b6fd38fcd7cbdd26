"""The pure-ASGI guard in front of every endpoint: body limits, JSON depth, request log and metrics, last-resort 500.

* A binary endpoint's body (an image or mask upload) may have at most ``max_upload_bytes``: a
  larger ``Content-Length`` is refused before anything is read, and a streamed body is counted
  as it arrives. Every other body may have at most :data:`~.config.MAX_JSON_BODY` and may nest
  at most :data:`~.config.MAX_JSON_DEPTH` levels; both are checked on the raw bytes, before any
  parsing, so neither the size nor the recursion depth of a request can hurt the server.
* Every request gives one JSON log line (path, status, milliseconds, lease prefix) and a count
  in ``/metrics``.
* An unexpected exception becomes 500 ``{"detail": "internal server error; see the server log"}``
  with its traceback in the log, never a stack trace on the wire.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from fastapi import HTTPException

from ..core.remote.protocol import LEASE_HEADER
from .config import MAX_JSON_BODY, MAX_JSON_DEPTH, MiB, ServerConfig
from .observe import Metrics, lease_prefix, log_event

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INTERNAL = "internal server error; see the server log"
_SPECIAL = re.compile(rb'[\[\]{}"\\]')


def json_depth(raw: bytes, stop_above: int | None = None) -> int:
    """Deepest nesting of ``[``/``{`` in JSON text, brackets inside strings not counted (no parsing, linear).

    With ``stop_above`` the scan ends as soon as the depth passes it.
    """
    deepest = depth = 0
    in_string, skip = False, -1
    for match in _SPECIAL.finditer(raw):
        pos, char = match.start(), match.group()
        if pos == skip:  # the character after a backslash
            continue
        if in_string:
            if char == b"\\":
                skip = pos + 1
            elif char == b'"':
                in_string = False
        elif char == b'"':
            in_string = True
        elif char in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
            if stop_above is not None and deepest > stop_above:
                break
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest


def _upload_refusal(path: str, limit: int, size: int | None = None) -> str:
    """The 413 detail for an upload of ``size`` bytes (``None``: a streamed body, size unknown)."""
    what = "image" if path == "/set_image" else "upload"
    if size is None:
        return (
            f"{what} too large: more than {limit} bytes (the server accepts at most {limit / MiB:g} MB; "
            "start it with a larger --max-upload-mb to accept it)"
        )
    return (
        f"{what} too large: {size} bytes (the server accepts at most {limit / MiB:g} MB; "
        f"start it with --max-upload-mb {-(-size // MiB)} or more to accept it)"
    )


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class Guard:
    """Wraps the FastAPI app; ``binary_paths`` take uploads, ``known_paths`` label the metrics."""

    def __init__(
        self,
        app: ASGIApp,
        config: ServerConfig,
        metrics: Metrics,
        binary_paths: Iterable[str],
        known_paths: Iterable[str],
    ):
        self.app, self.config, self.metrics = app, config, metrics
        self.binary_paths, self.known_paths = frozenset(binary_paths), frozenset(known_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, path = time.perf_counter(), str(scope.get("path", ""))
        state = {"status": 500, "started": False}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["started"] = int(message["status"]), True
            await send(message)

        try:
            await self._limited(scope, receive, watch, path)
        except Exception:
            log.exception("unexpected error while serving %s", path)
            if not state["started"]:
                await _send_json(watch, 500, {"detail": INTERNAL})
            state["status"] = 500
        finally:
            status = int(state["status"])
            label = path if path in self.known_paths else "other"
            self.metrics.request(label, status)
            token = _header(scope, LEASE_HEADER.encode())
            log_event(
                "request",
                method=scope.get("method"),
                path=label,
                status=status,
                ms=round(1000 * (time.perf_counter() - start), 1),
                lease=lease_prefix(token),
            )

    async def _limited(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        declared_text = _header(scope, b"content-length")
        try:
            declared = int(declared_text) if declared_text is not None else None
        except ValueError:
            await _send_json(send, 400, {"detail": "Content-Length is not a number"})
            return
        if path in self.binary_paths:
            limit = self.config.max_upload_bytes
            if declared is not None and declared > limit:
                await _send_json(send, 413, {"detail": _upload_refusal(path, limit, declared)})
                return
            await self.app(scope, _counting(receive, limit, path), send)
            return
        if declared is not None and declared > MAX_JSON_BODY:
            await _send_json(send, 413, {"detail": _json_refusal(declared)})
            return
        chunks, size, message = [], 0, None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_JSON_BODY:
                await _send_json(send, 413, {"detail": _json_refusal()})
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and json_depth(body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            await _send_json(send, 400, {"detail": f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels"})
            return
        await self.app(scope, _replay(body, receive, message), send)


def _json_refusal(size: int | None = None) -> str:
    """The 413 detail for a JSON body of ``size`` bytes (``None``: streamed, more than the limit)."""
    told = f"{size} bytes" if size is not None else f"more than {MAX_JSON_BODY} bytes"
    return f"request body too large: {told}; a JSON request may have at most {MAX_JSON_BODY} bytes"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _counting(receive: Receive, limit: int, path: str) -> Receive:
    """``receive`` that refuses (413) a body once it passes ``limit`` bytes."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, _upload_refusal(path, limit))
        return message

    return counted


def _replay(body: bytes, receive: Receive, last: Message | None) -> Receive:
    """``receive`` that gives the buffered ``body`` once, then whatever the client sends next."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    if last is not None and last["type"] != "http.request":
        pending.append(last)  # the client disconnected while the body was read

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


__all__ = ["INTERNAL", "Guard", "json_depth"]
