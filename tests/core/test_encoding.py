"""Exact values of normalisation, point ball, box widening, decay and the float16 rescale."""

import math

import numpy as np
import pytest

from napari_nninteractive.core.encoding import (
    FLOAT16_RESCALE_TARGET,
    Channel,
    ImageError,
    PromptStore,
    compute_normalization,
    point_ball,
)
from napari_nninteractive.core.prompts import Box, Lasso, Point, PromptError, Scribble, fill_polygon

# ----------------------------------------------------------------------------- normalisation


def test_normalization_uses_channel0_over_nonzero_bbox_with_unbiased_std():
    img = np.zeros((1, 5, 5, 5), dtype=np.int16)
    img[0, 2, 2, 1:4] = [1, 0, 2]  # bbox of nonzero = x 1..3, includes the zero
    norm = compute_normalization(img)
    assert norm.mean == 1.0
    assert norm.std == 1.0  # sqrt(((1-1)^2 + (0-1)^2 + (2-1)^2) / (3 - 1))
    out = norm.apply(img[0])
    assert out.dtype == np.float32
    assert out[0, 0, 0] == -1.0 and out[2, 2, 3] == 1.0
    assert img[0, 2, 2, 1] == 1  # caller's array untouched


def test_normalization_bbox_comes_from_sum_over_channels_stats_from_channel0():
    img = np.zeros((2, 4, 4, 4), dtype=np.float32)
    img[1, 0, 0, 0] = 5  # only channel 1 is nonzero here -> widens the bbox
    img[0, 3, 3, 3] = 8
    norm = compute_normalization(img)
    region = img[0]  # bbox covers the whole volume
    assert norm.mean == pytest.approx(region.mean())
    assert norm.std == pytest.approx(region.std(ddof=1))


@pytest.mark.parametrize(
    "img, match",
    [
        (np.zeros((1, 3, 3, 3)), "all zero"),
        (np.full((1, 3, 3, 3), 7.0), "constant intensity"),
        (np.array([[[[1.0, np.nan]]]]), "NaN"),
    ],
)
def test_normalization_rejects_unusable_images(img, match):
    with pytest.raises(ImageError, match=match):
        compute_normalization(img)


# ----------------------------------------------------------------------------- point ball


def test_point_ball_has_257_voxels_centre_one_edge_inverse_sqrt17():
    ball = point_ball(4)
    assert ball.shape == (9, 9, 9)
    assert np.count_nonzero(ball) == 257
    assert ball[4, 4, 4] == 1.0
    edge = np.float32(1 / math.sqrt(17))
    for idx in [(0, 4, 4), (8, 4, 4), (4, 0, 4), (4, 4, 8)]:
        assert ball[idx] == pytest.approx(edge, abs=1e-7)
    offsets = np.argwhere(ball > 0) - 4
    assert ((offsets**2).sum(axis=1) <= 16).all()
    assert ball.min() == 0 and ball[ball > 0].min() == pytest.approx(edge, abs=1e-7)


def test_point_is_clipped_at_the_image_edge():
    store = PromptStore((10, 10, 10), decay=0.98)
    store.add(Point((0, 0, 0)).validated((10, 10, 10)))
    (raster,) = store.state.rasters
    assert raster.bbox == ((0, 5), (0, 5), (0, 5))
    ch = store.compose(Channel.POINT_POS, ((0, 10),) * 3)
    assert ch[0, 0, 0] == pytest.approx(1.0, rel=1e-3)
    assert np.count_nonzero(ch) == np.count_nonzero(point_ball()[4:, 4:, 4:])


# ----------------------------------------------------------------------------- boxes


@pytest.mark.parametrize(
    "raw, expected",
    [
        ([[5, 5], [10, 20], [10, 20]], ((4, 5), (10, 20), (10, 20))),  # zero width -> [lo - 1, hi]
        ([[0, 0], [10, 20], [10, 20]], ((0, 1), (10, 20), (10, 20))),  # at 0 -> [0, 1]
        ([[30, 30], [10, 20], [10, 20]], ((29, 30), (10, 20), (10, 20))),  # on the far edge
        ([[5, 6], [10, 20], [-4, 50]], ((5, 6), (10, 20), (0, 30))),  # clipped
        ([[4.6, 5.4], [2.5, 3.5], [10, 20]], ((4, 5), (2, 4), (10, 20))),  # round half to even
    ],
)
def test_box_rounding_clipping_and_widening(raw, expected):
    assert Box(raw).validated((30, 30, 30)).bbox == expected


