"""The NNIA array wire format, byte by byte against the protocol spec, and its reader's refusals."""

from __future__ import annotations

import struct

import blosc2
import numpy as np
import pytest

from napari_nninteractive.core.remote import wire
from napari_nninteractive.core.remote.wire import WireError, decode, encode


def test_spec_example_uint8_3d_layout():
    """'A uint8 3-D response starts with 4E4E4941 01 01 03 05 "uint8"', then three int64 shape values."""
    arr = (np.arange(2 * 3 * 4).reshape(2, 3, 4) % 2).astype(np.uint8)
    buf = encode(arr)
    assert buf[:8] == bytes.fromhex("4E4E4941 01 01 03 05".replace(" ", ""))
    assert buf[8:13] == b"uint8"
    assert struct.unpack_from("<3q", buf, 13) == (2, 3, 4)
    pos = 13 + 24
    assert struct.unpack_from("<I", buf, pos) == (1,)  # under 1 GiB: one chunk
    ulen, clen = struct.unpack_from("<QQ", buf, pos + 4)
    assert ulen == arr.nbytes
    chunk = buf[pos + 20 : pos + 20 + clen]
    assert len(buf) == pos + 20 + clen  # no trailing bytes
    # a standard Blosc2 chunk: format version in byte 0, typesize in byte 3, nbytes and cbytes as int32
    assert chunk[3] == 1
    assert struct.unpack_from("<i", chunk, 4)[0] == ulen
    assert struct.unpack_from("<i", chunk, 12)[0] == clen
    assert blosc2.decompress2(chunk) == arr.tobytes()


@pytest.mark.parametrize("dtype", wire.DTYPES)
def test_round_trip_every_dtype(dtype):
    rng = np.random.default_rng(0)
    arr = (rng.random((3, 5, 7)) * 50).astype(dtype)
    out = decode(encode(arr, image=True))
    assert out.dtype == np.dtype(dtype) and out.shape == arr.shape
    assert np.array_equal(out, arr)
    assert out.flags.writeable


def test_typesize_is_the_item_size_and_big_endian_is_converted():
    arr = np.zeros((3, 3, 3), dtype=">i4")  # all-zero data: the typesize must be right to decode
    buf = encode(arr)
    assert buf[8:13] == b"int32"
    chunk_at = 8 + 5 + 24 + 4 + 16
    assert buf[chunk_at + 3] == 4
    assert np.array_equal(decode(buf), arr)
    be = np.arange(6, dtype=">u2").reshape(1, 2, 3)
    assert np.array_equal(decode(encode(be)), be)


def test_many_chunks_and_any_split_are_read():
    arr = np.random.default_rng(1).integers(0, 9, (20, 30, 40)).astype(np.int16)
    buf = encode(arr, chunk_bytes=1000)
    assert struct.unpack_from("<I", buf, 8 + 5 + 24)[0] == -(-arr.nbytes // 1000)
    assert np.array_equal(decode(buf), arr)


def test_image_filter_choice_keeps_data_exact():
    smooth = np.linspace(0, 1000, 16 * 16 * 16, dtype=np.float32).reshape(1, 16, 16, 16)
    assert np.array_equal(decode(encode(smooth, image=True)), smooth)


def _valid() -> bytes:
    return encode(np.ones((4, 4, 4), np.uint8))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b[:5], "at least 8"),
        (lambda b: b"XNIA" + b[4:], "magic"),
        (lambda b: b[:4] + b"\x02" + b[5:], "version"),
        (lambda b: b[:5] + b"\x03" + b[6:], "codec"),
        (lambda b: b[:8] + b"uint9" + b[13:], "dtype"),
        (lambda b: b[:20], "truncated"),
        (lambda b: b[:-5], "truncated"),
        (lambda b: b[:13] + struct.pack("<q", 5) + b[21:], "does not fit|needs"),
        (lambda b: b[:37] + struct.pack("<I", 0) + b[41:], "needs"),
    ],
)
def test_reader_refuses_bad_bodies(mutate, message):
    with pytest.raises(WireError, match=message):
        decode(mutate(_valid()))


def test_declared_size_is_bounded_before_allocation():
    head = b"NNIA" + bytes([1, 1, 3, 5]) + b"uint8" + struct.pack("<3q", 100000, 100000, 100000) + struct.pack("<I", 0)
    with pytest.raises(WireError, match="limit"):
        decode(head, max_bytes=1 << 30)


def test_codec_byte_is_not_checked_against_the_chunk():
    buf = bytearray(_valid())
    buf[5] = 2  # says LZ4; the chunk records Zstd: readers decode from the chunk
    assert decode(bytes(buf)).sum() == 64


def test_unsupported_dtype_is_refused_on_write():
    with pytest.raises(WireError, match="cannot be sent"):
        encode(np.zeros(3, dtype=np.complex64))
