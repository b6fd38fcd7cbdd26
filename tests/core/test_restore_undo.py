"""A restored (or reopened) object can be undone prompt by prompt: Undo replays its prompts."""

import numpy as np
import pytest

from napari_nninteractive.core.engines.base import PredictionCancelled
from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.core.prompts import Point, PromptError
from napari_nninteractive.core.session import Session

from ..conftest import sphere, sphere_image
from .test_fusion import _session_scene

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


# --------------------------------------------------------------- rounds: grouping and fusion replayed as they ran

#: Clicks on a sphere touching a darker one: (prompts run together, fusion on?) per prediction. Fusion
#: changes the negative click's result (4313 voxels fused, 4074 not); the two clicks of the third
#: prediction, run one by one, show a mask the user never saw.
PLAN = (
    ((Point((20, 28, 24)),), False),
    ((Point((20, 28, 33)),), True),
    ((Point((17, 27, 33)), Point((18, 30, 33))), False),  # queued (auto-run off), then run together
    ((Point((21, 25, 33)),), True),
    ((Point((19, 28, 35), positive=False),), True),
    ((Point((20, 28, 20)),), False),
)


def _play(s):
    """The plan, switching fusion between predictions as a user of the dock can; the masks seen."""
    seen = []
    for prompts, fusion in PLAN:
        s.fusion = fusion
        for p in prompts[:-1]:
            s.add_prompt(p, run=False)
        s.add_prompt(prompts[-1])
        seen.append(s.read_mask().copy())
    return seen


def _undo_all(s):
    masks = []
    while s.can_undo:
        s.undo()
        masks.append(s.read_mask().copy())
    return masks


def _restored(mask, history, rounds, fusion=False):
    s = Session(SeededWatershedEngine(), fusion=fusion)
    s.set_image(_session_scene())
    s.restore_object(mask, history, rounds)
    return s


def test_undo_of_a_restored_object_replays_its_predictions_as_they_ran_fused_or_not_and_batched():
    original = Session(SeededWatershedEngine())
    original.set_image(_session_scene())
    seen = _play(original)
    history, rounds = original.prompt_history, original.prediction_rounds
    assert rounds == tuple((len(prompts), fusion) for prompts, fusion in PLAN)
    assert original.state().rounds == rounds  # every change tells it, as it tells the history
    for fusion_now in (False, True):  # whatever the switch says now
        s = _restored(seen[-1], history, rounds, fusion_now)
        undone = _undo_all(s)
        assert len(undone) == len(seen)
        assert all(np.array_equal(u, m) for u, m in zip(undone, seen[-2::-1])) and not undone[-1].any()
        for expected in seen:
            s.redo()
            assert np.array_equal(s.read_mask(), expected)
        assert s.prediction_rounds == rounds and s.prompt_history == history
    # the rounds matter here: fused where they were not, or one prompt per prediction, the steps differ
    flipped = tuple((n, not fused) for n, fused in rounds)
    for wrong in (flipped, None):
        undone = _undo_all(_restored(seen[-1], history, wrong))
        assert len(undone) != len(seen) or any(not np.array_equal(u, m) for u, m in zip(undone, seen[-2::-1]))


def test_without_rounds_each_prompt_is_one_prediction_fused_as_the_switch_says():
    original = Session(SeededWatershedEngine())
    original.set_image(_session_scene())
    seen = _play(original)
    for fusion_now in (False, True):
        s = _restored(seen[-1], original.prompt_history, None, fusion_now)
        assert s.prediction_rounds == ((1, fusion_now),) * len(original.prompt_history)


def test_rounds_that_do_not_fit_the_prompts_are_refused():
    s = _session()
    s.add_point(A)
    for bad in (((2, False),), ((0, False),), ((1, "yes"),), ((True, False),)):
        with pytest.raises(PromptError, match="rounds"):
            s.restore_object(s.read_mask(), s.prompt_history, bad)
    s.restore_object(s.read_mask(), s.prompt_history, ((np.int64(1), np.bool_(False)),))  # numpy scalars are fine
    assert s.prediction_rounds == ((1, False),) and type(s.prediction_rounds[0][0]) is int


def test_fusion_is_read_once_when_a_prediction_starts():
    """Switching fusion while the engine runs counts from the next prediction (the dock's checkbox)."""

    def negative_click(fusion, switch_midway):
        s = Session(SeededWatershedEngine(), fusion=fusion)
        s.set_image(_session_scene())
        _play(s)
        s.fusion = fusion
        if switch_midway:
            s.set_run_control(lambda event: setattr(s, "fusion", not fusion), None)
        s.add_point((19, 28, 36), positive=False)
        return s.read_mask(), s.prediction_rounds[-1]

    for fusion in (False, True):
        plain, (_, fused) = negative_click(fusion, False)
        switched, (_, fused_switched) = negative_click(fusion, True)
        assert np.array_equal(plain, switched) and fused == fused_switched == fusion
    assert not np.array_equal(negative_click(False, False)[0], negative_click(True, False)[0])  # fusion matters here


def test_prompts_queued_when_the_object_was_finished_are_queued_again_and_run_with_the_next():
    def finished():
        s = Session(SeededWatershedEngine())
        s.set_image(_session_scene())
        seen = _play(s)
        s.add_prompt(Point((14, 28, 24)), run=False)  # queued, never run: the object was finished so
        return s, seen

    original, seen = finished()
    assert original.prediction_rounds == tuple((len(p), f) for p, f in PLAN)
    s = _restored(seen[-1], original.prompt_history, original.prediction_rounds)
    assert s.pending == original.pending and len(s.pending) == 1  # queued again, as when it was finished
    undone = _undo_all(s)
    assert len(undone) == len(seen) + 1 and np.array_equal(undone[0], seen[-1])  # the queued click goes first
    assert all(np.array_equal(u, m) for u, m in zip(undone[1:], seen[-2::-1])) and not undone[-1].any()

    s = _restored(seen[-1], original.prompt_history, original.prediction_rounds)  # and the next click
    s.add_point((26, 28, 24))
    original.add_point((26, 28, 24))  # runs with the queued one, in the uninterrupted session too
    assert np.array_equal(s.read_mask(), original.read_mask())
    assert s.prediction_rounds == original.prediction_rounds and s.prediction_rounds[-1] == (2, False)


def test_an_object_started_from_an_initial_mask_refines_after_restore_as_before():
    """The engine never sees an initial mask it does not refine; restored, it must not either."""
    shape = (16, 24, 24)
    image = np.full(shape, 30.0, np.float32)
    image[sphere(shape, (8, 12, 8), 5)] = 120
    image[sphere(shape, (8, 12, 17), 4)] = 100
    image += np.random.default_rng(0).normal(0, 6, shape).astype(np.float32)
    start = np.zeros(shape, np.uint8)
    start[sphere(shape, (8, 12, 8), 3)] = 1
    sessions = []
    for restore in (False, True):
        s = Session(SeededWatershedEngine())
        s.set_image(image)
        if restore:
            s.restore_object(sessions[0].read_mask(), sessions[0].prompt_history, sessions[0].prediction_rounds)
        else:
            s.set_initial_mask(start)  # not refined
        sessions.append(s)
    for s in sessions:
        s.add_point((4, 12, 19), run=False)
        s.add_point((6, 7, 19))
    assert np.array_equal(sessions[0].read_mask(), sessions[1].read_mask())
