"""The dock widget in a real napari viewer (Xvfb): prompts, history, output modes, messages."""

import numpy as np
import pytest
import torch

from napari_nninteractive.core.engines.network import NetworkEngine
from napari_nninteractive.eval.runner import dice
from napari_nninteractive.gui import layers as L
from napari_nninteractive.gui.annotator import OutputMode, Tool
from napari_nninteractive.gui.widget import NNInteractiveWidget
from napari_nninteractive.testing import tiny_architecture, write_model_folder

from ..conftest import SlowNet, ThresholdNet, fake_model, sphere, sphere_image

pytestmark = pytest.mark.qt

SHAPE, C, R = (48, 64, 64), (24, 32, 32), 10


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _widget(viewer, image=None, net=None, messages=None, **layer_kw):
    layer = viewer.add_image(sphere_image(SHAPE, C, R) if image is None else image, name="scan", **layer_kw)
    w = NNInteractiveWidget(viewer)
    msgs = [] if messages is None else messages
    w.annotator.notify = lambda msg, level="info": msgs.append(msg)
    return w, layer, msgs


def _attach(w, layer, net=None, autozoom=False):
    return w.start_with_engine(
        layer, NetworkEngine(fake_model(net or ThresholdNet(0.5)), device="cpu", autozoom=autozoom)
    )


def _settle(w, qtbot):
    w.annotator.runner.wait(60)
    qtbot.wait(20)


def _output(viewer, name="nnInteractive objects"):
    return next(layer for layer in viewer.layers if layer.name == name)


# ----------------------------------------------------------------------------- manifest and init


def test_widget_opens_from_the_plugin_manifest(viewer):
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-nninteractive", "nnInteractive")
    assert isinstance(widget, NNInteractiveWidget)


def test_initialize_is_honest_about_failure_and_success(viewer, qtbot, tiny_model_dir, tmp_path):
    w, _layer, _msgs = _widget(viewer)
    w.model_edit.setText(str(tmp_path / "no_such_model"))
    w.device_combo.setCurrentText("cpu")
    w.initialize()
    qtbot.waitUntil(lambda: w.loader is None, timeout=30000)
    assert w.status_label.text().startswith("Initialization failed") and "does not exist" in w.status_label.text()
    assert not w.annotator.ready
    w.model_edit.setText(str(tiny_model_dir))
    w.initialize()
    qtbot.waitUntil(lambda: w.loader is None, timeout=30000)
    assert w.status_label.text().startswith("Initialized")
    facts = w.facts_line.text()  # what runs stays in sight above the tabs, whatever the status line says next
    assert "Random weights for testing only" in facts and "cpu" in facts and tiny_model_dir.name in facts
    assert not w.banner.text("cpu")  # a 64^3 network runs a pass in a fraction of a second: no slow-CPU warning
    assert w.annotator.ready
    large = write_model_folder(tmp_path / "large_patch", tiny_architecture(), (128, 128, 128))
    w.model_edit.setText(str(large))
    w.initialize()
    qtbot.waitUntil(lambda: w.loader is None, timeout=30000)
    assert "CPU" in w.banner.text("cpu")  # 128^3 and more: the slow-CPU warning, which stays until dismissed
    w.set_status("something else")
    assert "Random weights for testing only" in w.facts_line.text() and w.banner.text("cpu")
    assert w.annotator.ready


def test_initialize_without_image_says_what_to_do(viewer):
    w = NNInteractiveWidget(viewer)
    msgs = []
    w.annotator.notify = lambda msg, level="info": msgs.append(msg)
    w.initialize()
    assert "No image layer" in msgs[-1]


def test_without_a_model_the_weight_free_engine_segments(viewer, qtbot):
    w, _layer, _ = _widget(viewer)
    assert w.model_edit.text() == ""
    w.initialize()
    qtbot.waitUntil(lambda: w.loader is None, timeout=30000)
    assert w.status_label.text().startswith("Initialized: weight-free")
    assert "CPU" not in w.status_label.text()  # no network: no CPU warning
    w.annotator.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    expected = sphere(SHAPE, C, R)
    got = _output(viewer).data > 0
    assert dice(got, expected) > 0.9


