"""The weight-free engine's threaded Gaussian filters equal scipy's to the bit."""

import numpy as np
import pytest
from scipy import ndimage

from napari_nninteractive.core.engines import filters


@pytest.mark.parametrize("shape", [(70, 90, 110), (3, 200, 700), (64, 64, 1), (5, 6, 7)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threaded_filters_equal_scipy(shape, dtype, monkeypatch):
    monkeypatch.setattr(filters, "MIN_THREADED_VOXELS", 0)  # threads even for the small shapes
    monkeypatch.setattr(filters, "workers", lambda: 3)  # chunks of unequal size
    data = np.random.default_rng(1).normal(100, 30, shape).astype(dtype)
    view = data[:, ::2] if shape[1] > 2 else data  # a strided input too
    for x in (data, view):
        for sigma in (0.7, 1.0, 2.5):
            assert np.array_equal(filters.gaussian_filter(x, sigma), ndimage.gaussian_filter(x, sigma))
            assert np.array_equal(
                filters.gaussian_gradient_magnitude(x, sigma), ndimage.gaussian_gradient_magnitude(x, sigma)
            )
    assert np.array_equal(filters.gaussian_filter(data, 0.0), data)
    assert np.array_equal(
        filters.gaussian_gradient_magnitude(data, 0.0), ndimage.gaussian_gradient_magnitude(data, 0.0)
    )
    assert data.dtype == dtype  # the input is never changed


def test_one_piece_below_the_threshold_gives_the_same():
    data = np.random.default_rng(2).normal(0, 1, (20, 30, 40)).astype(np.float32)
    assert data.size < filters.MIN_THREADED_VOXELS
    assert np.array_equal(
        filters.gaussian_gradient_magnitude(data, 1.0), ndimage.gaussian_gradient_magnitude(data, 1.0)
    )
