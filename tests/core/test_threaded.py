"""Threaded bulk copies give numpy's values, and fall back to numpy where torch cannot view an array."""

import numpy as np
import pytest

from napari_nninteractive.core.threaded import as_tensor, copy_into, zero


@pytest.mark.parametrize(
    "src_dtype,dst_dtype",
    [
        (np.uint8, np.float32),
        (bool, np.float32),
        (np.float64, np.float32),
        (np.int64, np.float32),
        (np.uint8, np.uint8),
    ],
)
def test_copy_into_equals_numpy_assignment(src_dtype, dst_dtype):
    rng = np.random.default_rng(0)
    src = rng.normal(0, 1e9, (30, 40, 50)) if src_dtype in (np.float64, np.int64) else rng.integers(0, 2, (30, 40, 50))
    src = src.astype(src_dtype)
    expected = np.zeros((30, 40, 60), dst_dtype)
    expected[:, :, 5:55] = src
    mine = np.zeros((30, 40, 60), dst_dtype)
    copy_into(mine[:, :, 5:55], src)  # a strided destination
    assert np.array_equal(mine, expected)


def test_arrays_torch_cannot_view_go_through_numpy():
    src = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    frozen = src.copy()
    frozen.flags.writeable = False
    assert as_tensor(frozen) is None and as_tensor(src[:, ::-1]) is None
    big = src.astype(">u2")  # big-endian, as some NRRD and FITS files hold
    assert as_tensor(big) is None
    out = np.zeros((2, 3, 4), np.float32)
    copy_into(out, big)
    assert np.array_equal(out, src)
    out = np.zeros((2, 3, 4), np.float32)
    copy_into(out[:, ::-1], frozen)  # negative strides and a read-only source
    assert np.array_equal(out[:, ::-1], frozen)
    zero(out[:, ::-1])
    assert not out.any()


def test_zero_clears_only_the_view():
    a = np.ones((4, 5, 6), np.float32)
    zero(a[1:3, :, 2:4])
    assert a.sum() == 4 * 5 * 6 - 2 * 5 * 2 and not a[1:3, :, 2:4].any()
