"""HTTP to nnInteractive servers: one server's requests, their errors, the pool, leases and heartbeats.

Every HTTP failure becomes a :class:`RemoteError` (a :class:`~..errors.UserError`) whose message
says what happened and what to do: :class:`ServerUnreachable`, :class:`AuthenticationFailed`,
:class:`ServerFull`, :class:`SessionExpired`, :class:`ImageTooLarge`, :class:`RequestRefused` and
:class:`ServerFailed`. The API key travels only in the ``Authorization`` header; it is never part
of a message, a ``repr`` or a log line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from json import dumps
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..errors import UserError
from .protocol import API_KEY_ENV, DEFAULT_PORT, LEASE_HEADER, META_HEADER, meta_header

log = logging.getLogger(__name__)


class RemoteError(UserError, RuntimeError):
    """A remote session that cannot go on as asked; the message says what to do."""


class ServerUnreachable(RemoteError):
    """No answer: the server is down, the URL or port is wrong, or the network is in the way."""


class AuthenticationFailed(RemoteError):
    """The server wants an API key and did not get the right one (HTTP 401)."""


class ServerFull(RemoteError):
    """Every server of the pool already hosts as many sessions as it may (HTTP 503)."""


class SessionExpired(RemoteError):
    """The server forgot the session (HTTP 410): it was idle too long, or the server restarted."""


class ImageTooLarge(RemoteError):
    """The server refuses an upload or a buffer of this size (HTTP 413)."""


class RequestRefused(RemoteError):
    """The server refused one request as invalid (HTTP 400/422); the session goes on."""


class ServerFailed(RemoteError):
    """The server failed on a request (HTTP 5xx); see its log."""


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait: to connect, for an answer (a prediction on a CPU server can take minutes), to send."""

    connect: float = 10.0
    read: float = 600.0
    write: float = 600.0

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.connect)


def parse_servers(servers: str | Sequence[str]) -> list[str]:
    """Server URLs from a list, or from one string separated by commas, spaces or new lines.

    ``host:port`` and a bare ``host`` (port 1527) are completed to ``http://``; ``https://`` URLs keep TLS.
    """
    items = servers.replace(",", " ").split() if isinstance(servers, str) else [str(s).strip() for s in servers]
    urls = []
    for item in (s for s in items if s):
        url = item if "://" in item else f"http://{item}"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteError(f"{item!r} is not a server URL; give one like http://gpu-box:{DEFAULT_PORT}.")
        if parts.port is None and "://" not in item:
            url = f"{url.rstrip('/')}:{DEFAULT_PORT}"
        urls.append(url.rstrip("/"))
    if not urls:
        raise RemoteError(f"No server URL given; give one like http://gpu-box:{DEFAULT_PORT}.")
    return urls


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", "")
    except (ValueError, AttributeError):
        detail = response.text[:200]
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail or response.reason_phrase)


@dataclass
class Traffic:
    """Bytes sent and received (bodies and headers), and requests made."""

    sent: int = 0
    received: int = 0
    requests: int = 0