@pytest.mark.parametrize(
    "raw, match",
    [
        ([[5, 5], [10, 10], [10, 20]], "zero extent"),
        ([[5, 9], [10, 20], [10, 20]], "3-D box"),
        ([[5, 4], [10, 20], [10, 20]], "lo > hi"),
        ([[40, 41], [10, 20], [10, 20]], "outside the image"),
        ([[5, 6], [10, 20]], "coordinates"),
    ],
)
def test_box_errors_name_the_problem(raw, match):
    with pytest.raises(PromptError, match=match):
        Box(raw).validated((30, 30, 30))


def test_3d_box_allowed_when_model_supports_it_and_fills_with_intensity():
    box = Box([[5, 9], [10, 20], [10, 20]]).validated((30, 30, 30), allow_3d_box=True)
    store = PromptStore((30, 30, 30), decay=0.9)
    store.add(box)
    ch = store.compose(Channel.BBOX_POS, ((0, 30),) * 3)
    assert np.count_nonzero(ch) == 4 * 10 * 10
    assert set(np.unique(ch)) == {0.0, np.float32(np.float16(1 / 0.9)) / np.float32(1 / 0.9)}


# ----------------------------------------------------------------------------- decay


def test_decay_makes_newest_prompt_one_and_older_ones_decay_powers():
    shape = (40, 40, 40)
    store = PromptStore(shape, decay=0.9)
    centres = [(5, 5, 5), (20, 20, 20), (35, 35, 35)]
    for c in centres:
        store.add(Point(c).validated(shape))
    assert store.intensity == pytest.approx(0.9**-3, rel=1e-12)
    ch = store.compose(Channel.POINT_POS, ((0, 40),) * 3)
    for k, c in enumerate(reversed(centres)):
        stored = np.float32(np.float16(np.float32(0.9 ** -(3 - k))))
        assert ch[c] == stored / np.float32(store.intensity)  # exact float16 arithmetic
        assert ch[c] == pytest.approx(0.9**k, rel=1e-3)


def test_overlapping_points_merge_by_max():
    shape = (20, 20, 20)
    store = PromptStore(shape, decay=0.5)  # first point stored x2, second x4
    store.add(Point((10, 10, 10)).validated(shape))
    store.add(Point((10, 10, 12)).validated(shape))
    ch = store.compose(Channel.POINT_POS, ((0, 20),) * 3)
    ball = point_ball()

    def f16(v):
        return np.float32(np.float16(np.float32(v)))

    assert ch[10, 10, 12] == 1.0
    # at the older centre the newer ball (offset 2) wins over the decayed 0.5
    assert ch[10, 10, 10] == max(f16(2 * ball[4, 4, 4]), f16(4 * ball[4, 4, 2])) / 4
    assert ch[10, 10, 10] > 0.5
    # two voxels further out, the older ball (offset 2) wins over the newer one (offset 4)
    assert ch[10, 10, 8] == max(f16(2 * ball[4, 4, 2]), f16(4 * ball[4, 4, 0])) / 4
    assert ch[10, 10, 7] == f16(2 * ball[4, 4, 1]) / 4  # only the older ball reaches here


def test_float16_rescale_keeps_relative_values_and_stays_finite():
    shape = (8, 8, 200)
    store = PromptStore(shape, decay=0.5)
    coords = [(4, 4, 5 + 12 * i) for i in range(16)]
    for _i, c in enumerate(coords[:15]):
        store.add(Point(c).validated(shape))
    assert store.intensity == 2.0**15  # 32768 <= 65504: no rescale yet
    before = store.state.rasters[0].values.max()
    store.add(Point(coords[15]).validated(shape))
    # 65536 > 65504 -> everything rescaled by 6550.4 / 65536, intensity becomes 6550.4
    assert store.intensity == FLOAT16_RESCALE_TARGET
    factor = FLOAT16_RESCALE_TARGET / 2.0**16
    assert store.state.rasters[0].values.max() == np.float16(np.float32(before) * np.float32(factor))
    ch = store.compose(Channel.POINT_POS, ((0, 8), (0, 8), (0, 200)))
    assert np.isfinite(ch).all()
    assert ch[coords[15]] == pytest.approx(1.0, rel=1e-3)
    assert ch[coords[14]] == pytest.approx(0.5, rel=1e-3)
    assert ch[coords[10]] == pytest.approx(0.5**5, rel=2e-3)


