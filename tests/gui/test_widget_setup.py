"""The Setup panel of the dock widget: engine and fold choice, and messages in the widget's words."""

import numpy as np
import pytest
import torch

from napari_nninteractive.core.engines.registry import AUTO, ENGINE_CHOICES, ENGINES
from napari_nninteractive.core.errors import ModelFolderError
from napari_nninteractive.core.folds import list_folds
from napari_nninteractive.core.model import find_checkpoint, load_model_folder
from napari_nninteractive.gui.setup_panel import gui_wording
from napari_nninteractive.gui.widget import NNInteractiveWidget
from napari_nninteractive.testing import write_model_folder

from ..conftest import sphere_image

SHAPE, C, R = (48, 64, 64), (24, 32, 32), 10


@pytest.fixture(scope="module")
def two_fold_model(tmp_path_factory):
    """A model folder with fold_0 and fold_1 (different random weights)."""
    folder = tmp_path_factory.mktemp("models") / "two_folds"
    write_model_folder(folder, fold=0, seed=0)
    return write_model_folder(folder, fold=1, seed=1)


def _widget(viewer):
    viewer.add_image(sphere_image(SHAPE, C, R), name="scan")
    w = NNInteractiveWidget(viewer)
    msgs = []
    w.annotator.notify = lambda msg, level="info": msgs.append(msg)
    return w, msgs


def _initialize(w, qtbot):
    w.initialize()
    qtbot.waitUntil(lambda: w.loader is None, timeout=60000)


def _fold_shown(w):
    return w.fold_combo.isVisibleTo(w.setup_panel) and w.fold_combo.isEnabled()


# ----------------------------------------------------------------------------- no Qt needed


def test_list_folds(two_fold_model, tiny_model_dir, tmp_path):
    assert list_folds(two_fold_model) == ["0", "1"]
    assert list_folds(tiny_model_dir) == ["0"]
    assert list_folds(tmp_path / "missing") == [] and list_folds(tmp_path) == []


def test_core_advice_for_the_command_line_reads_in_the_widgets_words(two_fold_model):
    with pytest.raises(ModelFolderError) as folds:
        find_checkpoint(two_fold_model)
    gui = gui_wording(str(folds.value))
    assert "--fold" not in gui and "pick the fold in Settings" in gui and str(two_fold_model) in gui
    device = gui_wording("Device 'cuda' was requested but no CUDA GPU is available; use --device cpu or auto.")
    assert device == "Device 'cuda' was requested but no CUDA GPU is available; pick cpu or auto in Settings (Device)."
    assert gui_wording("nothing to translate") == "nothing to translate"


# ----------------------------------------------------------------------------- the widget


@pytest.mark.qt
def test_engine_combo_lists_the_registry(make_napari_viewer):
    w, _ = _widget(make_napari_viewer())
    combo = w.engine_combo
    assert [combo.itemText(i) for i in range(combo.count())] == list(ENGINE_CHOICES)
    assert combo.currentText() == AUTO
    from qtpy.QtCore import Qt

    tips = {combo.itemText(i): combo.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(combo.count())}
    assert all(tips[name] == info.description for name, info in ENGINES.items())
    assert not _fold_shown(w)  # no model folder: no fold to pick


@pytest.mark.qt
def test_two_folds_show_the_fold_combo_and_initialize_loads_the_chosen_fold(
    make_napari_viewer, qtbot, two_fold_model, tiny_model_dir
):
    w, _msgs = _widget(make_napari_viewer())
    w.model_edit.setText(str(tiny_model_dir))
    assert not _fold_shown(w)  # one fold: nothing to choose
    w.model_edit.setText(str(two_fold_model))
    assert _fold_shown(w)
    assert [w.fold_combo.itemText(i) for i in range(w.fold_combo.count())] == ["0", "1"]
    w.fold_combo.setCurrentText("1")
    w.device_combo.setCurrentText("cpu")
    _initialize(w, qtbot)
    assert w.annotator.ready, w.status_label.text()
    assert w.status_label.text().startswith("Initialized: nnInteractive network") and "fold 1" in w.status_label.text()
    loaded = w.annotator.runner.session.engine.model.network.state_dict()
    for fold, same in (("1", True), ("0", False)):
        expected = load_model_folder(two_fold_model, fold=fold).network.state_dict()
        assert all(torch.equal(loaded[k], expected[k]) for k in expected) == same, fold
    w.engine_combo.setCurrentText("weight-free")  # a weight-free engine has no folds
    assert not _fold_shown(w)


