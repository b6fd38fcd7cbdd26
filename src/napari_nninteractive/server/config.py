"""The server's settings in one value: :class:`ServerConfig`, with its checks and memory caps.

Every limit the server applies lives here, so the command line, :func:`~.run.serve` and
:class:`~.run.BackgroundServer` share one set of defaults.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import UserError
from ..core.remote.protocol import DEFAULT_PORT

MiB = 1 << 20
GiB = 1 << 30
#: JSON request bodies are refused beyond this size (413) and this nesting depth (400), before parsing.
MAX_JSON_BODY = 1 * MiB
MAX_JSON_DEPTH = 32
#: ``Retry-After`` of a 503 from ``/claim`` (seconds).
RETRY_AFTER = 10


class ConfigError(UserError, ValueError):
    """A server setting that cannot work; the message names the option and the fix."""


def physical_ram() -> int | None:
    """Bytes of physical memory, or ``None`` where the platform does not say."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return int(pages) * int(size) if pages > 0 and size > 0 else None


def default_buffer_cap() -> int:
    """Largest target buffer: 25 % of physical RAM (8 GiB when RAM is unknown), as the protocol says."""
    ram = physical_ram()
    return ram // 4 if ram else 8 * GiB


def default_image_cap() -> int:
    """Largest decoded image: 50 % of physical RAM (16 GiB when RAM is unknown)."""
    ram = physical_ram()
    return ram // 2 if ram else 16 * GiB


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    """How ``nninteractive-serve`` runs; the defaults are the reference server's.

    Timeouts are seconds. ``api_key`` never appears in ``repr`` or logs.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str | None = field(default=None, repr=False)
    max_sessions: int = 3
    idle_timeout: float = 600.0
    liveness_timeout: float = 60.0
    #: How often expired sessions are dropped (the reference's fixed 15 s; tests set it small).
    sweep_seconds: float = 15.0
    #: The initial per-session ``do_autozoom``.
    autozoom: bool = True
    #: Undo/redo for every session (``--no-undo``: none, ``supports_undo`` false).
    undo: bool = True
    #: Largest binary request body (an upload of an image or mask), in bytes.
    max_upload_bytes: int = 4 * GiB
    #: Largest target buffer (413 beyond).
    max_buffer_bytes: int = field(default_factory=default_buffer_cap)
    #: Largest image once decoded, in bytes (a small body cannot declare a huge array).
    max_image_bytes: int = field(default_factory=default_image_cap)
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @property
    def tls(self) -> bool:
        return self.ssl_certfile is not None

    @property
    def url(self) -> str:
        """The address clients use (``http(s)://host:port``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def validate(self) -> list[str]:
        """Raise :class:`ConfigError` for settings that cannot work; return warnings for risky ones."""
        if self.max_sessions < 1:
            raise ConfigError(f"--max-sessions must be at least 1, not {self.max_sessions}.")
        for name, value in (
            ("--idle-timeout", self.idle_timeout),
            ("--liveness-timeout", self.liveness_timeout),
            ("sweep_seconds", self.sweep_seconds),
        ):
            if not value > 0:
                raise ConfigError(f"{name} must be more than 0 seconds, not {value}.")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be 0 to 65535, not {self.port}.")
        if self.max_upload_bytes < 1:
            raise ConfigError(f"--max-upload-mb must be positive, not {self.max_upload_bytes / MiB:g}.")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ConfigError("TLS needs both --ssl-certfile and --ssl-keyfile (or neither).")
        for option, path in (("--ssl-certfile", self.ssl_certfile), ("--ssl-keyfile", self.ssl_keyfile)):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{option} {path} is not a file; pass the PEM file.")
        warnings = []
        if self.liveness_timeout >= self.idle_timeout:
            warnings.append(
                f"--liveness-timeout ({self.liveness_timeout:g} s) is not below --idle-timeout "
                f"({self.idle_timeout:g} s): idle sessions are dropped before a dead client is noticed."
            )
        if not is_loopback(self.host):
            if not self.api_key:
                warnings.append(
                    f"SECURITY: listening on {self.host} WITHOUT an API key: anyone who can reach this port can "
                    "use the GPU and upload images. Pass --api-key KEY (or set NN_INTERACTIVE_API_KEY)."
                )
            if not self.tls:
                warnings.append(
                    f"SECURITY: listening on {self.host} without TLS: images, masks and the API key travel in "
                    "clear text. Pass --ssl-certfile and --ssl-keyfile, or reach the server through an SSH tunnel."
                )
        return warnings


__all__ = [
    "MAX_JSON_BODY",
    "MAX_JSON_DEPTH",
    "RETRY_AFTER",
    "ConfigError",
    "GiB",
    "MiB",
    "ServerConfig",
    "default_buffer_cap",
    "default_image_cap",
    "is_loopback",
    "physical_ram",
]
