"""The NNIA array wire format of the nnInteractive remote protocol: one self-describing array per body.

Layout (all integers little-endian, no padding)::

    "NNIA" | version u8 = 1 | codec u8 (1 Zstd, 2 LZ4) | ndim u8 | L u8 | dtype name (L ASCII bytes)
    | shape: ndim x int64 | nchunks u32 | per chunk: ulen u64, clen u64, clen bytes of one Blosc2 chunk

The element bytes are C-order little-endian; chunks hold at most :data:`CHUNK_BYTES` raw bytes each.
:func:`decode` checks everything before it allocates (a short buffer, a wrong magic or version, an
unknown codec or dtype, a size that does not match the shape, chunks that overrun) and raises
:class:`WireError`; ``max_bytes`` bounds the decoded size, so a small body cannot declare a huge array.
"""

from __future__ import annotations

import struct
from typing import Any

import blosc2
import numpy as np

from ..errors import UserError

MAGIC = b"NNIA"
VERSION = 1
ZSTD, LZ4 = 1, 2
#: Raw bytes per chunk written (1 GiB); readers accept any split.
CHUNK_BYTES = 1 << 30
#: The dtype names on the wire (numpy's canonical names).
DTYPES = (
    "bool",
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "uint64",
    "int64",
    "float16",
    "float32",
    "float64",
)
_HEAD = struct.Struct("<4sBBBB")
_CHUNK_HEAD = struct.Struct("<QQ")
_BLOSC_HEADER = 32


class WireError(UserError, ValueError):
    """A body that is not a valid NNIA array; the message says which check failed."""


def _compress(raw: np.ndarray, typesize: int, shuffle: bool) -> bytes:
    filt = blosc2.Filter.SHUFFLE if shuffle else blosc2.Filter.NOFILTER
    out = blosc2.compress2(raw, codec=blosc2.Codec.ZSTD, clevel=3, filter=filt, typesize=typesize)
    return bytes(out)


