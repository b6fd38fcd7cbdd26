"""Everything one running server shares: settings, engine source, capabilities, sessions, device thread, metrics."""

from __future__ import annotations

from typing import Any

from .config import ServerConfig
from .device import DeviceQueue
from .engines import EngineSource, capability_snapshot
from .hosting import Registry
from .observe import Metrics
from .sessions import ServerSession


class Host:
    """The state behind one app (see :func:`~.app.create_app`).

    Parameters
    ----------
    config
        Settings (validated here: :class:`~.config.ConfigError` for ones that cannot work).
    source
        Makes one engine per session and says what they can do.
    """

    def __init__(self, config: ServerConfig, source: EngineSource):
        config.validate()
        self.config = config
        self.source = source
        self.metrics = Metrics()
        self.device = DeviceQueue(self.metrics)
        #: ``GET /capabilities``, computed once.
        self.capabilities: dict[str, Any] = capability_snapshot(source.facts, config)
        self.registry: Registry[ServerSession] = Registry(config, self.new_session, self.metrics)

    def new_session(self) -> ServerSession:
        """A session with a fresh engine from the source."""
        cfg = self.config
        return ServerSession(
            self.source.factory(),
            self.source.facts,
            self.device,
            undo=cfg.undo,
            autozoom=cfg.autozoom,
            max_buffer_bytes=cfg.max_buffer_bytes,
            max_image_bytes=cfg.max_image_bytes,
        )

    def metrics_text(self) -> str:
        return self.metrics.render(len(self.registry), self.config.max_sessions, self.device.length)

    def start(self) -> None:
        """Start the reaper (the app's startup calls this)."""
        self.registry.start()

    def close(self) -> None:
        """Stop the reaper, drop every session, stop the device thread (the app's shutdown calls this)."""
        self.registry.close()
        self.device.close()


__all__ = ["Host"]
