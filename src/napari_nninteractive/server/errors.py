"""The server's refusals, each carrying its HTTP status; the app turns them into ``{"detail": ...}``.

Client mistakes found by core code (:class:`~..core.prompts.PromptError`,
:class:`~..core.remote.protocol.ProtocolError`, :class:`~..core.remote.wire.WireError`,
:class:`~..core.encoding.ImageError`) are :class:`~..core.errors.UserError` and become 400; the
classes here add the statuses the protocol gives other meanings.
"""

from __future__ import annotations

from typing import ClassVar

from ..core.errors import UserError
from .config import RETRY_AFTER


class ServerError(UserError):
    """A refusal with an HTTP ``status`` (and headers) of its own."""

    status = 400
    headers: ClassVar[dict[str, str] | None] = None


class LeaseError(ServerError):
    """The lease header is missing, or names no live session (410)."""

    status = 410


class AtCapacity(ServerError):
    """Every session slot is taken (503, ``Retry-After``)."""

    status = 503
    headers: ClassVar[dict[str, str] | None] = {"Retry-After": str(RETRY_AFTER)}


class TooLarge(ServerError):
    """A request that would need more memory than the server allows (413)."""

    status = 413


def status_of(exc: BaseException) -> int:
    """The HTTP status of a client error: its own, else 400."""
    return getattr(exc, "status", 400)


__all__ = ["AtCapacity", "LeaseError", "ServerError", "TooLarge", "status_of"]
