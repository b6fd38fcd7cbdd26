"""Session API: images, queueing, undo/redo bit for bit, cancel, buffers, initial masks."""

import numpy as np
import pytest

from napari_nninteractive.core.encoding import ImageError
from napari_nninteractive.core.engines.base import PredictionCancelled
from napari_nninteractive.core.engines.network import NetworkEngine
from napari_nninteractive.core.prompts import PromptError
from napari_nninteractive.core.session import Session

from ..conftest import ThresholdNet, fake_model, sphere, sphere_image

SHAPE, C = (96, 96, 96), (48, 48, 48)


def make_session(net=None, image=None, **meta):
    engine = NetworkEngine(fake_model(net or ThresholdNet(0.5), **meta), device="cpu", autozoom=False)
    session = Session(engine)
    session.set_image(sphere_image(SHAPE, C, 12) if image is None else image)
    return session


def test_prompts_queue_without_predicting_then_one_predict_uses_them_all():
    s = make_session()
    assert s.add_point(C, run=False).bbox is None
    assert s.add_bbox([[48, 49], [30, 66], [30, 66]], run=False).bbox is None
    assert len(s.pending) == 2 and not s.mask.any()
    changed = s.predict().bbox
    assert changed == ((16, 80),) * 3 and s.pending == ()
    assert np.array_equal(s.mask, sphere(SHAPE, C, 12))
    assert s.predict().bbox is None  # nothing queued


def test_undo_redo_round_trips_bit_for_bit():
    image = sphere_image(SHAPE, C, 12)
    image[60:70, 60:70, 60:70] = 100  # a second bright object
    s = make_session(image=image)
    states = [s.mask.copy()]
    s.add_point(C)
    states.append(s.mask.copy())
    s.add_point((65, 65, 65))
    states.append(s.mask.copy())
    scribble = np.zeros(SHAPE, np.uint8)
    scribble[50, 40:44, 40] = 1
    s.add_scribble(scribble, positive=False)
    states.append(s.mask.copy())
    s.reset_object()
    states.append(s.mask.copy())
    assert not states[-1].any() and states[2].any()
    for expected in reversed(states[:-1]):
        s.undo()
        assert np.array_equal(s.mask, expected)
    assert not s.can_undo and s.undo().bbox is None
    for expected in states[1:]:
        s.redo()
        assert np.array_equal(s.mask, expected)
    assert not s.can_redo


def test_undo_restores_prompt_state_so_the_next_prediction_matches():
    s = make_session(ThresholdNet(0.5))
    s.add_point(C)
    state = s.engine.get_state()
    s.add_point((60, 60, 60), positive=False)
    s.undo()
    assert s.engine.get_state() is state
    s.redo()
    assert len(s.engine.get_state().rasters) == 2


def test_new_action_after_undo_clears_redo():
    s = make_session()
    s.add_point(C)
    s.undo()
    assert s.can_redo
    s.add_point(C)
    assert not s.can_redo


def test_undo_of_queued_prompt_removes_it():
    s = make_session()
    s.add_point(C, run=False)
    s.undo()
    assert s.pending == () and s.engine.get_state().rasters == ()


def test_cancel_leaves_the_mask_intact_and_keeps_the_prompt_queued():
    s = make_session()
    s.add_point(C)
    before = s.mask.copy()
    s.should_cancel = lambda: True
    with pytest.raises(PredictionCancelled):
        s.add_point((20, 20, 20), positive=True)
    assert np.array_equal(s.mask, before)
    assert len(s.pending) == 1
    s.should_cancel = None
    s.predict()
    assert s.pending == ()
    s.undo()  # undo the prediction
    assert np.array_equal(s.mask, before) and len(s.pending) == 1
    s.undo()  # undo the queued prompt
    assert s.pending == ()


def test_cancel_midway_through_refinement_rolls_back_everything():
    engine = NetworkEngine(fake_model(ThresholdNet(0.5)), device="cpu")
    calls = {"n": 0}

    def cancel_after_three():
        calls["n"] += 1
        return calls["n"] > 3

    s = Session(engine, should_cancel=cancel_after_three)
    s.set_image(sphere_image((160,) * 3, (80,) * 3, 40))
    init = np.zeros((160,) * 3, np.uint8)
    init[40:50, 40:50, 40:50] = 1
    s.set_initial_mask(init)
    with pytest.raises(PredictionCancelled):
        s.add_point((80, 80, 80))
    assert np.array_equal(s.mask, init)


def test_output_buffer_receives_only_changed_regions():
    s = make_session()
    buf = np.full(SHAPE, 7, dtype=np.uint16)
    s.set_output_buffer(buf)
    changed = s.add_point(C).bbox
    inside = tuple(slice(lo, hi) for lo, hi in changed)
    assert np.array_equal(buf[inside], sphere(SHAPE, C, 12)[inside])
    assert (buf[:10] == 7).all()  # outside the changed bbox untouched
    assert s.mask is buf
    s.undo()
    assert not buf[inside].any()
    with pytest.raises(ImageError, match="buffer"):
        s.set_output_buffer(np.zeros((5, 5, 5)))


