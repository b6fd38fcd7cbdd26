"""The region upsampling of a 0/1 prediction is bit-identical to torch's full trilinear interpolation."""

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_nninteractive.core import mask_upsampling as mu


def torch_mask(pred: np.ndarray, size) -> np.ndarray:
    t = torch.from_numpy(pred.astype(np.float32))[None, None]
    return (F.interpolate(t, size=tuple(size), mode="trilinear", align_corners=False)[0, 0] >= 0.5).numpy()


def ellipsoid(shape, centre, radii) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)) <= 1


def test_the_replica_is_trusted_on_this_torch():
    """If this fails the code still gives torch's result (full interpolation), only slower."""
    assert mu._replica_matches_torch()
    for n_in, n_out in ((32, 48), (32, 72), (32, 108), (32, 128), (192, 648), (37, 50)):
        assert mu._checked_table(n_in, n_out) is not None, (n_in, n_out)


@pytest.mark.parametrize("n_in,n_out", [(32, 48), (32, 72), (32, 108), (32, 128), (24, 81), (37, 50)])
def test_regions_equal_the_full_interpolation(n_in, n_out):
    rng = np.random.default_rng(n_out)
    shape = (n_in, n_in + 1, n_in + 2)
    size = (n_out, n_out + 3, n_out + 5)
    preds = [
        rng.random(shape) > 0.5,  # every block mixed: many values near 0.5
        ellipsoid(shape, (n_in / 2, n_in / 2.3, n_in / 1.8), (n_in / 2.5, n_in / 3, n_in / 2.2)),
        np.ones(shape, bool),
        np.zeros(shape, bool),
    ]
    regions = [
        None,
        ((n_out // 3, n_out), (1, n_out // 2), (n_out // 4, n_out + 5)),
        ((0, 1), (n_out + 2, n_out + 3), (7, 8)),
        ((n_out - 5, n_out), (0, n_out + 3), (0, 9)),
    ]
    for pred in preds:
        full = torch_mask(pred, size)
        for region in regions:
            got = mu.upsample_mask_region(pred.astype(np.uint8), size, region)
            want = full if region is None else full[tuple(slice(lo, hi) for lo, hi in region)]
            assert got.dtype == bool and np.array_equal(got, want), region


def test_the_fallback_gives_the_same_result(monkeypatch):
    """Where the replica is not trusted the full torch interpolation is cropped: same answer."""
    rng = np.random.default_rng(1)
    pred = rng.random((20, 21, 22)) > 0.4
    size, region = (45, 47, 50), ((3, 40), (0, 47), (10, 50))
    want = mu.upsample_mask_region(pred, size, region)
    monkeypatch.setattr(mu, "_replica_matches_torch", lambda: False)
    assert np.array_equal(mu.upsample_mask_region(pred, size, region), want)
    assert np.array_equal(want, torch_mask(pred, size)[3:40, :, 10:50])


def test_fma32_rounds_once():
    rng = np.random.default_rng(2)
    a = rng.random(2000).astype(np.float32)
    b = rng.random(2000).astype(np.float32)
    c = (rng.random(2000) - 0.5).astype(np.float32) * np.float32(1e-3)
    got = mu.fma32(a, b, c)
    for x, y, z, g in zip(a[:300], b[:300], c[:300], got[:300]):
        exact = Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z))
        lo = np.float32(float(exact))
        candidates = [lo, np.nextafter(lo, np.float32(-1)), np.nextafter(lo, np.float32(2))]
        best = min(candidates, key=lambda v: (abs(Fraction(float(v)) - exact), int(v.view(np.int32)) & 1))
        assert g == best
    # (0.5 - 2^-24)(1 + 2^-23) + (2^23 + 1) = 2^23 + 1.5 - 2^-47: float64 holds 2^23 + 1.5, a float32 tie that
    # rounding to even would send up; the exact sum lies below it
    tie = mu.fma32(np.float32([0.5 - 2**-24]), np.float32([1 + 2**-23]), np.float32([2**23 + 1]))
    assert tie[0] == np.float32(2**23 + 1)
    assert np.float32(np.float64(0.5 - 2**-24) * (1 + 2**-23) + (2**23 + 1)) == np.float32(2**23 + 2)


def test_a_bad_region_is_refused():
    with pytest.raises(ValueError, match="not a non-empty part"):
        mu.upsample_mask_region(np.zeros((4, 4, 4), np.uint8), (8, 8, 8), ((0, 9), (0, 8), (0, 8)))