def test_the_first_prompt_starts_the_engine_before_the_output_layer_is_made(viewer, qtbot):
    # a new Labels layer takes ~0.1 s of the GUI thread: made while the engine already runs, not before it
    w, layer, _ = _widget(viewer)
    _attach(w, layer, SlowNet(0.5, delay=0.3))
    a = w.annotator
    busy_when_made = []
    layer_for = a.output.layer_for

    def recording(*args, **kwargs):
        busy_when_made.append(a.runner.busy)
        return layer_for(*args, **kwargs)

    a.output.layer_for = recording
    a.prompt_layers[Tool.POINT].add(list(C))
    assert busy_when_made == [True]  # the layer was made once, with the prediction already under way
    _settle(w, qtbot)
    got = _output(viewer).data > 0
    expected = sphere(SHAPE, C, R)
    assert dice(got, expected) > 0.9  # and the mask landed in it
    # a deleted output layer is re-made first, so the whole object is written into it before the new change
    viewer.layers.remove(_output(viewer))
    a.prompt_layers[Tool.POINT].add(list(C))
    assert busy_when_made == [True, False]
    _settle(w, qtbot)
    got = _output(viewer).data > 0
    assert dice(got, expected) > 0.9


# ----------------------------------------------------------------------------- prompts


def test_point_box_scribble_and_lasso_each_produce_the_mask(viewer, qtbot):
    w, layer, _ = _widget(viewer)
    a = _attach(w, layer)
    expected = sphere(SHAPE, C, R)
    a.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    out = _output(viewer)
    assert np.array_equal(out.data == 1, expected)

    for draw in ("box", "scribble", "lasso"):
        a.reset_object()
        _settle(w, qtbot)
        assert not out.data.any()
        if draw == "box":
            a.prompt_layers[Tool.BBOX].add_rectangles(
                np.array([[24, 25, 25], [24, 25, 39], [24, 39, 39], [24, 39, 25]])
            )
        elif draw == "scribble":
            scrib = a.prompt_layers[Tool.SCRIBBLE]
            scrib.selected_label = 1
            with scrib.block_history():  # one stroke, as a mouse drag is committed
                scrib.paint((24, 32, 32), 1)
                scrib.paint((24, 33, 33), 1)
        else:
            a.prompt_layers[Tool.LASSO].add_polygons(np.array([[24, 20, 20], [24, 20, 44], [24, 44, 44], [24, 44, 20]]))
        _settle(w, qtbot)
        assert np.array_equal(out.data == 1, expected), draw
    scrib = a.prompt_layers[Tool.SCRIBBLE]
    assert set(np.unique(scrib.data)) <= {0, 3}  # consumed strokes stay visible (value 3)


def test_negative_prompts_and_polarity_colours(viewer, qtbot):
    w, layer, _ = _widget(viewer)
    a = _attach(w, layer)
    a.toggle_polarity()
    assert not a.positive and w.polarity_button.text().startswith("Negative")
    assert a.prompt_layers[Tool.SCRIBBLE].selected_label == 2
    assert a.prompt_layers[Tool.POINT].current_face_color.startswith(L.NEGATIVE_COLOR)
    assert a.prompt_layers[Tool.BBOX].current_edge_color.startswith(L.NEGATIVE_COLOR)
    a.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    assert a.runner.session.engine.get_state().rasters[-1].channel.name == "POINT_NEG"


def test_undo_redo_reset_and_next_object(viewer, qtbot):
    shape = (48, 64, 160)  # wide: the second object lies outside the first object's 64^3 window
    image = sphere_image(shape, C, R)
    image[sphere(shape, (24, 32, 140), 6)] = 100
    w, layer, _ = _widget(viewer, image)
    a = _attach(w, layer)
    w.refresh()
    assert not w.undo_button.isEnabled() and not w.redo_button.isEnabled()  # a fresh session: nothing to undo
    pts = a.prompt_layers[Tool.POINT]
    pts.add(list(C))
    _settle(w, qtbot)
    assert w.undo_button.isEnabled()
    out = _output(viewer)
    first = out.data.copy()
    assert np.array_equal(first == 1, sphere(shape, C, R))
    a.undo()
    _settle(w, qtbot)
    assert not out.data.any()
    a.redo()
    _settle(w, qtbot)
    assert np.array_equal(out.data, first)
    a.next_object()
    pts.add([24, 32, 140])
    _settle(w, qtbot)
    assert set(np.unique(out.data)) == {0, 1, 2}  # instance map: the second object got value 2
    assert np.array_equal(out.data == 2, sphere(shape, (24, 32, 140), 6))
    assert np.array_equal(out.data == 1, first == 1)
    assert len(pts.data) == 1  # prompt layers were cleared for the new object
    a.undo()  # undo works within the new object only
    _settle(w, qtbot)
    assert set(np.unique(out.data)) == {0, 1}
    a.redo()
    a.reset_object()
    _settle(w, qtbot)
    assert set(np.unique(out.data)) == {0, 1}  # only the current object was reset


