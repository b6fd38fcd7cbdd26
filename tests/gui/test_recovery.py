"""Work that must not get lost: kept autosaves after a crash, objects kept out by the overlap rule, colours."""

import numpy as np
import pytest

from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.gui.annotator import OutputMode, Tool
from napari_nninteractive.gui.output import KEPT_OUT
from napari_nninteractive.gui.persist import KEEP
from napari_nninteractive.gui.widget import NNInteractiveWidget

from ..conftest import sphere, sphere_image

pytestmark = pytest.mark.qt

SHAPE, A, B, C = (40, 48, 120), (20, 24, 30), (20, 24, 90), (20, 24, 60)


def _image():
    img = sphere_image(SHAPE, A, 8)
    img[sphere(SHAPE, B, 7)] = 100
    img[sphere(SHAPE, C, 6)] = 100
    return img


def _start(viewer, mode=OutputMode.INSTANCE):
    """The widget on the three-blob image with the weight-free engine, its session started."""
    layer = viewer.add_image(_image(), name="scan")
    w = NNInteractiveWidget(viewer)
    msgs = []
    w.annotator.notify = lambda msg, level="info": msgs.append(msg)
    w.mode_combo.setCurrentIndex(list(OutputMode).index(mode))
    a = w.start_with_engine(layer, SeededWatershedEngine())
    return w, a, msgs


def _segment(a, *centres):
    for i, centre in enumerate(centres):
        if i:
            a.next_object()
        a.prompt_layers[Tool.POINT].add(list(centre))
        a.runner.wait(60)


def _saved(w, qtbot):
    qtbot.waitUntil(lambda: not w.autosaver.busy, timeout=30000)


def _objects(viewer):
    return set(np.unique(np.asarray(viewer.layers["nnInteractive objects"].data))) - {0}