# ----------------------------------------------------------------------------- region prompts


def test_scribble_full_size_and_crop_forms_agree():
    shape = (10, 12, 14)
    full = np.zeros(shape, dtype=np.uint8)
    full[3, 4:8, 5] = 1
    a = Scribble(full).validated(shape)
    b = Scribble(np.ones((1, 4, 1)), bbox=((3, 4), (4, 8), (5, 6))).validated(shape)
    assert a.bbox == b.bbox == ((3, 4), (4, 8), (5, 6))
    assert np.array_equal(a.mask, b.mask)


@pytest.mark.parametrize(
    "prompt, match",
    [
        (Scribble(np.zeros((10, 12, 14))), "empty"),
        (Lasso(np.ones((3, 3, 3))), "shape"),
        (Scribble(np.ones((2, 2, 2)), bbox=((0, 2), (0, 2), (0, 3))), "must match"),
        (Point((5, 5, 20)), "outside"),
        (Point((5, float("nan"), 2)), "non-finite"),
    ],
)
def test_region_and_point_errors(prompt, match):
    with pytest.raises(PromptError, match=match):
        prompt.validated((10, 12, 14))


def test_fill_polygon_fills_a_square_on_one_slice():
    crop, box = fill_polygon([[3, 2, 2], [3, 2, 6], [3, 6, 6], [3, 6, 2]], (10, 10, 10))
    assert box[0] == (3, 4)
    assert crop.sum() == 25  # voxel centres 2..6 inclusive on both in-plane axes
    with pytest.raises(PromptError, match="one slice"):
        fill_polygon([[3, 2, 2], [4, 2, 6], [3, 6, 6]], (10, 10, 10))
    with pytest.raises(PromptError, match="no area: its vertices lie on a line"):
        fill_polygon([[3, 5, 5], [3, 15, 15], [3, 30, 30]], (10, 40, 40))  # collinear: no lasso drawn
    with pytest.raises(PromptError, match="within one voxel"):
        fill_polygon([[3, 5, 5], [3, 5.2, 5.1], [3, 5.1, 5.3]], (10, 40, 40))
    assert fill_polygon([[3, 5, 5], [3, 5, 6], [3, 6, 6]], (10, 40, 40))[0].sum() >= 1  # small, but an area
    eight = [[3, 5, 5], [3, 35, 35], [3, 35, 5], [3, 5, 35]]  # a figure eight: no net area, two lobes
    assert fill_polygon(eight, (10, 40, 40))[0].sum() > 300


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint16, np.uint8, np.int32, np.int64, bool])
def test_normalising_into_an_array_equals_copy_then_subtract_then_divide(dtype):
    """apply_into casts and subtracts in one pass; every value equals the three-step float32 construction."""
    from napari_nninteractive.core.encoding import Normalization

    rng = np.random.default_rng(3)
    high = {np.int32: 2**31 - 1, np.int64: 2**40}.get(dtype, 250)  # wide integers round when cast to float32
    values = (
        rng.normal(0, 3e4, (20, 30, 40)) if dtype in (np.float32, np.float64) else rng.integers(0, high, (20, 30, 40))
    ).astype(dtype)
    norm = Normalization(mean=123.456789, std=78.9012345)
    reference = np.empty(values.shape, np.float32)
    reference[...] = values
    reference -= np.float32(norm.mean)
    reference /= np.float32(norm.std)
    out = np.empty(values.shape, np.float32)
    norm.apply_into(values[:, ::-1], out[:, ::-1])  # negative strides: the numpy path
    assert np.array_equal(out, reference)
    out = np.full(values.shape, np.nan, np.float32)
    norm.apply_into(values[:, 3:], out[:, 3:])  # strided views torch shares: the torch path
    assert np.array_equal(out[:, 3:], reference[:, 3:]) and np.isnan(out[:, :3]).all()
    frozen = values.copy()
    frozen.flags.writeable = False  # read-only input (torch cannot view it): cast by numpy first
    assert np.array_equal(norm.apply(frozen), reference)
    swapped = values.astype(values.dtype.newbyteorder())  # the other byte order: numpy's cast too
    assert np.array_equal(norm.apply(swapped), reference)
    assert np.array_equal(norm.apply(values), reference)