class Server:
    """Requests to one server URL, with the bearer key when one is set."""

    def __init__(self, url: str, api_key: str | None, timeouts: Timeouts, transport: httpx.BaseTransport | None = None):
        self.url = url
        self.has_key = bool(api_key)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=url, headers=headers, timeout=timeouts.httpx(), transport=transport)
        for name in ("accept", "accept-encoding", "connection", "user-agent"):  # headers cost bytes on every request
            self._client.headers.pop(name, None)
        self.timeouts = timeouts
        self.traffic = Traffic()

    def __repr__(self) -> str:
        return f"Server({self.url!r})"

    def close(self) -> None:
        self._client.close()

    def call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        lease: str | None = None,
        json: dict[str, Any] | None = None,
        body: bytes | None = None,
        meta: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """One request; any answer but 2xx raises the :class:`RemoteError` that says what to do about it."""
        headers = {}
        if json is not None:  # compact, as the reference writes JSON
            body = dumps(json, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        elif body is not None:
            headers["Content-Type"] = "application/octet-stream"
        if lease is not None:
            headers[LEASE_HEADER] = lease
        if meta is not None:
            headers[META_HEADER] = meta_header(meta)
        kwargs: dict[str, Any] = {"headers": headers}
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            response = self._client.request(method, path, content=body, **kwargs)
        except httpx.TimeoutException as exc:
            raise ServerUnreachable(
                f"The server at {self.url} did not answer {what} in time ({type(exc).__name__}). It may be "
                "overloaded or the network slow; try again, or check the server."
            ) from None
        except httpx.TransportError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise ServerUnreachable(
                    f"The server at {self.url} shows a certificate this computer does not trust ({exc}). For a "
                    "self-signed certificate, set SSL_CERT_FILE to a copy of it before starting; check the host name."
                ) from None
            raise ServerUnreachable(
                f"Cannot reach the server at {self.url} ({exc or type(exc).__name__}). Check that "
                "nninteractive-serve runs there, the URL and port, and your network or VPN."
            ) from None
        self._count(response)
        if response.status_code >= 400:
            raise self._error(response, what)
        return response

    def _count(self, response: httpx.Response) -> None:
        request = response.request
        head = sum(len(k) + len(v) + 4 for k, v in request.headers.raw) + len(request.url.raw_path) + 16
        self.traffic.sent += head + len(request.content)
        self.traffic.received += sum(len(k) + len(v) + 4 for k, v in response.headers.raw) + len(response.content) + 16
        self.traffic.requests += 1

    def _error(self, response: httpx.Response, what: str) -> RemoteError:
        code, detail = response.status_code, _detail(response)
        if code == 401:
            if not self.has_key:
                return AuthenticationFailed(
                    f"The server at {self.url} needs an API key: enter it in the API key field, pass --api-key, "
                    f"or set {API_KEY_ENV}."
                )
            return AuthenticationFailed(
                f"The server at {self.url} refused the API key ({detail}). Use the key the server was started "
                f"with (its --api-key or {API_KEY_ENV})."
            )
        if code == 410:
            return SessionExpired(f"The server at {self.url} no longer has this session ({detail}).")
        if code == 503:
            return ServerFull(
                f"The server at {self.url} is full ({detail}). Try again in a minute, close a session you no longer "
                "use, or ask for more sessions (--max-sessions) or another server."
            )
        if code == 413:
            return ImageTooLarge(
                f"The server at {self.url} refused {what} as too large ({detail}). Crop or downsample the "
                "image, or ask for the server's upload limit to be raised."
            )
        if code == 404:
            return RequestRefused(
                f"{self.url} has no {response.request.url.path} ({detail}): it is not an nnInteractive server, or "
                "a version without this feature. Check the URL and port."
            )
        if code < 500:
            return RequestRefused(f"The server at {self.url} refused {what}: {detail}")
        return ServerFailed(
            f"The server at {self.url} failed on {what} (HTTP {code}: {detail}). Your mask here is unchanged; see "
            "the server's log, or try again."
        )


@dataclass(frozen=True)
class Lease:
    """A claimed session: the server, the token and the server's timeouts (seconds)."""

    server: Server
    token: str
    idle_timeout: float
    liveness_timeout: float

    def __repr__(self) -> str:
        return f"Lease({self.server.url!r}, token={self.token[:8]}...)"


def claim(servers: Sequence[Server]) -> Lease:
    """Claim a session from the first server with a free slot (full or unreachable: the next one)."""
    problems: list[RemoteError] = []
    for server in servers:
        try:
            data = server.call("POST", "/claim", "the session claim").json()
        except (ServerFull, ServerUnreachable, AuthenticationFailed, RequestRefused, ServerFailed) as exc:
            problems.append(exc)
            continue
        token = data.get("lease_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            problems.append(
                RequestRefused(
                    f"{server.url} answered /claim without a lease token; it is not an nnInteractive server."
                )
            )
            continue
        return Lease(
            server,
            token,
            float(data.get("idle_timeout_seconds") or 0),
            float(data.get("liveness_timeout_seconds") or 0),
        )
    if len(problems) == 1:
        raise problems[0]
    if all(isinstance(p, ServerFull) for p in problems):
        raise ServerFull(
            f"All {len(problems)} servers are full. Try again in a minute, or ask for more sessions (--max-sessions) or "
            "another server."
        )
    for kind in (AuthenticationFailed, ServerFull):
        if any(isinstance(p, kind) for p in problems):
            raise kind(" ".join(str(p) for p in problems))
    raise ServerUnreachable(" ".join(str(p) for p in problems))


class Heartbeat:
    """Keeps a lease alive from a background thread while requests run (every ``max(5, liveness / 2)`` s).

    Stops by itself when the server answers 410 (``expired`` is then set); network errors are ignored.
    """

    def __init__(
        self,
        lease: Lease,
        api_key: str | None,
        interval: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.lease = lease
        self.interval = interval if interval is not None else max(5.0, lease.liveness_timeout / 2)
        self.expired = threading.Event()
        self._stop = threading.Event()
        self._server = Server(lease.server.url, api_key, Timeouts(connect=5, read=10, write=10), transport)
        self._thread: threading.Thread | None = None
        if lease.liveness_timeout > 0 or interval is not None:
            self._thread = threading.Thread(target=self._run, name="nninteractive-heartbeat", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._server.call("POST", "/heartbeat", "a heartbeat", lease=self.lease.token, json={})
            except SessionExpired:
                self.expired.set()
                return
            except RemoteError as exc:
                log.debug("heartbeat failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._server.close()


__all__ = [
    "API_KEY_ENV",
    "AuthenticationFailed",
    "Heartbeat",
    "ImageTooLarge",
    "Lease",
    "RemoteError",
    "RequestRefused",
    "Server",
    "ServerFailed",
    "ServerFull",
    "ServerUnreachable",
    "SessionExpired",
    "Timeouts",
    "Traffic",
    "claim",
    "parse_servers",
]
