"""The session's life in a real viewer (issue 16): image removed, another image, time points, re-initialize, close."""

import logging

import numpy as np
import pytest

from napari_nninteractive.core.engines.network import NetworkEngine
from napari_nninteractive.gui.annotator import Tool
from napari_nninteractive.gui.widget import NNInteractiveWidget

from ..conftest import SlowNet, ThresholdNet, fake_model, sphere, sphere_image

pytestmark = pytest.mark.qt

SHAPE, C, R = (24, 32, 32), (12, 16, 16), 5
C2 = (12, 8, 24)


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _widget(viewer, image=None):
    layer = viewer.add_image(sphere_image(SHAPE, C, R) if image is None else image, name="scan")
    w = NNInteractiveWidget(viewer)
    msgs = []
    w.annotator.notify = lambda msg, level="info": msgs.append(msg)
    return w, layer, msgs


def _attach(w, layer, net=None):
    return w.start_with_engine(layer, NetworkEngine(fake_model(net or ThresholdNet(0.5)), device="cpu", autozoom=False))


def _settle(w, qtbot):
    if w.annotator.runner is not None:
        w.annotator.runner.wait(60)
    qtbot.wait(20)


def _initialize(w, qtbot, image_name):
    w.image_combo.setCurrentText(image_name)
    w.initialize()  # no model: the weight-free engine, on the loader thread as a user's Initialize
    qtbot.waitUntil(lambda: w.loader is None, timeout=30000)
    assert w.annotator.ready, w.status_label.text()


def _our_layers(viewer):
    return [layer.name for layer in viewer.layers if layer.name.startswith("nnInteractive ")]


# ----------------------------------------------------------------------------- 1. the image layer is removed


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "mid-prediction"])
def test_removing_the_image_reacts_after_napari_event_and_detaches_cleanly(viewer, qtbot, caplog, busy):
    w, layer, msgs = _widget(viewer)
    a = _attach(w, layer, SlowNet(0.5, delay=0.3) if busy else None)
    a.prompt_layers[Tool.POINT].add(list(C))
    if busy:
        qtbot.waitUntil(lambda: a.runner.busy and a.runner.last_progress is not None, timeout=10000)
    else:
        _settle(w, qtbot)
        assert viewer.layers["nnInteractive objects"].data.any()
    runner = a.runner
    viewer.layers.remove(layer)
    # nothing is shown (no notification, no layer change) while napari's removal event runs: that crashed Qt
    assert msgs == [] and a.ready
    qtbot.waitUntil(lambda: not a.ready, timeout=5000)
    qtbot.waitUntil(lambda: not runner.busy, timeout=10000)
    qtbot.wait(50)
    assert runner.closed and a.view is None
    assert set(_our_layers(viewer)) <= {"nnInteractive objects"}  # the prompt layers are gone, the output stays
    assert any("image layer was removed" in m for m in msgs)
    assert w.status_label.text().startswith("Not initialized") or "removed" in w.status_label.text()
    assert "scan" not in [w.image_combo.itemText(i) for i in range(w.image_combo.count())]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# ----------------------------------------------------------------------------- 2. another image


def test_another_image_gets_its_own_output_layer_and_the_first_keeps_its_objects(viewer, qtbot):
    w, _scan, _msgs = _widget(viewer)
    other = viewer.add_image(sphere_image(SHAPE, C2, R), name="other")
    _initialize(w, qtbot, "scan")
    a = w.annotator
    a.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    first = viewer.layers["nnInteractive objects"]
    before = np.asarray(first.data).copy()
    assert before.any()

    w.image_combo.setCurrentText("other")  # the session stays with "scan" until Initialize: the status says so
    assert "press Initialize" in w.status_label.text() and "'scan'" in w.status_label.text()
    assert a.view.layer.name == "scan"

    _initialize(w, qtbot, "other")
    a.prompt_layers[Tool.POINT].add(list(C2))
    _settle(w, qtbot)
    out = viewer.layers["other objects"]
    names = [layer.name for layer in viewer.layers]
    assert names.index("other objects") == names.index("other") + 1  # right above its image, visible
    assert np.array_equal(np.asarray(first.data), before)  # the first image's objects stay as they were
    assert (out.data > 0).sum() > 0 and out.data[C2] > 0 and out.data[C] == 0
    assert [t.layer for _i, t in a.table.objects()] == [out]
    assert other in viewer.layers


