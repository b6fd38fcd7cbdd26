"""Hostile inputs and faults: each gives a clear message, no traceback, and leaves the user's data as it was.

(Killing the process mid-session and cancelling downloads and predictions are tested in
test_document.py, test_hub.py and test_widget.py.)
"""

import numpy as np
import pytest
import torch

from napari_nninteractive.core import lazy
from napari_nninteractive.core.encoding import compute_normalization
from napari_nninteractive.core.engines.network import NetworkEngine
from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.core.prompts import PromptError
from napari_nninteractive.core.session import Session
from napari_nninteractive.gui.annotator import Tool
from napari_nninteractive.gui.widget import NNInteractiveWidget

from ..conftest import ThresholdNet, fake_model, sphere, sphere_image

SHAPE, C, R = (32, 48, 48), (16, 24, 24), 8


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _initialize(viewer, qtbot, image, **layer_kw):
    """Add ``image`` and press Initialize with an empty model field (the weight-free engine)."""
    layer = viewer.add_image(image, name="scan", **layer_kw)
    w = NNInteractiveWidget(viewer)
    msgs = []
    w.annotator.notify = lambda msg, level="info": msgs.append(msg)
    w.image_combo.setCurrentText("scan")
    w.initialize()
    qtbot.waitUntil(lambda: w.loader is None, timeout=60000)
    return w, layer, msgs


def _our_layers(viewer):
    return [layer.name for layer in viewer.layers if layer.name.startswith("nnInteractive")]


def _settle(w):
    w.annotator.runner.wait(60)


def _segmented(viewer, qtbot):
    """An initialized widget with one object; returns the widget, messages and the labels before."""
    w, _, msgs = _initialize(viewer, qtbot, sphere_image(SHAPE, C, R))
    assert w.annotator.ready, w.status_label.text()
    w.annotator.prompt_layers[Tool.POINT].add(list(C))
    _settle(w)
    labels = np.asarray(viewer.layers["nnInteractive objects"].data).copy()
    assert labels.any()
    return w, msgs, labels


def _unchanged(viewer, labels):
    return np.array_equal(np.asarray(viewer.layers["nnInteractive objects"].data), labels)


# ----------------------------------------------------------------------------- images


@pytest.mark.qt
def test_all_zero_image_is_refused_with_a_message(viewer, qtbot):
    w, layer, _ = _initialize(viewer, qtbot, np.zeros(SHAPE, np.int16))
    assert "all zero" in w.status_label.text() and not w.annotator.ready
    assert not layer.data.any() and not _our_layers(viewer)


@pytest.mark.qt
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_voxels_are_refused_with_a_message(viewer, qtbot, bad):
    image = sphere_image(SHAPE, C, R)
    image[3, 4, 5] = bad
    original = image.copy()
    w, layer, _ = _initialize(viewer, qtbot, image)
    assert "NaN or infinite" in w.status_label.text() and not w.annotator.ready
    assert np.array_equal(layer.data, original, equal_nan=True) and not _our_layers(viewer)


def _lazy_array(kind, image):
    if kind == "dask":
        return pytest.importorskip("dask.array").from_array(image, chunks=(8, 48, 48))
    zarr = pytest.importorskip("zarr")
    arr = zarr.create_array(store={}, shape=image.shape, dtype=image.dtype, chunks=(8, 48, 48))
    arr[...] = image
    return arr


@pytest.mark.qt
@pytest.mark.parametrize("kind", ["dask", "zarr"])
def test_dask_or_zarr_image_stays_lazy_and_segments_like_the_in_memory_one(viewer, qtbot, kind):
    image = sphere_image(SHAPE, C, R)
    w, _layer, _ = _initialize(viewer, qtbot, _lazy_array(kind, image))
    assert w.annotator.ready and lazy.is_lazy(w.annotator.view.volume)  # never converted to one big array
    w.annotator.prompt_layers[Tool.POINT].add(list(C))
    _settle(w)
    lazy_labels = np.asarray(viewer.layers["nnInteractive objects"].data).copy()
    expected = Session(SeededWatershedEngine())
    expected.set_image(image)
    expected.add_point(C)
    assert np.array_equal(lazy_labels > 0, expected.mask > 0) and lazy_labels.any()


