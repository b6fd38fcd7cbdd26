"""Prompt tools driven by real mouse and key events through napari's Qt canvas (issue 16)."""

import itertools

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt
from qtpy.QtTest import QTest

from napari_nninteractive.core.engines.network import NetworkEngine
from napari_nninteractive.gui.annotator import Tool
from napari_nninteractive.gui.prompt_layers import LASSO_TOO_SMALL, LOCKED
from napari_nninteractive.gui.widget import NNInteractiveWidget

from ..conftest import ThresholdNet, fake_model, sphere_image

pytestmark = pytest.mark.qt

SHAPE, C, R = (16, 48, 48), (8, 24, 24), 8
NO_MOD = Qt.KeyboardModifier.NoModifier
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _start(viewer):
    layer = viewer.add_image(sphere_image(SHAPE, C, R), name="scan")
    w = NNInteractiveWidget(viewer)
    msgs = []
    w.annotator.notify = lambda msg, level="info": msgs.append(msg)
    w.start_with_engine(layer, NetworkEngine(fake_model(ThresholdNet(0.5)), device="cpu", autozoom=False))
    viewer.dims.set_point(0, C[0])
    viewer.reset_view()
    return w, msgs


def _settle(w, qtbot):
    w.annotator.runner.wait(60)
    qtbot.wait(20)


def _native(viewer):
    return viewer.window._qt_viewer.canvas.native


def _pixel(viewer, yx):
    """The canvas pixel showing world (row, column) ``yx`` of the displayed slice."""
    view = viewer.window._qt_viewer.canvas.view
    x, y = (view.transform * view.scene.transform).map([yx[1], yx[0]])[:2]
    return QPoint(round(x), round(y))


def _key(viewer, key, modifier=NO_MOD):
    QTest.keyClick(_native(viewer), key, modifier)


def _output(viewer):
    return viewer.layers["nnInteractive objects"]