def test_queue_and_run_without_autorun(viewer, qtbot):
    w, layer, _ = _widget(viewer)
    a = _attach(w, layer)
    w.autorun_check.setChecked(False)
    a.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    assert a.last_outcome.state.pending == 1 and not any(
        layer.name == "nnInteractive objects" and layer.data.any() for layer in viewer.layers
    )
    assert "queued" in w.progress_label.text()
    w.run_button.click()
    assert "queued" not in w.progress_label.text()  # at once: they run now
    _settle(w, qtbot)
    assert _output(viewer).data.any() and "queued" not in w.progress_label.text()


def test_keep_existing_vs_overwrite(viewer, qtbot):
    w, layer, _ = _widget(viewer)
    existing = np.zeros(SHAPE, np.uint16)
    existing[20:28, 28:36, 28:36] = 9  # another object inside the sphere
    viewer.add_labels(existing, name="manual")
    w.refresh_layer_choices()
    w.output_combo.setCurrentText("manual")
    a = _attach(w, layer)
    a.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    manual = viewer.layers["manual"]
    assert (manual.data[20:28, 28:36, 28:36] == 9).all()  # kept
    assert (manual.data == 10).sum() == sphere(SHAPE, C, R).sum() - 8 * 8 * 8
    w.overlap_combo.setCurrentIndex(1)  # overwrite
    a.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    assert (manual.data[20:28, 28:36, 28:36] == 10).all()


def test_semantic_and_separate_modes(viewer, qtbot):
    w, layer, _ = _widget(viewer)
    w.mode_combo.setCurrentIndex(list(OutputMode).index(OutputMode.SEMANTIC))
    w.class_spin.setValue(5)
    a = _attach(w, layer)
    a.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    assert set(np.unique(_output(viewer).data)) == {0, 5}
    w.mode_combo.setCurrentIndex(list(OutputMode).index(OutputMode.SEPARATE))
    a.next_object()
    a.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    assert _output(viewer, "nnInteractive object 2").data.max() == 1


def test_scaled_and_translated_image_lands_prompts_on_the_right_voxels(viewer, qtbot):
    w, layer, _ = _widget(viewer, scale=(2.0, 0.5, 1.5), translate=(10.0, -5.0, 3.0))
    a = _attach(w, layer)
    target = (24, 32, 32)
    world = layer.data_to_world(target)
    pts = a.prompt_layers[Tool.POINT]
    assert np.allclose(pts.scale, layer.scale) and np.allclose(pts.translate, layer.translate)
    pts.add(pts.world_to_data(world))
    _settle(w, qtbot)
    assert a.runner.session.engine.get_state().rasters[-1].bbox == tuple((c - 4, c + 5) for c in target)
    out = _output(viewer)
    assert np.allclose(out.scale, layer.scale) and np.allclose(out.translate, layer.translate)
    assert np.array_equal(out.data == 1, sphere(SHAPE, C, R))


# ----------------------------------------------------------------------------- keys


def test_shortcuts_are_bound_to_our_layers_only(viewer, qtbot):
    from napari.utils.key_bindings import KeyBinding

    w, layer, _ = _widget(viewer)
    a = _attach(w, layer)
    pts = a.prompt_layers[Tool.POINT]
    for key in ("P", "B", "S", "L", "T", "R", "M", "Control-Z", "Control-Shift-Z"):
        assert KeyBinding.from_str(key) in pts.keymap and KeyBinding.from_str(key) in layer.keymap
    other = viewer.add_image(np.ones((3, 3)), name="other")
    assert KeyBinding.from_str("P") not in other.keymap
    pts.keymap[KeyBinding.from_str("B")](pts)
    assert a.tool is Tool.BBOX and a.prompt_layers[Tool.BBOX].mode == "add_rectangle"
    pts.keymap[KeyBinding.from_str("B")](pts)  # the active tool again: back to pan/zoom
    assert a.tool is None and a.prompt_layers[Tool.BBOX].mode == "pan_zoom"
    layer.keymap[KeyBinding.from_str("T")](layer)
    assert not a.positive


