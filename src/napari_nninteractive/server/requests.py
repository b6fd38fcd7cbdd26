"""Reading the one request only the server reads beyond :mod:`~..core.remote.protocol`: ``set_target_buffer``.

The 400 messages are the reference server's, word for word; a buffer beyond the memory cap is a
413 (:class:`~.errors.TooLarge`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.remote.protocol import ProtocolError
from .errors import TooLarge

#: Longest dtype string read (numpy spellings are short).
_MAX_DTYPE_TEXT = 64


def target_buffer_request(body: dict[str, Any], max_bytes: int) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """``(shape, dtype)`` of a ``set_target_buffer`` body: 3 positive integers and a bool or integer dtype."""
    for key in ("shape", "dtype"):
        if key not in body:
            raise ProtocolError(f"missing required field: {key}")
    shape, name = body["shape"], body["dtype"]
    if not isinstance(shape, list) or len(shape) != 3:
        raise ProtocolError("shape must be 3D")
    if any(type(n) is not int for n in shape):  # JSON booleans are refused
        raise ProtocolError("shape must contain only integers")
    if any(n <= 0 for n in shape):
        raise ProtocolError("shape dimensions must be positive")
    if not isinstance(name, str) or len(name) > _MAX_DTYPE_TEXT:
        raise ProtocolError(f"invalid dtype: {str(name)[:_MAX_DTYPE_TEXT]!r}")
    try:
        dtype = np.dtype(name)
    except Exception:  # numpy raises TypeError, ValueError and more for strings it cannot read
        raise ProtocolError(f"invalid dtype: {name!r}") from None
    if dtype.kind not in "biu" or dtype.shape or dtype.names:
        raise ProtocolError(f"unsupported dtype {dtype}: target buffer must be bool or an integer type")
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if need > max_bytes:
        raise TooLarge(f"target buffer would require {need} bytes, limit is {max_bytes} bytes")
    return tuple(shape), dtype.newbyteorder("=")


__all__ = ["target_buffer_request"]
