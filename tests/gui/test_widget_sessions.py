"""Session files from the dock: save and load, autosave, and saving while a prediction runs."""

import numpy as np
import pytest

from napari_nninteractive.gui.annotator import Tool

from ..conftest import SlowNet, sphere, sphere_image
from .test_widget import SHAPE, C, R, _attach, _output, _settle, _widget

pytestmark = pytest.mark.qt


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def test_save_waits_for_the_running_prediction(viewer, qtbot, tmp_path):
    w, layer, msgs = _widget(viewer)
    a = _attach(w, layer, SlowNet(0.5, delay=0.3))
    w.session_started()
    a.prompt_layers[Tool.POINT].add(list(C))
    assert a.runner.busy
    w.save_session(tmp_path / "s.npz")  # the layer is being written: no file from that moment
    assert w.file_worker is None and not (tmp_path / "s.npz").exists()
    assert any("Wait for the running prediction to finish (or Cancel it), then save." in m for m in msgs)
    _settle(w, qtbot)
    w.save_session(tmp_path / "s.npz")
    qtbot.waitUntil(lambda: w.file_worker is None, timeout=30000)
    assert (tmp_path / "s.npz").exists()


def _two_widget_objects(w, qtbot):
    a = w.annotator
    a.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    a.next_object()
    img_layer = a.view.layer
    a.prompt_layers[Tool.POINT].add(list(B2))  # second object: the far blob (outside the first window)
    _settle(w, qtbot)
    assert img_layer is a.view.layer


SHAPE2, B2 = (48, 64, 160), (24, 32, 130)


def _two_blob_image():
    img = sphere_image(SHAPE2, C, R)
    img[sphere(SHAPE2, B2, 6)] = 100
    return img


def _annotated(viewer, qtbot):
    """The widget on the two-blob image, started, two objects segmented: (widget, what starting found, messages)."""
    w, layer, msgs = _widget(viewer, image=_two_blob_image())
    _attach(w, layer)
    found = w.session_started()
    _two_widget_objects(w, qtbot)
    return w, found, msgs


@pytest.mark.slow
def test_save_then_load_in_a_new_viewer_restores_objects_and_refining(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NNINTERACTIVE_HOME", str(tmp_path / "home"))
    v1 = make_napari_viewer()
    w, _, _ = _annotated(v1, qtbot)
    before = np.asarray(_output(v1).data).copy()
    assert set(np.unique(before)) == {0, 1, 2}
    w.save_session(tmp_path / "s.npz")
    qtbot.waitUntil(lambda: w.file_worker is None, timeout=30000)
    assert w.status_label.text().startswith("Session saved")

    v2 = make_napari_viewer()  # "the next day"
    w2, layer2, _msgs = _widget(v2, image=_two_blob_image())
    a2 = _attach(w2, layer2)
    w2.session_started()
    w2.load_session(tmp_path / "s.npz")
    _settle(w2, qtbot)
    assert np.array_equal(np.asarray(_output(v2).data), before)
    assert a2.object_id == 1 and [p.kind.value for p in a2.histories[1]] == ["point"]
    a2.prompt_layers[Tool.POINT].add([24, 32, 131])  # keep refining object 2: object 1 is untouched
    _settle(w2, qtbot)
    after = np.asarray(_output(v2).data)
    assert np.array_equal(after == 1, before == 1) and len(a2.histories[1]) == 2


@pytest.mark.slow
def test_loading_a_session_of_another_image_changes_nothing(viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NNINTERACTIVE_HOME", str(tmp_path / "home"))
    w, _, msgs = _annotated(viewer, qtbot)
    w.save_session(tmp_path / "s.npz")
    qtbot.waitUntil(lambda: w.file_worker is None, timeout=30000)
    other = viewer.add_image(sphere_image(SHAPE, C, R + 2), name="other scan")
    data_before = np.asarray(_output(viewer).data).copy()
    a = _attach(w, other)
    w.session_started()
    w.load_session(tmp_path / "s.npz")
    assert "belongs to another image" in msgs[-1] and not a.targets
    assert np.array_equal(np.asarray(_output(viewer).data), data_before)
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    w.load_session(tmp_path / "bad.npz")
    assert "not a readable session file" in msgs[-1]


@pytest.mark.slow
def test_autosave_after_each_interaction_is_offered_on_reopening(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NNINTERACTIVE_HOME", str(tmp_path / "home"))
    v1 = make_napari_viewer()
    w, found, _ = _annotated(v1, qtbot)
    assert found is None  # nothing saved for this image yet
    qtbot.waitUntil(lambda: not w.autosaver.busy, timeout=30000)
    assert w.autosaver.saves >= 3 and w.autosaver.path().is_file()  # prompt, next, prompt
    saved = np.asarray(_output(v1).data).copy()

    v2 = make_napari_viewer()
    w2, layer2, _ = _widget(v2, image=_two_blob_image())
    _attach(w2, layer2)
    found = w2.session_started()
    assert found is not None and len(found.objects) == 2 and w2.restore_button.isEnabled()
    w2.restore_autosave()
    _settle(w2, qtbot)
    assert np.array_equal(np.asarray(_output(v2).data), saved)
    assert not w2.restore_button.isEnabled()


def test_autosave_failure_is_reported_once_and_work_goes_on(viewer, qtbot, tmp_path, monkeypatch):
    blocker = tmp_path / "home"
    blocker.write_text("a file where the folder should be")
    monkeypatch.setenv("NNINTERACTIVE_HOME", str(blocker))
    w, layer, msgs = _widget(viewer, image=_two_blob_image())
    _attach(w, layer)
    w.session_started()
    _two_widget_objects(w, qtbot)
    qtbot.waitUntil(lambda: not w.autosaver.busy, timeout=30000)
    failures = [m for m in msgs if m.startswith("Autosave failed")]
    assert len(failures) == 1 and "Cannot write the session" in failures[0]
    assert set(np.unique(np.asarray(_output(viewer).data))) == {0, 1, 2}  # annotation unaffected


@pytest.mark.slow
def test_2d_image_session_saves_autosaves_and_loads(make_napari_viewer, qtbot, tmp_path):
    flat = sphere_image((1, 64, 64), (0, 32, 32), 10)[0]
    v1 = make_napari_viewer()
    w, layer, msgs = _widget(v1, flat)
    a = _attach(w, layer)
    w.session_started()
    a.prompt_layers[Tool.POINT].add([32, 32])
    _settle(w, qtbot)
    qtbot.waitUntil(lambda: not w.autosaver.busy, timeout=30000)
    assert w.autosaver.path().is_file() and not [m for m in msgs if "failed" in m]
    w.save_session(tmp_path / "flat.npz")
    qtbot.waitUntil(lambda: w.file_worker is None, timeout=30000)
    saved = np.asarray(_output(v1).data).copy()

    v2 = make_napari_viewer()
    w2, layer2, _ = _widget(v2, flat)
    _attach(w2, layer2)
    w2.session_started()
    w2.load_session(tmp_path / "flat.npz")
    _settle(w2, qtbot)
    assert saved[32, 32] == 1 and np.array_equal(np.asarray(_output(v2).data), saved)
