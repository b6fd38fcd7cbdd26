"""nninteractive-serve: the nnInteractive remote-inference server (FastAPI), built on the core session.

It speaks the nnInteractive remote protocol 2.6.0 (``/work/shared/spec/remote.md``), so the
official clients work unchanged, and adds ``POST /redo``, ``GET /metrics`` and an extension
object in ``/capabilities``. Layers, bottom up:

* :mod:`.config`: :class:`ServerConfig` and every limit;
* :mod:`.engines`: :class:`EngineSource` (one engine per session; the network's weights loaded
  once) and the capability snapshot;
* :mod:`.sessions`: :class:`~.sessions.ServerSession`, one lease's state on a core session;
* :mod:`.hosting`: leases, clocks, capacity and the reaper; :mod:`.device`: the one device thread;
* :mod:`.middleware`, :mod:`.observe`: body limits, JSON logs, Prometheus metrics;
* :mod:`.app`: :func:`create_app`, the endpoints; :mod:`.host`: :class:`Host`, what they share;
* :mod:`.run`: :func:`serve` and :class:`BackgroundServer` (a real server in a thread, for tests
  and benchmarks).

Importing this package imports FastAPI and uvicorn (the ``server`` extra).
"""

from .app import create_app
from .config import ServerConfig
from .engines import EngineFacts, EngineSource, network_source, weight_free_source
from .host import Host
from .run import BackgroundServer, serve

__all__ = [
    "BackgroundServer",
    "EngineFacts",
    "EngineSource",
    "Host",
    "ServerConfig",
    "create_app",
    "network_source",
    "serve",
    "weight_free_source",
]