@pytest.mark.qt
def test_multiscale_image_prompts_land_on_the_full_resolution_level(viewer, qtbot):
    da = pytest.importorskip("dask.array")
    image = sphere_image(SHAPE, C, R)
    levels = [da.from_array(image, chunks=16), da.from_array(image[::2, ::2, ::2], chunks=16)]
    w, _layer, msgs = _initialize(viewer, qtbot, levels, multiscale=True)
    assert w.annotator.ready and w.annotator.view.shape == SHAPE
    assert any("full-resolution level" in m for m in msgs)
    w.annotator.prompt_layers[Tool.POINT].add(list(C))
    _settle(w)
    labels = np.asarray(viewer.layers["nnInteractive objects"].data)
    assert labels.shape == SHAPE and labels[C] > 0 and (labels > 0).sum() > 0.8 * sphere(SHAPE, C, R).sum()


@pytest.mark.qt
def test_image_whose_masks_would_not_fit_in_memory_is_refused(viewer, qtbot, monkeypatch):
    da = pytest.importorskip("dask.array")
    monkeypatch.setattr(lazy, "available_memory", lambda: 100_000)  # 100 kB free
    image = da.zeros(SHAPE, dtype=np.int16, chunks=16) + 1
    w, layer, _ = _initialize(viewer, qtbot, image)
    text = w.status_label.text()
    assert "working memory" in text and "lower-resolution level" in text and not w.annotator.ready
    assert layer.data is image and not _our_layers(viewer)


class _CountingArray:
    """An array read on demand that records how many voxels each read asks for."""

    def __init__(self, values):
        self.values, self.shape, self.dtype, self.reads = values, values.shape, values.dtype, []

    def __getitem__(self, key):
        out = self.values[key]
        self.reads.append(out.size)
        return out


def test_lazy_image_is_read_a_slab_at_a_time_and_gives_the_same_masks_and_statistics(monkeypatch):
    monkeypatch.setattr(lazy, "SLAB_BYTES", 48 * 48 * 4 * 5)  # five slices per read
    image = sphere_image(SHAPE, C, R)
    image[sphere(SHAPE, (16, 10, 10), 3)] = 40.0
    source = _CountingArray(image)
    norm_lazy, norm = compute_normalization(lazy.LazyImage(source)), compute_normalization(image[None])
    assert abs(norm_lazy.mean - norm.mean) < 1e-9 * abs(norm.mean) and abs(norm_lazy.std - norm.std) < 1e-9 * norm.std
    source.reads.clear()
    s_lazy, s_mem = Session(SeededWatershedEngine()), Session(SeededWatershedEngine())
    s_lazy.set_image(source)
    s_mem.set_image(image)
    assert max(source.reads) <= 48 * 48 * 5  # the whole-image check never loads it at once
    for s in (s_lazy, s_mem):
        s.add_point(C)
        s.add_bbox([[16, 17], [4, 17], [4, 17]])
    assert np.array_equal(s_lazy.mask, s_mem.mask) and s_lazy.mask.any()


# ----------------------------------------------------------------------------- prompts


@pytest.mark.qt
def test_point_outside_the_image_says_so_and_changes_nothing(viewer, qtbot):
    w, msgs, labels = _segmented(viewer, qtbot)
    w.annotator.prompt_layers[Tool.POINT].add([16, 24, 300])
    _settle(w)
    assert "outside the image" in msgs[-1] and _unchanged(viewer, labels)


@pytest.mark.qt
def test_zero_area_box_and_lasso_say_so_and_change_nothing(viewer, qtbot):
    w, msgs, labels = _segmented(viewer, qtbot)
    a = w.annotator
    a.prompt_layers[Tool.BBOX].add_rectangles(np.array([[16, 30, 30]] * 4, float))
    _settle(w)
    assert "box has no area" in msgs[-1] and _unchanged(viewer, labels)
    a.prompt_layers[Tool.LASSO].add_polygons(np.array([[16, 30, 10], [16, 30, 20], [16, 30, 40]], float))
    _settle(w)
    assert "lasso has no area" in msgs[-1] and _unchanged(viewer, labels)


