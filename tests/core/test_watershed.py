"""Speed-ups of the weight-free engine's watershed that must not change a mask: shifted-OR morphology,
floods in two halves, and rough results for regions that grow; and the size of the coarse copy of a
large region (which may change a mask a little)."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.segmentation import watershed as skimage_watershed

from napari_nninteractive.core import threaded
from napari_nninteractive.core.engines import watershed as ws
from napari_nninteractive.core.engines.seeded import SeededConfig
from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.core.morphology import dilate, erode
from napari_nninteractive.core.prompts import Box, Point
from napari_nninteractive.core.session import Session
from napari_nninteractive.eval.runner import dice

from ..conftest import sphere


def test_dilate_and_erode_equal_scipy():
    rng = np.random.default_rng(0)
    for _ in range(300):
        shape = tuple(int(n) for n in rng.integers(1, 9, int(rng.integers(1, 4))))
        mask = rng.random(shape) < rng.random()
        assert np.array_equal(dilate(mask), ndimage.binary_dilation(mask)), shape
        for iterations in (1, 2, 3):
            for border in (False, True):
                expected = ndimage.binary_erosion(mask, iterations=iterations, border_value=border)
                assert np.array_equal(erode(mask, iterations, border), expected), (shape, iterations, border)
    with pytest.raises(ValueError, match="at least 1"):
        erode(np.ones((3, 3), bool), 0)


def _band(seed, shape=(40, 90, 60)):
    """A noisy gradient image and the markers of a band around a blob: 2 inside, 1 outside, 0 in the band."""
    rng = np.random.default_rng(seed)
    blob = ndimage.gaussian_filter(rng.random(shape), 6) > 0.5
    image = ndimage.gaussian_gradient_magnitude(np.where(blob, 100.0, 20.0) + rng.normal(0, 15, shape), 1.0)
    markers = np.ones(shape, np.int32)
    markers[erode(blob, 2, True)] = 2
    markers[dilate(dilate(blob)) & ~erode(blob, 2, True)] = 0
    return image.astype(np.float32), markers, dilate(markers == 0)


def _spy_whole_floods(monkeypatch):
    """Records the shapes :func:`ws._core_flood` floods (after its once-per-process check)."""
    ws.prepare()
    shapes = []
    core = ws._core_flood

    def spy(image, markers, mask, buffers):
        shapes.append(image.shape)
        return core(image, markers, mask, buffers)

    monkeypatch.setattr(ws, "_core_flood", spy)
    return shapes


def test_a_band_flooded_in_two_halves_equals_one_whole_flood(monkeypatch):
    monkeypatch.setattr(ws, "SPLIT_VISITED", 1000)
    floods = _spy_whole_floods(monkeypatch)
    for seed in range(4):
        image, markers, mask = _band(seed)
        floods.clear()
        got = ws._flood(image, markers, mask, split=True)
        assert np.array_equal(got, skimage_watershed(image, markers, mask=mask)), seed
        assert len(floods) == 2 and image.shape not in floods  # two halves, no whole flood after them


def test_halves_that_disagree_at_the_cut_are_replaced_by_one_whole_flood(monkeypatch):
    # one marker at the end of a long corridor: every voxel is flooded from it, across the cut; the half
    # without the marker cannot know that
    monkeypatch.setattr(ws, "SPLIT_VISITED", 1000)
    floods = _spy_whole_floods(monkeypatch)
    shape = (6, 8, 300)
    image = np.tile(np.linspace(0, 1, shape[2], dtype=np.float32), shape[:2] + (1,))
    markers = np.zeros(shape, np.int32)
    markers[:, :, 0] = 1
    markers[0, 0, -1] = 2
    mask = np.ones(shape, bool)
    got = ws._flood(image, markers, mask, split=True)
    assert np.array_equal(got, skimage_watershed(image, markers, mask=mask))
    assert floods[-1] == shape  # the whole flood ran after the halves
    assert (got == 1).mean() > 0.9


def test_the_halves_do_not_depend_on_the_number_of_threads(monkeypatch):
    monkeypatch.setattr(ws, "SPLIT_VISITED", 1000)
    image, markers, mask = _band(7)
    results = []
    for n in (1, 2):
        monkeypatch.setattr(threaded, "workers", lambda n=n: n)
        results.append(np.array(ws._flood(image, markers, mask, split=True)))
    assert np.array_equal(*results)


def test_a_region_that_will_grow_skips_the_band_of_its_rough_result_and_gives_the_same_mask(monkeypatch):
    big = sphere((80, 96, 96), (40, 48, 48), 34)
    rng = np.random.default_rng(0)
    img = np.where(big, 120.0, 40.0).astype(np.float32) + rng.normal(0, 8, big.shape).astype(np.float32)
    refined = []
    band = ws.refine_band
    monkeypatch.setattr(ws, "refine_band", lambda *a: refined.append(1) or band(*a))
    segment = SeededWatershedEngine._segment
    masks, bands = [], []
    for rough in (True, False):
        if not rough:  # every attempt refined, as before

            def refine_always(self, roi, tighten=1.0, provisional=False, probe=False):
                return segment(self, roi, tighten)

            monkeypatch.setattr(SeededWatershedEngine, "_segment", refine_always)
        s = Session(SeededWatershedEngine(SeededConfig(full_res_voxels=20_000)))
        s.set_image(img)
        refined.clear()
        s.add_point((40, 48, 48))
        masks.append(s.mask.copy())
        bands.append(len(refined))
        assert s.engine.forward_passes > 2 and s.engine.last_factors != (1, 1, 1)  # grown, coarse-to-fine
    assert np.array_equal(*masks)
    assert bands[0] < bands[1], bands
    assert dice(masks[0], big) > 0.9


def test_a_large_region_is_solved_on_a_coarse_copy_sized_by_coarse_voxels():
    """``coarse_voxels`` sets the coarse copy's size; ``full_res_voxels`` alone decides whether a region is coarse."""
    big = sphere((48, 64, 64), (24, 32, 32), 18)
    rng = np.random.default_rng(1)
    img = np.where(big, 120.0, 40.0).astype(np.float32) + rng.normal(0, 8, big.shape).astype(np.float32)
    box = Box(((6, 43), (32, 33), (14, 51)))
    seen = {}
    for name, cfg in (
        ("at full resolution", SeededConfig(full_res_voxels=10**12, coarse_voxels=5_000)),
        ("coarse, 20k", SeededConfig(full_res_voxels=20_000)),
        ("coarse, 5k", SeededConfig(full_res_voxels=20_000, coarse_voxels=5_000)),
    ):
        s = Session(SeededWatershedEngine(cfg))
        s.set_image(img)
        s.add_prompt(box)
        seen[name] = (s.engine.last_factors, dice(s.mask, big))
    assert seen["at full resolution"][0] == (1, 1, 1)  # a small coarse copy alone does not make a region coarse
    for name, limit in (("coarse, 20k", 20_000), ("coarse, 5k", 5_000)):
        factors, reached = seen[name]
        assert img.size / np.prod(factors) <= limit, (name, factors)  # the region is at most the image
        assert reached > 0.9, (name, reached)
    assert np.prod(seen["coarse, 5k"][0]) > np.prod(seen["coarse, 20k"][0])


