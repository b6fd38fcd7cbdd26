"""A restored (or reopened) object can be undone prompt by prompt: Undo replays its prompts."""

import numpy as np
import pytest

from napari_nninteractive.core.engines.base import PredictionCancelled
from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.core.session import Session

from ..conftest import sphere, sphere_image

SHAPE = (24, 40, 60)
A, B = (12, 20, 18), (12, 20, 42)


def _image():
    img = sphere_image(SHAPE, A, 7)
    img[sphere(SHAPE, B, 6)] = 100
    return img


def _session():
    s = Session(SeededWatershedEngine())
    s.set_image(_image())
    return s


def _steps(s):
    masks = []
    for call in (lambda: s.add_point(A), lambda: s.add_point(B), lambda: s.add_point((12, 20, 30), positive=False)):
        call()
        masks.append(s.read_mask().copy())
    return masks


def test_undo_after_restore_steps_back_through_each_prompt_and_redo_returns_to_the_restored_mask():
    original = _session()
    masks = _steps(original)
    assert not np.array_equal(masks[0], masks[1])
    edited = masks[2].copy()
    edited[0, 0, 0] = 1  # a hand edit made in the labels layer before saving
    s = _session()
    s.restore_object(edited, original.prompt_history)
    assert s.can_undo and s.state().can_undo  # offered before any step is stored
    s.undo()
    assert np.array_equal(s.read_mask(), masks[1]) and len(s.prompt_history) == 2
    s.undo()
    assert np.array_equal(s.read_mask(), masks[0])
    s.undo()
    assert not s.read_mask().any() and s.prompt_history == () and not s.can_undo
    for _ in range(3):
        s.redo()
    assert np.array_equal(s.read_mask(), edited) and s.prompt_history == original.prompt_history  # as restored
    s.add_point((12, 20, 30), positive=False)  # and the next prompt refines it as the uninterrupted session would
    original.add_point((12, 20, 30), positive=False)
    assert np.array_equal(s.read_mask() & ~edited, original.read_mask() & ~edited)


def test_a_cancel_during_the_replay_leaves_the_restored_object_as_it_was():
    original = _session()
    masks = _steps(original)
    s = _session()
    s.restore_object(masks[2], original.prompt_history)
    s.set_run_control(None, lambda: True)
    with pytest.raises(PredictionCancelled):
        s.undo()
    assert np.array_equal(s.read_mask(), masks[2]) and s.prompt_history == original.prompt_history
    assert s.can_undo  # still offered: the next undo replays again
    s.set_run_control(None, None)
    s.undo()
    assert np.array_equal(s.read_mask(), masks[1])


def test_an_object_restored_without_prompts_has_nothing_to_undo():
    s = _session()
    mask = np.zeros(SHAPE, np.uint8)
    mask[sphere(SHAPE, A, 5)] = 1
    s.restore_object(mask)
    assert not s.can_undo
    s.undo()
    assert np.array_equal(s.read_mask(), mask)