def _prefers_shuffle(arr: np.ndarray) -> bool:
    """The official image rule: trial-compress a centred crop (25 % per axis); SHUFFLE only if strictly smaller."""
    if arr.itemsize == 1 or arr.size == 0:
        return False
    crop = arr[
        tuple(slice(n // 2 - max(1, n // 4) // 2, n // 2 - max(1, n // 4) // 2 + max(1, n // 4)) for n in arr.shape)
    ]
    raw = np.ascontiguousarray(crop).reshape(-1).view(np.uint8)
    return len(_compress(raw, arr.itemsize, True)) < len(_compress(raw, arr.itemsize, False))


def encode(array: np.ndarray, image: bool = False, chunk_bytes: int = CHUNK_BYTES) -> bytes:
    """One NNIA body for ``array``: Zstd level 3; NOFILTER, or for ``image`` whichever filter is smaller."""
    arr = np.asarray(array)
    name = arr.dtype.name
    if name not in DTYPES:
        raise WireError(f"dtype {arr.dtype} cannot be sent; convert the array to one of {', '.join(DTYPES)}.")
    arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    if arr.ndim > 255:
        raise WireError(f"an array of {arr.ndim} axes cannot be sent (255 at most).")
    shuffle = image and _prefers_shuffle(arr)
    raw = arr.reshape(-1).view(np.uint8)
    step = max(arr.itemsize, chunk_bytes - chunk_bytes % arr.itemsize)
    parts = [
        _HEAD.pack(MAGIC, VERSION, ZSTD, arr.ndim, len(name)),
        name.encode("ascii"),
        struct.pack(f"<{arr.ndim}q", *arr.shape),
    ]
    chunks = [raw[i : i + step] for i in range(0, len(raw), step)] or [raw]
    parts.append(struct.pack("<I", len(chunks)))
    for piece in chunks:
        comp = _compress(piece, arr.itemsize, shuffle)
        parts += [_CHUNK_HEAD.pack(len(piece), len(comp)), comp]
    return b"".join(parts)


def decode(buf: bytes | bytearray | memoryview, max_bytes: int | None = None) -> np.ndarray:
    """The array in an NNIA body (a new writable array); :class:`WireError` when the body is not valid."""
    view = memoryview(buf).cast("B")
    if len(view) < 8:
        raise WireError(f"the array body has {len(view)} bytes; an NNIA array has at least 8.")
    magic, version, codec, ndim, n = _HEAD.unpack_from(view, 0)
    if magic != MAGIC:
        raise WireError(f"the array body starts with {bytes(magic)!r}, not the NNIA magic {MAGIC!r}.")
    if version != VERSION:
        raise WireError(f"NNIA wire version {version} is not supported (only {VERSION}).")
    if codec not in (ZSTD, LZ4):
        raise WireError(f"NNIA codec id {codec} is unknown (1 Zstd, 2 LZ4).")
    pos = 8
    need = pos + n + 8 * ndim + 4
    if len(view) < need:
        raise WireError("the NNIA header is truncated.")
    name = bytes(view[pos : pos + n]).decode("ascii", "replace")
    if name not in DTYPES:
        raise WireError(f"NNIA dtype {name!r} is not one of {', '.join(DTYPES)}.")
    dtype = np.dtype(name).newbyteorder("<")
    pos += n
    shape = struct.unpack_from(f"<{ndim}q", view, pos)
    pos += 8 * ndim
    if any(s < 0 for s in shape):
        raise WireError(f"NNIA shape {list(shape)} has a negative axis.")
    total = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if max_bytes is not None and total > max_bytes:
        raise WireError(f"the array ({list(shape)}, {name}) would take {total} bytes; the limit is {max_bytes}.")
    (nchunks,) = struct.unpack_from("<I", view, pos)
    pos += 4
    out = bytearray(total)
    filled = 0
    for i in range(nchunks):
        if len(view) < pos + _CHUNK_HEAD.size:
            raise WireError(f"NNIA chunk {i} of {nchunks} is missing (the body is truncated).")
        ulen, clen = _CHUNK_HEAD.unpack_from(view, pos)
        pos += _CHUNK_HEAD.size
        if ulen % dtype.itemsize or filled + ulen > total:
            raise WireError(f"NNIA chunk {i} holds {ulen} bytes, which does not fit the array's {total} bytes.")
        if clen < _BLOSC_HEADER or len(view) < pos + clen:
            raise WireError(f"NNIA chunk {i} is truncated ({clen} bytes declared).")
        chunk = view[pos : pos + clen]
        pos += clen
        nbytes, cbytes, _ = _chunk_sizes(chunk, i)
        if nbytes != ulen or cbytes != clen:
            raise WireError(f"NNIA chunk {i} says {nbytes} raw / {cbytes} compressed bytes, not {ulen} / {clen}.")
        if ulen:
            try:
                raw = blosc2.decompress2(bytes(chunk))
            except (RuntimeError, ValueError) as exc:
                raise WireError(f"NNIA chunk {i} cannot be decompressed ({exc}).") from None
            if len(raw) != ulen:
                raise WireError(f"NNIA chunk {i} decompressed to {len(raw)} bytes, not {ulen}.")
            out[filled : filled + ulen] = raw
        filled += ulen
    if filled != total:
        raise WireError(f"the NNIA chunks hold {filled} bytes but shape {list(shape)} of {name} needs {total}.")
    arr: np.ndarray = np.frombuffer(out, dtype=dtype).reshape(shape)
    return arr.astype(arr.dtype.newbyteorder("="), copy=False)


def _chunk_sizes(chunk: memoryview, i: int) -> tuple[int, int, Any]:
    try:
        nbytes, cbytes, block = blosc2.get_cbuffer_sizes(bytes(chunk[:_BLOSC_HEADER]))
    except (RuntimeError, ValueError) as exc:
        raise WireError(f"NNIA chunk {i} is not a Blosc2 chunk ({exc}).") from None
    return int(nbytes), int(cbytes), block


__all__ = ["CHUNK_BYTES", "DTYPES", "LZ4", "MAGIC", "VERSION", "ZSTD", "WireError", "decode", "encode"]
