"""The dock on a laptop screen (issue 16): tabs, what stays in sight, icons, trimmed controls, honest progress."""

import threading

import numpy as np
import pytest
from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QApplication, QFormLayout, QGroupBox, QLabel

from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.gui.annotator import Tool
from napari_nninteractive.gui.layer_controls import KEEP, controls_of, trim_controls
from napari_nninteractive.gui.widget import CANCELLING

from ..conftest import sphere_image

pytestmark = pytest.mark.qt

SHAPE, C = (24, 40, 40), (12, 20, 20)


def _docked(viewer, qtbot):
    layer = viewer.add_image(sphere_image(SHAPE, C, 6), name="scan")
    _dock, w = viewer.window.add_plugin_dock_widget("napari-nninteractive", "nnInteractive")
    msgs = []
    w.annotator.notify = lambda msg, level="info": msgs.append(msg)
    return w, layer, msgs


class _Held(SeededWatershedEngine):
    """The weight-free engine with a long step in flight (a forward pass: no cancel check inside), held until
    ``release`` is set; it reports step 1 of 4 before."""

    def __init__(self):
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def _predict(self, mask, new, control):
        control.report("predict", 1, 4, "step 1 of 4")
        self.entered.set()
        self.release.wait(30)
        control.check()
        return super()._predict(mask, new, control)


