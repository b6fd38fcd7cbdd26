"""Running the server: :func:`serve` (blocking, what ``nninteractive-serve`` calls) and :class:`BackgroundServer`.

:class:`BackgroundServer` runs a real uvicorn server in a thread on ``127.0.0.1`` at an
ephemeral port, for tests and benchmarks::

    from napari_nninteractive.server import BackgroundServer, ServerConfig, weight_free_source

    with BackgroundServer(ServerConfig(api_key="secret"), weight_free_source()) as server:
        httpx.get(f"{server.url}/healthz")          # server.url == "http://127.0.0.1:<port>"
        server.host.registry                        # the live sessions, for inspection
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace
from types import TracebackType

import uvicorn

from .app import create_app
from .config import ServerConfig
from .engines import EngineSource, weight_free_source
from .host import Host


def _uvicorn_config(host: Host, **overrides: object) -> uvicorn.Config:
    cfg = host.config
    return uvicorn.Config(
        create_app(host),
        host=cfg.host,
        port=cfg.port,
        ssl_certfile=cfg.ssl_certfile,
        ssl_keyfile=cfg.ssl_keyfile,
        log_config=None,  # the caller configures logging; our own lines replace the access log
        access_log=False,
        server_header=False,  # no "server:" and "date:" headers: bytes on every reply that no client reads
        date_header=False,
        lifespan="on",
        **overrides,  # type: ignore[arg-type]
    )


def serve(config: ServerConfig, source: EngineSource) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM); TLS when ``config`` names the certificate files."""
    uvicorn.Server(_uvicorn_config(Host(config, source))).run()


class BackgroundServer:
    """A real server in a daemon thread on ``127.0.0.1:<ephemeral port>``; a context manager.

    Parameters
    ----------
    config
        Settings; ``host`` and ``port`` are replaced by ``127.0.0.1`` and a free port.
    source
        The engines (default: the weight-free engine).
    start_timeout, stop_timeout
        Seconds to wait for the server to start, and to stop before it is forced to.

    Attributes
    ----------
    url
        ``http://127.0.0.1:<port>`` (``https`` with TLS), set once started.
    host
        The :class:`~.host.Host`: sessions, metrics and capabilities, for inspection.
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        source: EngineSource | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ):
        # IPPROTO_TCP explicitly: asyncio then sets TCP_NODELAY on accepted connections (with proto 0 it does
        # not, and every reply on a kept-alive connection waits ~40 ms for a delayed ACK)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        config = replace(config or ServerConfig(), host="127.0.0.1", port=self.port)
        self.host = Host(config, source or weight_free_source())
        self.url = config.url
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
        self._server = uvicorn.Server(
            _uvicorn_config(self.host, timeout_graceful_shutdown=max(1, int(stop_timeout / 2)))
        )
        self._thread: threading.Thread | None = None

    def start(self) -> BackgroundServer:
        """Start serving; returns once the server accepts connections (``RuntimeError`` after ``start_timeout``)."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="nninteractive-serve", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the background server did not start within {self.start_timeout:g} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving: gracefully, then forcibly after ``stop_timeout``; closes the socket."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._server.should_exit = True
            thread.join(self.stop_timeout)
            if thread.is_alive():
                self._server.force_exit = True
                thread.join(self.stop_timeout)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


__all__ = ["BackgroundServer", "serve"]