# ----------------------------------------------------------------------------- 3. time points


def test_prompts_at_another_time_point_are_refused_with_a_status_message(viewer, qtbot):
    data = np.stack([sphere_image(SHAPE, C, R), sphere_image(SHAPE, C2, R), sphere_image(SHAPE, C, R)])
    w, layer, msgs = _widget(viewer, data)
    viewer.dims.set_current_step(0, 1)
    a = _attach(w, layer)
    assert a.view.lead == (1,)
    viewer.dims.set_current_step(0, 2)
    assert "time point 1" in w.status_label.text() and "time point 2 is shown" in w.status_label.text()
    a.prompt_layers[Tool.POINT].add([2, *C])  # drawn at time point 2: ignored, said clearly
    _settle(w, qtbot)
    assert "prompts drawn here are ignored" in msgs[-1]
    assert "nnInteractive objects" not in [x.name for x in viewer.layers]
    viewer.dims.set_current_step(0, 1)
    assert w.status_label.text().startswith("Back at time point 1")
    a.prompt_layers[Tool.POINT].add([1, *C2])
    _settle(w, qtbot)
    out = viewer.layers["nnInteractive objects"]
    assert np.array_equal(out.data > 0, sphere(SHAPE, C2, R))  # the displayed time point's object

    viewer.dims.set_current_step(0, 2)  # Initialize binds the displayed time point; its objects get their own layer
    _initialize(w, qtbot, "scan")
    assert w.annotator.view.lead == (2,)
    w.annotator.prompt_layers[Tool.POINT].add([2, *C])
    _settle(w, qtbot)
    assert viewer.layers["scan objects (time point 2)"].data[C] > 0
    assert np.array_equal(out.data > 0, sphere(SHAPE, C2, R))


# ----------------------------------------------------------------------------- 4. initialize again, close


def test_initializing_the_same_image_again_keeps_its_objects(viewer, qtbot):
    w, _layer, _msgs = _widget(viewer)
    viewer.add_image(sphere_image(SHAPE, C2, R) + sphere_image(SHAPE, C, R), name="both")
    _initialize(w, qtbot, "both")
    a = w.annotator
    a.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    out = viewer.layers["nnInteractive objects"]
    first = np.asarray(out.data).copy()
    assert [i for i, _t in a.table.objects()] == [0] and w.objects_panel.table.rowCount() == 1

    _initialize(w, qtbot, "both")
    assert [i for i, _t in a.table.objects()] == [0] and w.objects_panel.table.rowCount() == 1
    a.prompt_layers[Tool.POINT].add(list(C2))
    _settle(w, qtbot)
    assert [i for i, _t in a.table.objects()] == [0, 1]
    assert np.array_equal(np.asarray(out.data) == 1, first == 1)  # the first object stays as it was
    assert out.data[C2] == 2


def test_closing_the_viewer_during_a_prediction_prints_no_traceback(make_napari_viewer, qtbot, capfd, caplog):
    viewer = make_napari_viewer()
    w, layer, _msgs = _widget(viewer)
    viewer.window.add_dock_widget(w, name="nnInteractive")
    a = _attach(w, layer, SlowNet(0.5, delay=0.4))
    a.prompt_layers[Tool.POINT].add(list(C))
    qtbot.waitUntil(lambda: a.runner.busy and a.runner.last_progress is not None, timeout=10000)
    runner = a.runner
    viewer.close()
    qtbot.waitUntil(lambda: not runner.busy, timeout=10000)
    qtbot.wait(300)
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_time_point_is_read_through_the_layers_transform_not_the_viewers_step_counter(viewer):
    from napari_nninteractive.gui import layers as L

    data = np.zeros((4, 6, 8, 8), np.float32)
    data[:, 3, 4, 4] = 1
    t4 = viewer.add_image(data, name="t4", scale=(2, 1, 1, 1), translate=(10, 0, 0, 0))
    viewer.add_image(np.zeros((9, 6, 8, 8), np.float32), name="longer")  # the slider now counts other steps
    viewer.dims.set_point(0, 14.0)  # world time 14 = index 2 of t4
    assert L.data_step(t4, viewer.dims.point)[0] == 2
    assert L.image_view(t4, L.data_step(t4, viewer.dims.point)).lead == (2,)
