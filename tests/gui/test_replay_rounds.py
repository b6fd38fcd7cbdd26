"""Undo of a reopened or reloaded object shows the masks the user saw: fusion switched between predictions
and prompts queued with auto-run off are replayed as they ran."""

import numpy as np
import pytest

from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.gui.annotator import Tool
from napari_nninteractive.gui.widget import NNInteractiveWidget

from ..core.test_fusion import _session_scene
from ..core.test_restore_undo import PLAN

pytestmark = pytest.mark.qt


def _start(viewer, fusion):
    layer = viewer.add_image(_session_scene(), name="scan")
    w = NNInteractiveWidget(viewer)
    w.annotator.notify = lambda msg, level="info": None
    w.fusion_check.setChecked(fusion)
    a = w.start_with_engine(layer, SeededWatershedEngine())
    w.session_started()
    return w, a


def _mask(viewer):
    return np.asarray(viewer.layers["nnInteractive objects"].data) == 1


def _play(w, a, viewer):
    """The core test's plan, clicked in the dock: the checkbox switched between predictions, the batch queued."""
    seen = []
    for prompts, fusion in PLAN:
        w.fusion_check.setChecked(fusion)
        w.autorun_check.setChecked(len(prompts) == 1)
        for p in prompts:
            a.set_polarity(p.positive)
            a.prompt_layers[Tool.POINT].add(list(p.coord))
            a.runner.wait(60)
        if len(prompts) > 1:
            w.run_button.click()
            a.runner.wait(60)
        seen.append(_mask(viewer).copy())
    a.set_polarity(True)
    w.autorun_check.setChecked(True)
    return seen


def _undo_all(w, a, viewer, steps):
    masks = []
    for _ in range(steps):
        w.undo_button.click()
        a.runner.wait(60)
        masks.append(_mask(viewer).copy())
    return masks


def test_undo_after_reopening_and_after_loading_replays_the_masks_the_user_saw(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    monkeypatch.setenv("NNINTERACTIVE_HOME", str(tmp_path / "home"))
    v1 = make_napari_viewer()
    w, a = _start(v1, fusion=False)
    seen = _play(w, a, v1)
    assert a.rounds[0] == tuple((len(prompts), fusion) for prompts, fusion in PLAN)
    assert len({m.sum() for m in seen}) > 3  # the clicks changed the object
    w.save_session(tmp_path / "s.npz")
    qtbot.waitUntil(lambda: w.file_worker is None, timeout=30000)

    w.fusion_check.setChecked(True)  # the switch says otherwise now: the replay does not care
    a.next_object()
    a.runner.wait(60)
    a.select_object(0)  # reopened from the Objects list
    a.runner.wait(60)
    undone = _undo_all(w, a, v1, len(seen))
    assert all(np.array_equal(u, m) for u, m in zip(undone, seen[-2::-1])) and not undone[-1].any()

    v2 = make_napari_viewer()  # "the next day": the session file, the switch off
    w2, a2 = _start(v2, fusion=False)
    w2.load_session(tmp_path / "s.npz")
    qtbot.waitUntil(lambda: w2.file_worker is None, timeout=30000)
    a2.runner.wait(60)
    qtbot.wait(20)
    assert np.array_equal(_mask(v2), seen[-1])
    undone = _undo_all(w2, a2, v2, len(seen))
    assert all(np.array_equal(u, m) for u, m in zip(undone, seen[-2::-1])) and not undone[-1].any()