@pytest.mark.qt
def test_folds_follow_the_model_field_without_loading_the_model(make_napari_viewer, qtbot, two_fold_model):
    w, _ = _widget(make_napari_viewer())
    w.model_edit.setText(str(two_fold_model))
    qtbot.waitUntil(lambda: _fold_shown(w), timeout=30000)
    assert w.setup_panel.choice().fold == "0"
    w.model_edit.setText(str(two_fold_model / "fold_0"))  # no folds in there
    qtbot.waitUntil(lambda: not _fold_shown(w), timeout=30000)
    assert w.setup_panel.choice().fold is None


@pytest.mark.qt
def test_device_error_reads_in_gui_words(make_napari_viewer, qtbot, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    w, msgs = _widget(make_napari_viewer())
    w.model_edit.setText(str(tiny_model_dir))
    w.device_combo.setCurrentText("cuda")
    _initialize(w, qtbot)
    text = w.status_label.text()
    assert not w.annotator.ready and text.startswith("Initialization failed")
    assert "pick cpu or auto in Settings (Device)" in text and "--device" not in text
    assert msgs[-1] == text
    assert w.init_button.isEnabled()


@pytest.mark.qt
def test_network_engine_without_a_model_says_where_to_fill_it_in(make_napari_viewer, qtbot):
    w, _ = _widget(make_napari_viewer())
    w.engine_combo.setCurrentText("network")
    assert w.device_combo.isEnabled() and w.autozoom_check.isEnabled()
    _initialize(w, qtbot)
    text = w.status_label.text()
    assert not w.annotator.ready and "fill in Model in Settings" in text and "--model" not in text


@pytest.mark.qt
def test_weight_free_engine_can_be_chosen_with_a_model_folder_filled_in(make_napari_viewer, qtbot, tiny_model_dir):
    w, _ = _widget(make_napari_viewer())
    w.model_edit.setText(str(tiny_model_dir))
    assert w.device_combo.isEnabled()  # auto with a model: the network, which runs on a device
    w.engine_combo.setCurrentText("weight-free")
    assert not w.device_combo.isEnabled() and not w.autozoom_check.isEnabled() and not _fold_shown(w)
    _initialize(w, qtbot)
    assert w.status_label.text().startswith("Initialized: weight-free"), w.status_label.text()
    assert "licence" not in w.status_label.text()
    from napari_nninteractive.gui.annotator import Tool

    w.annotator.prompt_layers[Tool.POINT].add(list(C))
    w.annotator.runner.wait(60)
    qtbot.wait(20)
    out = w.viewer.layers["nnInteractive objects"].data
    assert np.asarray(out).any()


@pytest.mark.qt
def test_compile_is_offered_for_the_network_and_runs_on_the_loading_worker(
    make_napari_viewer, qtbot, tiny_model_dir, monkeypatch
):
    import threading

    from napari_nninteractive.core.engines.network import NetworkEngine

    threads = []
    real_compile = NetworkEngine.compile

    def compile_quickly(self, backend="inductor"):  # the default backend builds C++ for minutes on this CPU
        threads.append(threading.current_thread())
        real_compile(self, "aot_eager")

    monkeypatch.setattr(NetworkEngine, "compile", compile_quickly)
    w, _ = _widget(make_napari_viewer())
    box = w.setup_panel.compile_check
    w.engine_combo.setCurrentText("weight-free")
    assert not box.isEnabled()
    box.setChecked(True)
    assert not w.setup_panel.choice().compile  # a weight-free engine has nothing to compile
    w.engine_combo.setCurrentText(AUTO)
    w.model_edit.setText(str(tiny_model_dir))
    w.device_combo.setCurrentText("cpu")
    assert box.isEnabled() and w.setup_panel.choice().compile
    _initialize(w, qtbot)
    assert w.annotator.ready, w.status_label.text()
    assert w.annotator.runner.session.engine.compiled == "aot_eager"
    assert threads and threads[0] is not threading.main_thread()  # the UI never waited for the compiler