def test_the_dock_fits_a_1366x768_screen_with_interact_and_settings_tabs(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    w, _layer, _ = _docked(viewer, qtbot)
    window = w.window()
    window.resize(1366, 768)
    qtbot.wait(100)
    assert window.height() <= 768 and window.width() <= 1366  # the dock never forces the window larger
    assert w.minimumSizeHint().height() < 500
    assert [w.tabs.tabText(i) for i in range(w.tabs.count())] == ["Interact", "Settings"]
    interact, settings = w.tabs.widget(0), w.tabs.widget(1)
    assert interact.isAncestorOf(w.image_combo) and interact.isAncestorOf(w.init_button)  # start from Interact
    assert settings.isAncestorOf(w.model_edit) and settings.isAncestorOf(w.server_edit)
    for always in (w.facts_line, w.banner, w.status_label, w.progress_label, w.cancel_button):
        assert not w.tabs.isAncestorOf(always)  # in sight whatever the tab
    groups = [g.title() for g in interact.findChildren(QGroupBox)]
    assert groups.index("Output") < groups.index("Prompts (draw on any 2-D slice)")  # set before the first prompt
    assert all(not b.icon().isNull() for b in w.tool_buttons.values())


def test_prompt_layers_show_only_the_controls_that_mean_something(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    w, layer, _ = _docked(viewer, qtbot)
    a = w.start_with_engine(layer, SeededWatershedEngine())
    for tool in (Tool.POINT, Tool.BBOX, Tool.LASSO, Tool.SCRIBBLE):
        shown, hidden = _rows(a.prompt_layers[tool])
        assert hidden and shown and shown <= KEEP  # only opacity and the marker size stay
    assert "blending" in _rows(layer)[0]  # the image's controls are napari's own
    assert trim_controls(layer) > 0 and "blending" in _rows(layer)[1]  # the function finds napari's rows


def _rows(layer) -> tuple[set, set]:
    """The names of the shown and the hidden labelled rows of ``layer``'s napari controls."""
    form = controls_of(layer).layout()
    shown, hidden = set(), set()
    for row in range(form.rowCount()):
        item = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
        if item is not None and isinstance(item.widget(), QLabel):
            name = " ".join(item.widget().text().split()).rstrip(":").lower()
            (hidden if item.widget().isHidden() else shown).add(name)
    return shown, hidden


def test_progress_counts_steps_without_animation_and_cancel_says_cancelling(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    w, layer, _ = _docked(viewer, qtbot)
    engine = _Held()
    a = w.start_with_engine(layer, engine)
    a.prompt_layers[Tool.POINT].add(list(C))
    assert engine.entered.wait(30)
    qtbot.waitUntil(lambda: "step 1 of 4" in w.progress_label.text(), timeout=5000)
    bar = w.progress_bar
    assert bar.isVisibleTo(w) and (bar.minimum(), bar.maximum(), bar.value()) == (0, 4, 1)  # a count, not a busy loop
    assert w.cancel_button.isEnabled()
    w.cancel()
    assert w.progress_label.text() == CANCELLING and not w.cancel_button.isEnabled()  # at once, while it waits
    engine.release.set()
    qtbot.waitUntil(lambda: not a.runner.busy, timeout=30000)
    qtbot.waitUntil(lambda: w.progress_label.text() == "", timeout=5000)  # the progress text clears
    assert not bar.isVisibleTo(w)
    assert "cancelled" in w.status_label.text().lower()
    outputs = [x for x in viewer.layers if x.name == "nnInteractive objects"]
    assert all(not np.asarray(x.data).any() for x in outputs)  # the mask stays as it was (empty)


def test_what_runs_shows_with_the_prompt_and_its_text_repaints_only_its_line(make_napari_viewer, qtbot):
    """Issue 16 (latency): the dock says "predicting" and enables Cancel with the prompt itself (one repaint, not
    a later one while the engine computes), a new progress text asks no relayout of the dock (a relayout
    repaints and recomposes napari's whole window), and the text goes when the prediction is over."""
    viewer = make_napari_viewer(show=True)  # layouts of a hidden window are never active: nothing to ask
    w, layer, _ = _docked(viewer, qtbot)
    engine = _Held()
    a = w.start_with_engine(layer, engine)
    w._timer.stop()  # no poll: all of this must happen without it
    a.prompt_layers[Tool.POINT].add(list(C))
    assert w.progress_label.text().startswith("predicting") and w.cancel_button.isEnabled()
    assert engine.entered.wait(30)
    requests = []

    class Spy(QObject):
        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.LayoutRequest:
                requests.append(obj)
            return False

    spy = Spy()
    w.installEventFilter(spy)
    a.runner.action_started -= 5  # as if it had run for 5 s: the engine's steps show, and the bar
    w._poll_progress()
    QApplication.processEvents()
    assert "step 1 of 4" in w.progress_label.text() and w.progress_bar.isVisibleTo(w)
    qtbot.wait(100)  # the bar came into the row: that one relayout is over
    requests.clear()
    before = w.progress_label.text()
    a.runner.action_started -= 1  # a second later: a new text
    w._poll_progress()
    QApplication.processEvents()
    assert requests == [] and w.progress_label.text() != before
    w.status_label.setText(w.status_label.text() + " (control: a QLabel asks for one)")
    QApplication.processEvents()
    assert requests, "the spy sees no layout request at all: the check above proves nothing"
    assert w.progress_label.font().pointSizeF() == w.status_label.font().pointSizeF()  # napari's font size
    engine.release.set()
    qtbot.waitUntil(lambda: not a.runner.busy, timeout=30000)
    assert w.progress_label.text() == "" and not w.cancel_button.isEnabled()
    a.runner.action_started -= 5  # the last prediction began long ago, and its last step is still recorded
    assert a.runner.last_progress is not None
    a.prompt_layers[Tool.POINT].add([C[0], C[1] + 2, C[2]])
    assert w.progress_label.text() == "predicting …"  # this prediction's, not the last one's step
    qtbot.waitUntil(lambda: not a.runner.busy, timeout=30000)


def test_the_autosave_offer_sits_in_the_banner_until_restored(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NNINTERACTIVE_HOME", str(tmp_path / "home"))
    v1 = make_napari_viewer()
    w1, layer1, _ = _docked(v1, qtbot)
    a1 = w1.start_with_engine(layer1, SeededWatershedEngine())
    w1.session_started()
    a1.prompt_layers[Tool.POINT].add(list(C))
    a1.runner.wait(60)
    qtbot.waitUntil(lambda: not w1.autosaver.busy, timeout=30000)
    v2 = make_napari_viewer()  # napari restarted after a crash
    w2, layer2, _ = _docked(v2, qtbot)
    w2.start_with_engine(layer2, SeededWatershedEngine())
    assert w2.session_started() is not None
    text = w2.banner.text("autosave")
    assert text is not None and "1 object" in text
    w2.set_status("a later message")  # the status line moves on; the offer stays
    assert w2.banner.text("autosave") == text
    w2.banner.rows["autosave"].action_button.click()
    qtbot.waitUntil(lambda: w2.banner.text("autosave") is None, timeout=30000)
    w2.annotator.runner.wait(60)
    qtbot.wait(50)
    assert np.asarray(v2.layers["nnInteractive objects"].data).any()  # the object is back


def test_multi_round_fusion_is_a_setting_that_takes_effect_at_once(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    w, _layer, _ = _docked(viewer, qtbot)
    w.fusion_check.setChecked(True)
    w.initialize()  # no model: the weight-free engine, loaded as Initialize does
    qtbot.waitUntil(lambda: w.loader is None, timeout=30000)
    session = w.annotator.runner.session
    assert session.fusion is True
    w.fusion_check.setChecked(False)  # off for the next prediction, no Initialize needed
    assert session.fusion is False
    w.remote_radio.setChecked(True)
    assert not w.fusion_check.isEnabled()  # a server decides for its sessions