# ----------------------------------------------------------------------------- messages


def test_image_kinds_and_their_messages(viewer, qtbot):
    w, _, msgs = _widget(viewer)
    rgb = viewer.add_image(np.random.default_rng(0).integers(0, 255, (32, 32, 3)).astype(np.uint8), name="rgb")
    view = L.image_view(rgb)
    assert view.squeeze2d and view.volume.shape == (32, 32) and "RGB" in view.note
    t4 = viewer.add_image(np.random.default_rng(0).normal(size=(3, 8, 16, 16)).astype(np.float32), name="t4")
    view = L.image_view(t4, (2, 0, 0, 0))
    assert view.volume.shape == (8, 16, 16) and view.lead == (2,) and "displayed point" in view.note
    flat = viewer.add_image(sphere_image((1, 64, 64), (0, 32, 32), 10)[0], name="flat")  # 2-D beside 3-D layers
    view = L.image_view(flat)
    assert view.squeeze2d and view.shape == (1, 64, 64)
    rot = viewer.add_image(np.ones((4, 8, 8)), name="rot", rotate=30)
    before = rot.affine.affine_matrix.copy()
    with pytest.raises(L.LayerError, match="rotated or sheared"):
        L.image_view(rot)
    assert np.array_equal(rot.affine.affine_matrix, before)  # the user's layer is not modified
    w.refresh_layer_choices()
    w.image_combo.setCurrentText("rot")
    w.model_edit.setText("/somewhere")
    w.initialize()
    assert "rotated or sheared" in msgs[-1] and "Initialization failed" not in w.status_label.text()


def test_2d_image_beside_3d_layers_segments_its_slice(viewer, qtbot):
    viewer.add_image(np.zeros((10, 64, 64)), name="volume")
    flat = sphere_image((1, 64, 64), (0, 32, 32), 10)[0]
    w, layer, _msgs = _widget(viewer, flat)
    a = _attach(w, layer)
    a.prompt_layers[Tool.POINT].add([32, 32])
    _settle(w, qtbot)
    out = _output(viewer)
    assert out.data.shape == (64, 64) and out.data[32, 32] == 1


def test_wrong_shape_mask_and_3d_view_messages(viewer, qtbot):
    w, layer, msgs = _widget(viewer)
    a = _attach(w, layer)
    bad = viewer.add_labels(np.ones((5, 5, 5), np.uint8), name="bad")
    a.init_with_mask(bad, 1, False)
    assert "shape" in msgs[-1]
    good = viewer.add_labels(sphere(SHAPE, C, R).astype(np.uint8) * 4, name="good")
    a.init_with_mask(good, 3, False)
    assert "no voxel with value 3" in msgs[-1]
    a.init_with_mask(good, 4, False)
    _settle(w, qtbot)
    assert np.array_equal(_output(viewer).data > 0, sphere(SHAPE, C, R))
    viewer.dims.ndisplay = 3
    a.set_tool(Tool.POINT)
    assert "2-D view" in msgs[-1]
    viewer.dims.ndisplay = 2


@pytest.mark.slow
def test_removing_layers_mid_prediction_does_not_raise(viewer, qtbot):
    w, layer, msgs = _widget(viewer)
    a = _attach(w, layer, SlowNet(0.5, delay=0.4))
    a.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    viewer.layers.remove(_output(viewer))
    a.prompt_layers[Tool.POINT].add([20, 30, 30])
    assert a.runner.busy
    qtbot.wait(50)
    _settle(w, qtbot)
    assert any("was deleted" in m for m in msgs)
    assert _output(viewer).data.any()  # a new output layer received the object

    a.prompt_layers[Tool.POINT].add(list(C))
    viewer.layers.remove(a.prompt_layers[Tool.SCRIBBLE])
    viewer.layers.remove(layer)  # the image itself, mid-prediction
    qtbot.wait(1000)
    assert not a.ready and any("image layer was removed" in m for m in msgs)
    assert w.status_label.text().startswith("Not initialized")


