"""Multi-round result fusion (MRF): per-slice choice between the previous and the new mask."""

import numpy as np
import pytest

from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.core.fusion import AXES, fuse
from napari_nninteractive.core.prompts import Box, Point, Scribble
from napari_nninteractive.core.session import Session

from ..conftest import sphere

SHAPE = (12, 24, 24)
FRAME = tuple((0, n) for n in SHAPE)


def _square_scene():
    """An object (bright square column) and a new mask that leaks into the dark background everywhere."""
    rng = np.random.default_rng(0)
    obj = np.zeros(SHAPE, bool)
    obj[:, 6:14, 6:14] = True
    image = np.where(obj, 100.0, 20.0) + rng.normal(0, 3, SHAPE)
    leak = obj.copy()
    leak[:, 6:14, 14:20] = True  # the new round adds background on every slice
    return image.astype(np.float32), obj.astype(np.uint8), leak.astype(np.uint8)


@pytest.mark.parametrize("axes", AXES)
def test_a_leak_into_background_is_reverted_except_on_the_prompted_slice(axes):
    image, old, new = _square_scene()
    scribble_mask = np.zeros((1, 2, 4), bool)
    scribble_mask[0, :, :] = True
    newest = [Scribble(scribble_mask, ((5, 6), (8, 10), (15, 19)), True)]
    fused = fuse(old, new, image, FRAME, newest, newest, axes)
    assert np.array_equal(fused[5], new[5])  # never revert the slice that holds the prompt
    # Elsewhere the leak is background-like and goes (with every axis voting, the planes through
    # the scribble's voxels across the other axes keep it too: they hold the prompt).
    away = np.ones(SHAPE, bool)
    away[5] = False
    if axes == "all":
        away[:, 8:10, :] = away[:, :, 15:19] = False
    assert np.array_equal(fused[away], old[away]) and not np.array_equal(fused, new)


@pytest.mark.parametrize("axes", AXES)
def test_the_slice_of_a_click_outside_the_changed_region_still_takes_the_new_mask(axes):
    """A negative click beside what it removes: the fused region (``frame``) does not hold the click."""
    image, old, new = _square_scene()
    frame = ((0, 12), (2, 18), (10, 20))  # the leak and part of the object; the click at x = 21 lies beyond
    click = Point((5, 10, 21), False)
    crop = tuple(slice(lo, hi) for lo, hi in frame)
    fused = fuse(old[crop], new[crop], image[crop], frame, [click], [click], axes)
    assert np.array_equal(fused[5], new[crop][5])  # the click's slice takes the new mask
    assert not np.array_equal(fused, new[crop])  # elsewhere the leak is judged (and goes)


@pytest.mark.parametrize("scale", [1e-9, 1e-3, 1e4])
def test_fusion_does_not_depend_on_the_image_unit(scale):
    image, old, new = _square_scene()
    click = [Point((5, 10, 10), True)]
    expected = fuse(old, new, image, FRAME, click, click)
    assert np.array_equal(fuse(old, new, (image * scale).astype(np.float32), FRAME, click, click), expected)
    assert not np.array_equal(expected, new)  # the image's votes decide here


def test_a_slice_that_drops_an_earlier_click_keeps_the_old_mask():
    # The image favours the new mask nowhere and everywhere alike (flat), so the prompts decide.
    old = np.zeros(SHAPE, np.uint8)
    old[:, 6:14, 6:14] = 1
    new = old.copy()
    new[3] = 0  # the new round loses slice 3, where the user clicked earlier
    new[:, 6:14, 14:16] = 1
    image = np.full(SHAPE, 50.0, np.float32)
    earlier = Point((3, 10, 10), True)
    newest = [Box(((8, 9), (4, 16), (4, 18)), True)]
    fused = fuse(old, new, image, FRAME, [earlier, *newest], newest, "prompt")
    assert np.array_equal(fused[3], old[3])
    assert np.array_equal(fused[8], new[8])


def test_nothing_to_fuse_returns_the_new_mask():
    image, old, new = _square_scene()
    newest = [Point((5, 10, 10), True)]
    assert np.array_equal(fuse(np.zeros_like(old), new, image, FRAME, newest, newest), new)  # a first prompt
    assert np.array_equal(fuse(old, old, image, FRAME, newest, newest), old)
    with pytest.raises(ValueError, match="unknown fusion axes"):
        fuse(old, new, image, FRAME, newest, newest, "diagonal")
    with pytest.raises(ValueError, match="unknown fusion_axes"):
        Session(SeededWatershedEngine(), fusion=True, fusion_axes="diagonal")


def _session_scene():
    rng = np.random.default_rng(3)
    shape = (40, 56, 56)
    a = sphere(shape, (20, 28, 24), 10)
    b = sphere(shape, (20, 28, 40), 8)  # touches a, a little darker
    img = np.full(shape, 30.0, np.float32)
    img[a] = 120
    img[b] = 100
    img += rng.normal(0, 8, shape).astype(np.float32)
    return img


def _interact(session):
    session.add_bbox([[20, 21], [16, 41], [12, 37]])
    session.add_point((20, 28, 40), positive=False)
    session.add_point((14, 28, 24))


def test_fused_rounds_are_deterministic_and_undo_redo_like_any_other():
    img = _session_scene()
    masks = []
    for _ in range(2):
        s = Session(SeededWatershedEngine(), fusion=True)
        s.set_image(img)
        steps = []
        for prompt in (
            Box(((20, 21), (16, 41), (12, 37)), True),
            Point((20, 28, 40), False),
            Point((14, 28, 24), True),
        ):
            s.add_prompt(prompt)
            steps.append(s.read_mask())
        masks.append(steps)
    assert all(np.array_equal(x, y) for x, y in zip(*masks))
    assert masks[0][-1].any()
    s.undo()
    assert np.array_equal(s.mask, masks[0][1])
    s.redo()
    assert np.array_equal(s.mask, masks[0][2])


def test_the_switch_can_be_flipped_any_time():
    img = _session_scene()
    plain = Session(SeededWatershedEngine())
    assert plain.fusion is False  # off unless asked for (see the docstring for the measurement)
    plain.set_image(img)
    _interact(plain)
    flipped = Session(SeededWatershedEngine(), fusion=True)
    flipped.set_image(img)
    flipped.fusion = False
    _interact(flipped)
    assert np.array_equal(plain.mask, flipped.mask)
    for bad in ("no", None, 2):  # "no" would count as true
        with pytest.raises(ValueError, match="fusion must be True or False"):
            flipped.fusion = bad
        with pytest.raises(ValueError, match="fusion must be True or False"):
            Session(SeededWatershedEngine(), fusion=bad)
    assert flipped.fusion is False