def test_initial_mask_without_refine_replaces_the_object_and_resets_prompts():
    s = make_session()
    s.add_point(C)
    init = np.zeros(SHAPE, np.uint8)
    init[5:10, 5:10, 5:10] = 1
    change = s.set_initial_mask(init)
    changed = change.bbox
    assert np.array_equal(s.mask, init)
    assert s.engine.get_state().rasters == () and change.forward_passes == 0  # no new pass
    assert changed == ((5, 61),) * 3  # union of the mask (5..9) and the old sphere (36..60)
    s.undo()
    assert np.array_equal(s.mask, sphere(SHAPE, C, 12))


def test_initial_mask_with_refine_runs_the_network_around_it():
    engine = NetworkEngine(fake_model(ThresholdNet(0.5)), device="cpu")
    s = Session(engine)
    shape, c = (160,) * 3, (80,) * 3
    s.set_image(sphere_image(shape, c, 40))
    rough = sphere(shape, c, 36).astype(np.uint8)  # a too-small outline of the object
    s.set_initial_mask(rough, refine=True)
    assert engine.forward_passes > 1
    assert np.array_equal(s.mask, sphere(shape, c, 40))


def test_images_2d_and_4d_and_bad_ones():
    s = make_session()
    img2d = sphere_image((1, 64, 64), (0, 32, 32), 10)[0]
    s.set_image(img2d)
    assert s.shape == (1, 64, 64)
    s.add_bbox([[0, 1], [20, 44], [20, 44]])
    assert s.mask[0, 32, 32] == 1
    with pytest.raises(ImageError, match="channels"):
        s.set_image(np.stack([sphere_image(SHAPE, C, 12)] * 2))
    with pytest.raises(ImageError, match="axes"):
        s.set_image(np.zeros((2, 2, 2, 2, 2)))
    with pytest.raises(ImageError, match="dtype"):
        s.set_image(np.array([["a"]]))
    with pytest.raises(ImageError, match="all zero"):
        s.set_image(np.zeros((8, 8, 8)))
    with pytest.raises(ImageError, match="has no channel"):  # (0, z, y, x): no traceback, a message
        s.set_image(np.zeros((0, 8, 8, 8), np.float32))
    with pytest.raises(ImageError, match="empty axis; pass"):
        s.set_image(np.zeros((8, 0, 8), np.float32))


def test_a_point_of_non_numbers_gets_a_prompt_error():
    s = make_session()
    for coord in (("a", 2, 3), (None, 2, 3), ([1], 2, 3)):
        with pytest.raises(PromptError, match="must be numbers"):
            s.add_point(coord)
    assert s.prompt_history == () and not s.mask.any()
    for positive in ("no", None, 2):  # "no" would count as true
        with pytest.raises(PromptError, match="'positive' must be true or false"):
            s.add_point(C, positive=positive)
        with pytest.raises(PromptError, match="'positive' must be true or false"):
            s.add_bbox([[C[0], C[0] + 1], [0, 10], [0, 10]], positive=positive)
    assert s.prompt_history == ()
    s.add_point(C, positive=np.bool_(True))
    s.add_point(C, positive=0)
    assert [p.positive for p in s.prompt_history] == [True, False]


def test_prompt_before_image_and_unsupported_kind_errors():
    engine = NetworkEngine(fake_model(ThresholdNet(0.5), supported=frozenset()), device="cpu")
    s = Session(engine)
    with pytest.raises(ImageError, match="set_image"):
        s.add_point((1, 1, 1))
    s.set_image(sphere_image(SHAPE, C, 12))
    with pytest.raises(PromptError, match="does not support point"):
        s.add_point(C)


def test_session_never_modifies_the_callers_image():
    image = sphere_image(SHAPE, C, 12)
    copy = image.copy()
    s = make_session(image=image)
    s.add_point(C)
    assert np.array_equal(image, copy)


def test_new_object_starts_fresh_without_touching_the_output_buffer():
    s = make_session()
    buf = np.zeros(SHAPE, dtype=np.uint8)
    s.set_output_buffer(buf)
    s.add_point(C)
    kept = buf.copy()
    s.next_object()
    assert not s.can_undo and s.pending == () and s.engine.get_state().rasters == ()
    assert np.array_equal(buf, kept) and buf.any()
    s.set_output_buffer(None)
    assert not s.mask.any()


def test_state_nbytes_counts_mask_prompts_and_packed_history():
    from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine

    img = np.zeros((40, 50, 60), np.float32)
    img[10:30, 10:40, 10:50] = 100
    s = Session(SeededWatershedEngine())
    s.set_image(img)
    assert s.state_nbytes() == {"mask": 40 * 50 * 60, "prompts": 0, "history": 0}
    stroke = np.zeros((1, 50, 60), bool)
    stroke[0, 20:22, 20:40] = True
    s.add_scribble(stroke, bbox=[[20, 21], [0, 50], [0, 60]])
    s.add_point((20, 25, 25))
    used = s.state_nbytes()
    assert used["prompts"] == 2 * 20  # the scribble's tight crop (2 x 20 voxels), once despite two states
    assert 0 < used["history"] <= 2 * 2 * (40 * 50 * 60) // 8 + 128  # two steps, 2 bits per changed voxel each