def test_cancel_keeps_the_mask(viewer, qtbot):
    w, layer, msgs = _widget(viewer)
    a = _attach(w, layer, SlowNet(0.5, delay=0.3), autozoom=True)
    a.prompt_layers[Tool.POINT].add(list(C))
    qtbot.wait(100)
    w.cancel_button.click() if w.cancel_button.isEnabled() else a.cancel()
    _settle(w, qtbot)
    assert any("cancelled" in m for m in msgs)
    assert not any(layer.name == "nnInteractive objects" and layer.data.any() for layer in viewer.layers)
    assert a.last_outcome.state.pending == 1
    assert "cancelled" in w.status_label.text()
    w.autorun_check.setChecked(False)
    a.prompt_layers[Tool.POINT].add([C[0], C[1], C[2] + 2])  # one more queued: they are still queued
    _settle(w, qtbot)
    assert "cancelled" in w.status_label.text() and a.last_outcome.state.pending == 2
    a.run()
    _settle(w, qtbot)
    assert _output(viewer).data.any()
    assert "cancelled" not in w.status_label.text()  # the prompts ran: the line no longer says they are queued


def test_torch_never_runs_on_the_gui_thread(viewer, qtbot):
    import threading

    main = threading.get_ident()
    seen = []

    class Spy(ThresholdNet):
        def __call__(self, x):
            seen.append(threading.get_ident())
            return super().__call__(x)

    w, layer, _ = _widget(viewer)
    a = _attach(w, layer, Spy(0.5))
    a.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    assert seen and all(t != main for t in seen)
    assert torch.get_num_threads() >= 1


def test_download_button_runs_in_the_background_and_fills_the_model_field(viewer, qtbot, tmp_path, monkeypatch):
    from ..core.test_hub import FakeHub

    monkeypatch.setenv("NNINTERACTIVE_HOME", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.snapshot_download", FakeHub())
    w, _, _msgs = _widget(viewer)
    w.download_model()
    assert w.downloader is not None  # the GUI thread returned at once
    qtbot.waitUntil(lambda: w.downloader is None, timeout=30000)
    assert w.model_edit.text() == str(tmp_path / "nnInteractive_v1.0")
    assert w.status_label.text().startswith("Model ready")


def test_download_offline_explains_and_keeps_the_weight_free_engine(viewer, qtbot, tmp_path, monkeypatch):
    def offline(**kwargs):
        raise ConnectionError("no network")

    monkeypatch.setenv("NNINTERACTIVE_HOME", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.snapshot_download", offline)
    w, _, msgs = _widget(viewer)
    w.download_model()
    qtbot.waitUntil(lambda: w.downloader is None, timeout=30000)
    assert "Cannot reach Hugging Face" in w.status_label.text() and "weight-free engine works meanwhile" in msgs[-1]
    assert w.model_edit.text() == ""


def test_list_button_fills_the_hub_choice_in_the_background(viewer, qtbot, tmp_path, monkeypatch):
    from ..core.test_hub import FakeHub

    monkeypatch.setenv("NNINTERACTIVE_HOME", str(tmp_path))
    monkeypatch.setattr(
        "huggingface_hub.list_repo_files",
        lambda repo_id: ["nnInteractive_v1.0/plans.json", "nnInteractive_v2.0/plans.json"],
    )
    fake = FakeHub()
    monkeypatch.setattr("huggingface_hub.snapshot_download", fake)
    w, _, _ = _widget(viewer)
    w.list_models()
    assert w.lister is not None
    qtbot.waitUntil(lambda: w.lister is None, timeout=30000)
    assert [w.hub_combo.itemText(i) for i in range(w.hub_combo.count())] == ["nnInteractive_v1.0", "nnInteractive_v2.0"]
    assert "2 model(s) in MIC-DKFZ/nnInteractive" in w.status_label.text()
    w.hub_combo.setCurrentText("nnInteractive_v2.0")
    w.download_model()
    qtbot.waitUntil(lambda: w.downloader is None, timeout=30000)
    assert w.model_edit.text() == str(tmp_path / "nnInteractive_v2.0")


def test_list_offline_shows_the_cache_and_says_so(viewer, qtbot, tmp_path, monkeypatch):
    def offline(repo_id):
        raise ConnectionError("no network")

    monkeypatch.setenv("NNINTERACTIVE_HOME", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.list_repo_files", offline)
    w, _, _ = _widget(viewer)
    w.list_models()
    qtbot.waitUntil(lambda: w.lister is None, timeout=30000)
    assert w.hub_combo.count() == 1 and "cannot be reached" in w.status_label.text()