def test_empty_scribble_and_lasso_through_the_api_say_so_and_keep_the_mask():
    s = Session(SeededWatershedEngine())
    s.set_image(sphere_image(SHAPE, C, R))
    s.add_point(C)
    before = s.mask.copy()
    with pytest.raises(PromptError, match="Scribble is empty"):
        s.add_scribble(np.zeros(SHAPE, bool))
    with pytest.raises(PromptError, match="empty"):
        s.add_lasso(np.zeros(SHAPE, bool))
    with pytest.raises(PromptError, match="outside the image"):
        s.add_bbox([[40, 50], [0, 5], [0, 5]])
    assert np.array_equal(s.mask, before) and len(s.prompt_history) == 1


def test_3d_box_on_a_model_with_2d_boxes_says_so_and_keeps_the_mask():
    s = Session(NetworkEngine(fake_model(ThresholdNet(0.5)), device="cpu", autozoom=False))
    assert not s.engine.supports_3d_box
    s.set_image(sphere_image(SHAPE, C, R))
    s.add_point(C)
    before = s.mask.copy()
    with pytest.raises(PromptError, match="2-D box") as err:
        s.add_bbox([[10, 20], [16, 32], [16, 32]])
    assert "one slice" in str(err.value) or "extent 1" in str(err.value)
    assert np.array_equal(s.mask, before) and len(s.prompt_history) == 1


# ----------------------------------------------------------------------------- faults


class _OomOnce(ThresholdNet):
    """Runs out of accelerator memory on its first pass, then works."""

    def __init__(self):
        super().__init__(0.5)
        self.failed = False

    def __call__(self, x):
        if not self.failed:
            self.failed = True
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().__call__(x)

    def to(self, device):
        self.device = torch.device(device)
        return self

    def eval(self):
        return self


@pytest.mark.qt
def test_gpu_out_of_memory_retries_on_the_cpu_with_a_message(viewer, qtbot):
    net = _OomOnce()
    engine = NetworkEngine(fake_model(net), device="cpu", autozoom=False)
    engine.device = torch.device("meta")  # stands in for a GPU on this CPU-only machine
    layer = viewer.add_image(sphere_image(SHAPE, C, R), name="scan")
    w = NNInteractiveWidget(viewer)
    msgs = []
    w.annotator.notify = lambda msg, level="info": msgs.append(msg)
    w.start_with_engine(layer, engine)
    w.annotator.prompt_layers[Tool.POINT].add(list(C))
    _settle(w)
    assert net.failed and engine.device.type == "cpu" and net.device.type == "cpu"
    assert any("ran out of memory" in m and "on the CPU" in m for m in msgs)
    assert np.array_equal(np.asarray(viewer.layers["nnInteractive objects"].data) > 0, sphere(SHAPE, C, R))
    assert np.array_equal(layer.data, sphere_image(SHAPE, C, R))  # the image is untouched


def test_out_of_memory_on_the_cpu_keeps_the_mask_and_the_prompt_queued():
    net = _OomOnce()
    s = Session(NetworkEngine(fake_model(net), device="cpu", autozoom=False))
    s.set_image(sphere_image(SHAPE, C, R))
    from napari_nninteractive.core.engines.base import GpuOutOfMemory

    with pytest.raises(GpuOutOfMemory, match="ran out of memory"):
        s.add_point(C)
    assert not s.mask.any() and len(s.pending) == 1
    s.predict()  # the queued prompt runs once memory is available again
    assert np.array_equal(s.mask > 0, sphere(SHAPE, C, R))


@pytest.mark.qt
def test_an_unexpected_error_in_a_session_is_reported_and_the_widget_goes_on(viewer, qtbot):
    """A bug in a backend (not a user error) must not leave the runner stuck: the next action still runs."""
    from napari_nninteractive.core.engines.registry import make_engine

    layer = viewer.add_image(sphere_image(SHAPE, C, R), name="scan")
    w = NNInteractiveWidget(viewer)
    annotator = w.start_with_engine(layer, make_engine(engine="weight-free"))
    session = annotator.runner.session
    real = session.add_prompts
    calls = []

    def broken_once(prompts, run=True):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("backend bug")
        return real(prompts, run)

    session.add_prompts = broken_once
    annotator.prompt_layers[Tool.POINT].add(list(C))
    _settle(w)
    assert "Unexpected error (RuntimeError: backend bug)" in w.status_label.text()
    annotator.prompt_layers[Tool.POINT].add([C[0], C[1] + 1, C[2]])
    _settle(w)
    assert len(calls) == 2 and np.asarray(viewer.layers["nnInteractive objects"].data).any()