def _drag(viewer, qtbot, corners):
    """Hold the button and drag through ``corners`` (world row, column), as a user draws a lasso."""
    native = _native(viewer)
    QTest.mousePress(native, LEFT, NO_MOD, _pixel(viewer, corners[0]))
    path = []  # intermediate points every few units, so a few moves merged by a busy event loop leave a polygon
    for (y0, x0), (y1, x1) in itertools.pairwise(corners):
        steps = max(1, int(max(abs(y1 - y0), abs(x1 - x0)) // 4))
        path += [(y0 + (y1 - y0) * k / steps, x0 + (x1 - x0) * k / steps) for k in range(1, steps + 1)]
    for yx in path:
        qtbot.wait(5)  # Qt merges moves that arrive at once
        QTest.mouseMove(native, _pixel(viewer, yx))
    QTest.mouseRelease(native, LEFT, NO_MOD, _pixel(viewer, corners[-1]))


def test_two_quick_lasso_clicks_are_ignored_and_the_lasso_stays_usable(viewer, qtbot):
    w, msgs = _start(viewer)
    a = w.annotator
    lassos = a.prompt_layers[Tool.LASSO]
    _key(viewer, Qt.Key.Key_L)
    assert a.tool is Tool.LASSO
    with qtbot.capture_exceptions() as raised:
        for _ in range(2):  # two quick clicks on one spot
            QTest.mouseClick(_native(viewer), LEFT, NO_MOD, _pixel(viewer, (20, 20)))
        assert LASSO_TOO_SMALL in msgs and len(lassos.data) == 0
        # the very next lasso makes a prompt, without pressing L again
        _drag(viewer, qtbot, [(16, 16), (16, 32), (32, 32), (32, 16), (17, 16)])
        _settle(w, qtbot)
    assert not raised, raised
    assert a.tool is Tool.LASSO and len(lassos.data) == 1
    assert _output(viewer).data[C].any()


def test_a_click_with_the_box_tool_says_so_and_the_next_box_works(viewer, qtbot):
    w, msgs = _start(viewer)
    a = w.annotator
    boxes = a.prompt_layers[Tool.BBOX]
    _key(viewer, Qt.Key.Key_B)
    with qtbot.capture_exceptions() as raised:
        _drag(viewer, qtbot, [(16, 16), (32, 32)])
        _settle(w, qtbot)
        QTest.mouseClick(_native(viewer), LEFT, NO_MOD, _pixel(viewer, (20, 20)))
        assert "box has no area" in msgs[-1] and len(boxes.data) == 1  # the click's empty box is taken off
        a.reset_object()
        _drag(viewer, qtbot, [(18, 18), (30, 30)])
        _settle(w, qtbot)
    assert not raised, raised
    assert len(boxes.data) == 1 and _output(viewer).data[C] == 1


def test_plugin_keys_work_with_the_output_layer_active_and_v_toggles_the_mask(viewer, qtbot):
    w, _ = _start(viewer)
    a = w.annotator
    a.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    out = _output(viewer)
    assert out.data[C] == 1
    viewer.layers.selection.active = out
    _key(viewer, Qt.Key.Key_P)  # our point tool, not napari's paint mode of the labels layer
    assert a.tool is Tool.POINT and out.mode != "paint"
    _key(viewer, Qt.Key.Key_T)
    assert not a.positive
    viewer.layers.selection.active = out
    _key(viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undoes the prompt
    _settle(w, qtbot)
    assert not out.data.any()
    _key(viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    _settle(w, qtbot)
    assert out.data[C] == 1
    prompts_visible = a.prompt_layers[Tool.POINT].visible
    _key(viewer, Qt.Key.Key_V)  # V: the mask, not the active layer
    assert not out.visible and a.prompt_layers[Tool.POINT].visible == prompts_visible
    viewer.layers.selection.active = a.view.layer
    _key(viewer, Qt.Key.Key_V)
    assert out.visible


def test_napari_keys_come_back_when_the_annotation_stops(viewer, qtbot):
    w, _ = _start(viewer)
    a = w.annotator
    a.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    out = _output(viewer)
    viewer.layers.selection.active = out
    a.detach()
    viewer.layers.selection.active = out
    _key(viewer, Qt.Key.Key_P)
    assert out.mode == "paint"


def test_sent_markers_are_locked_and_say_so(viewer, qtbot):
    w, msgs = _start(viewer)
    a = w.annotator
    pts, boxes = a.prompt_layers[Tool.POINT], a.prompt_layers[Tool.BBOX]
    pts.add(list(C))
    a.set_polarity(False)
    pts.add([C[0], C[1], C[2] + 3])
    boxes.add_rectangles(np.array([[C[0], 18, 18], [C[0], 18, 30], [C[0], 30, 30], [C[0], 30, 18]], float))
    _settle(w, qtbot)
    out_before = _output(viewer).data.copy()
    sent_pts, colors = pts.data.copy(), pts.face_color.copy()
    # delete a point with napari's own Delete key (select mode), then move one by dragging
    viewer.layers.selection.active = pts
    pts.mode = "select"
    pts.selected_data = {1}
    _key(viewer, Qt.Key.Key_Delete)
    assert np.array_equal(pts.data, sent_pts) and np.array_equal(pts.face_color, colors)
    assert msgs[-1] == LOCKED
    msgs.clear()
    _drag(viewer, qtbot, [C[1:], (C[1] + 5, C[2] + 5)])
    assert np.allclose(pts.data, sent_pts) and msgs == [LOCKED]
    boxes.selected_data = {0}
    boxes.remove_selected()
    assert len(boxes.data) == 1 and boxes.shape_type == ["rectangle"]
    _settle(w, qtbot)
    assert np.array_equal(_output(viewer).data, out_before)  # nothing was sent


def test_a_marker_that_makes_no_prompt_is_taken_off_and_polarity_keeps_sent_colours(viewer, qtbot):
    w, msgs = _start(viewer)
    a = w.annotator
    pts, boxes = a.prompt_layers[Tool.POINT], a.prompt_layers[Tool.BBOX]
    boxes.add_rectangles(np.array([[C[0], 30, 30]] * 4, float))
    assert "box has no area" in msgs[-1] and len(boxes.data) == 0
    pts.add(list(C))
    green = pts.face_color[0].copy()
    a.toggle_polarity()
    pts.add([C[0], C[1], C[2] + 3])
    assert np.array_equal(pts.face_color[0], green) and not np.array_equal(pts.face_color[1], green)
    _settle(w, qtbot)


def _idle(w, qtbot):
    qtbot.waitUntil(lambda: not w.annotator.runner.busy, timeout=30000)
    qtbot.wait(20)


def test_markers_follow_undo_and_redo_and_a_new_prompt_ends_the_redo(viewer, qtbot):
    w, _ = _start(viewer)
    a = w.annotator
    points, boxes, scribbles = (a.prompt_layers[t] for t in (Tool.POINT, Tool.BBOX, Tool.SCRIBBLE))
    points.add([C[0], C[1], C[2]])
    _idle(w, qtbot)
    points.add([C[0], C[1] + 2, C[2]])
    _idle(w, qtbot)
    a.set_polarity(False)
    boxes.add_rectangles(np.array([[C[0], 2, 2], [C[0], 2, 8], [C[0], 8, 8], [C[0], 8, 2]], float))
    a.set_polarity(True)
    _idle(w, qtbot)
    assert (len(points.data), len(boxes.data)) == (2, 1)
    a.undo()
    _idle(w, qtbot)
    assert (len(points.data), len(boxes.data)) == (2, 0)  # the box's prompt is out of the history: so is its marker
    a.undo()
    _idle(w, qtbot)
    assert len(points.data) == 1 and np.allclose(points.data[0], C)
    a.redo()
    _idle(w, qtbot)
    assert len(points.data) == 2 and np.allclose(points.data[1], [C[0], C[1] + 2, C[2]])
    a.redo()
    _idle(w, qtbot)
    assert len(boxes.data) == 1 and boxes.edge_color[0][0] > boxes.edge_color[0][1]  # back, still negative (red)
    a.undo()
    a.undo()
    _idle(w, qtbot)
    points.add([C[0], C[1], C[2] + 3])  # a new prompt ends the redo: the undone markers go for good
    _idle(w, qtbot)
    assert len(points.data) == 2 and np.allclose(points.data[1], [C[0], C[1], C[2] + 3]) and len(boxes.data) == 0
    assert not a.runner.session.state().can_redo
    scribbles.paint((C[0], C[1] + 4, C[2] - 4), 1)  # a stroke: undo hides its voxels, redo brings them back
    _idle(w, qtbot)
    painted = np.asarray(scribbles.data) != 0
    assert painted.any()
    a.undo()
    _idle(w, qtbot)
    assert not np.asarray(scribbles.data).any() and len(points.data) == 2
    a.redo()
    _idle(w, qtbot)
    assert np.array_equal(np.asarray(scribbles.data) != 0, painted)
    a.reset_object()  # reset: no marker left, and the count starts again
    _idle(w, qtbot)
    points.add([C[0], C[1], C[2]])
    _idle(w, qtbot)
    assert len(points.data) == 1