def test_a_crash_autosave_survives_new_work_and_restarts_and_is_offered_loudly(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    monkeypatch.setenv("NNINTERACTIVE_HOME", str(tmp_path / "home"))
    v1 = make_napari_viewer()
    w, a, _ = _start(v1)
    assert w.session_started() is None and not w.restore_button.isEnabled()
    _segment(a, A, B, C)
    _saved(w, qtbot)
    rich = np.asarray(v1.layers["nnInteractive objects"].data).copy()
    assert _objects(v1) == {1, 2, 3}

    v2 = make_napari_viewer()  # after a crash: the offer cannot be missed
    w2, a2, msgs2 = _start(v2)
    found = w2.session_started()
    assert found is not None and len(found.objects) == 3
    assert any("autosave" in m and "3 objects" in m and "Restore autosave" in m for m in msgs2)  # notified
    assert w2.restore_button.isEnabled() and "3 objects" in w2.restore_button.text()
    assert w2.restore_button.styleSheet()  # highlighted
    _segment(a2, A)  # one prompt without pressing Restore: the next autosave holds 1 object
    _saved(w2, qtbot)
    assert w2.restore_button.isEnabled() and "3 objects" in w2.restore_button.text()  # still offered

    v3 = make_napari_viewer()  # crash again: both generations are kept, the rich one is not lost
    w3, a3, _ = _start(v3)
    w3.session_started()
    assert sorted(r.objects for r in w3.session_panel.recoveries) == [
        1,
        3,
    ] and w3.session_panel.recovery_combo.isVisibleTo(w3)
    w3.restore_autosave(index=[r.objects for r in w3.session_panel.recoveries].index(3))
    a3.runner.wait(60)
    assert np.array_equal(np.asarray(v3.layers["nnInteractive objects"].data), rich)
    assert not w3.restore_button.isEnabled() and w3.restore_button.text() == "Restore autosave"

    for _ in range(KEEP + 2):  # restarts never keep more than KEEP files, and the richest survives
        _segment(a3, A)
        _saved(w3, qtbot)
        w3.session_started()
    folder = w3.autosaver.path().parent
    assert len(list(folder.glob("*.recovered-*"))) <= KEEP and max(r.objects for r in w3.session_panel.recoveries) == 3


def test_a_prompt_on_another_objects_voxels_says_so_and_leaves_no_empty_object(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    w, a, msgs = _start(viewer)
    _segment(a, A, B)
    before = np.asarray(viewer.layers["nnInteractive objects"].data).copy()
    a.next_object()
    a.prompt_layers[Tool.POINT].add(list(A))  # the watershed gives object 1's blob: all kept out
    a.runner.wait(60)
    assert KEPT_OUT in msgs
    assert np.array_equal(np.asarray(viewer.layers["nnInteractive objects"].data), before)
    assert w.objects_panel.table.rowCount() == 2 and sorted(a.targets) == [0, 1]
    a.prompt_layers[Tool.POINT].add(list(C))  # prompting on free voxels adds the object after all
    a.runner.wait(60)
    assert w.objects_panel.table.rowCount() == 3 and _objects(viewer) == {1, 2, 3}


def test_each_layer_of_a_layer_per_object_has_its_objects_own_colour(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    _w, a, _ = _start(viewer, OutputMode.SEPARATE)
    _segment(a, A, B, C)
    colours = [tuple(np.ravel(viewer.layers[f"nnInteractive object {i}"].get_color(1))) for i in (1, 2, 3)]
    assert len(set(colours)) == 3
    assert len({a.table.object_color(i) for i in range(3)}) == 3  # the object list shows them too


def test_an_instance_export_names_the_objects_overlaps_cost(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NNINTERACTIVE_HOME", str(tmp_path / "home"))
    viewer = make_napari_viewer()
    w, a, msgs = _start(viewer, OutputMode.SEPARATE)
    w.session_started()
    _segment(a, A, A, B)  # objects 1 and 2 are one blob, in layers of their own
    a.table.rename(1, "kidney")
    w.objects_panel.export(tmp_path / "o.npz")
    qtbot.waitUntil(lambda: w.objects_panel.export_worker is None, timeout=30000)
    with np.load(tmp_path / "o.npz") as f:
        assert set(np.unique(f["labels"])) == {0, 2, 3}  # the later object wins the shared voxels
    status = w.status_label.text()
    assert "'object 1' is not in it at all" in status and "kidney" not in status and "later objects won" in status
    assert any("'object 1' is not in it at all" in m for m in msgs)  # notified as well


def test_a_restored_object_can_be_undone_prompt_by_prompt(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NNINTERACTIVE_HOME", str(tmp_path / "home"))
    v1 = make_napari_viewer()
    w, a, _ = _start(v1)
    w.session_started()
    a.prompt_layers[Tool.POINT].add(list(A))
    a.runner.wait(60)
    one = np.asarray(v1.layers["nnInteractive objects"].data).copy()
    a.prompt_layers[Tool.POINT].add(list(B))  # the same object grows over the second blob
    a.runner.wait(60)
    _saved(w, qtbot)
    two = np.asarray(v1.layers["nnInteractive objects"].data).copy()
    assert (two != 0).sum() > (one != 0).sum()

    v2 = make_napari_viewer()  # napari restarted: restore, then Undo takes the second prompt back
    w2, a2, _ = _start(v2)
    w2.session_started()
    w2.restore_autosave()
    a2.runner.wait(60)
    qtbot.wait(20)
    assert np.array_equal(np.asarray(v2.layers["nnInteractive objects"].data), two)
    assert w2.undo_button.isEnabled()
    w2.undo_button.click()
    a2.runner.wait(60)
    qtbot.wait(20)
    assert np.array_equal(np.asarray(v2.layers["nnInteractive objects"].data), one)
    w2.redo_button.click()
    a2.runner.wait(60)
    qtbot.wait(20)
    assert np.array_equal(np.asarray(v2.layers["nnInteractive objects"].data), two)