@pytest.mark.parametrize(
    ("dtype", "order", "viewed"),
    [
        (np.int16, "C", True),
        (np.uint8, "C", True),
        (np.dtype(">u2"), "C", True),
        (bool, "C", True),
        (np.float32, "C", True),
        (np.float32, "F", False),  # summed in another order than a C-ordered copy: copied
        (np.float16, "C", False),  # scipy's filters refuse float16: copied
        (np.int32, "C", False),  # float32 does not hold every value: copied
    ],
    ids=["int16", "uint8", "big-endian-uint16", "bool", "float32", "float32-fortran", "float16", "int32"],
)
def test_a_coarse_region_read_from_the_source_gives_the_masks_of_a_float32_copy(monkeypatch, dtype, order, viewed):
    """A coarse-to-fine solve reads an in-memory image through a view (no float32 copy of the region)
    where that gives the same masks, for clicks (their balls read the image), boxes and corrections,
    smoothed or not; other images are copied as before."""
    big = sphere((48, 64, 64), (24, 30, 34), 17)
    rng = np.random.default_rng(3)
    noisy = np.where(big, 160.0, 60.0) + rng.normal(0, 12, big.shape)
    img = (big ^ (rng.random(big.shape) < 0.02)) if dtype is bool else noisy.clip(0, 255).astype(dtype)
    img = np.asfortranarray(img) if order == "F" else img
    prompts = [Point((24, 30, 34)), Point((24, 30, 50), positive=False), Box(((8, 41), (30, 31), (18, 51)))]
    views = []
    source_view = SeededWatershedEngine._source_view
    for smoothing in (0.5, 0.0):
        masks = {}
        for mode in ("view", "copy"):

            def spy(self, roi, mode=mode):
                view = source_view(self, roi) if mode == "view" else None
                if mode == "view":
                    views.append(view is not None)
                return view

            monkeypatch.setattr(SeededWatershedEngine, "_source_view", spy)
            s = Session(SeededWatershedEngine(SeededConfig(full_res_voxels=20_000, smoothing=smoothing)))
            s.set_image(img)
            steps = []
            for p in prompts[:2]:
                s.add_prompt(p)
                steps.append(s.mask.copy())
            s.next_object()
            s.add_prompt(prompts[2])
            steps.append(s.mask.copy())
            assert s.engine.last_factors != (1, 1, 1)  # the coarse path ran
            masks[mode] = steps
        for a, b in zip(masks["view"], masks["copy"]):
            assert np.array_equal(a, b)
        assert dice(masks["view"][-1], big) > 0.85
    assert views and all(v == viewed for v in views)


def test_a_clicks_ball_reads_the_image_in_float32_whatever_its_dtype():
    """``seeds.point_ball`` smooths the ball's voxels: an integer view must give a float32 copy's ball."""
    from napari_nninteractive.core.engines import seeds

    rng = np.random.default_rng(5)
    differ = 0
    for _ in range(60):
        img = rng.integers(0, 4, (15, 15, 15)).astype(np.int16)
        img[:, :, int(rng.integers(4, 11)) :] += 3  # an edge through the ball
        click = Point(tuple(int(c) for c in rng.integers(5, 10, 3)))
        roi = ((0, 15), (0, 15), (0, 15))
        for near_edge in (None, 2):
            _, a = seeds.point_ball(click, 4, img, roi, near_edge)
            _, b = seeds.point_ball(click, 4, img.astype(np.float32), roi, near_edge)
            assert np.array_equal(a, b)
            differ += not np.array_equal(a, seeds.ball(4))
    assert differ  # the edge trimmed some balls: the comparison meant something
