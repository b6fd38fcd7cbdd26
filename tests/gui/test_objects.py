"""The object list and export in a real napari viewer: reopen, refine, rename, hide, delete, export."""

import nibabel as nib
import numpy as np
import pytest
import tifffile

from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.gui.annotator import OutputMode, Tool
from napari_nninteractive.gui.persist import object_sources
from napari_nninteractive.gui.widget import NNInteractiveWidget

from ..conftest import sphere, sphere_image

pytestmark = pytest.mark.qt

SHAPE, A, B = (40, 48, 120), (20, 24, 30), (20, 24, 90)


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _image():
    img = sphere_image(SHAPE, A, 10)
    img[sphere(SHAPE, B, 8)] = 100
    return img


def _start(viewer, mode=OutputMode.INSTANCE, class_id=1, **layer_kw):
    """The widget on the two-blob image with the weight-free engine; two objects segmented."""
    layer = viewer.add_image(_image(), name="scan", **layer_kw)
    w = NNInteractiveWidget(viewer)
    msgs = []
    w.annotator.notify = lambda msg, level="info": msgs.append(msg)
    w.mode_combo.setCurrentIndex(list(OutputMode).index(mode))
    w.class_spin.setValue(class_id)
    a = w.start_with_engine(layer, SeededWatershedEngine())
    w.session_started()
    for centre in (A, B):
        a.prompt_layers[Tool.POINT].add(list(centre))
        _settle(a)
        if centre == A:
            a.next_object()
    return w, a, msgs


def _settle(a, qtbot=None):
    a.runner.wait(60)


def _labels(viewer, name="nnInteractive objects"):
    return np.asarray(viewer.layers[name].data)


def _halves(mask):
    """The first object (left blob) and the second (right blob) of a mask."""
    left = mask.copy()
    left[:, :, SHAPE[2] // 2 :] = False
    return left, mask & ~left


def _click_row(qtbot, w, row):
    from qtpy.QtCore import Qt

    table = w.objects_panel.table
    rect = table.visualItemRect(table.item(row, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def _negative_box(a, z, y0, y1, x0, x1):
    a.set_polarity(False)
    a.prompt_layers[Tool.BBOX].add_rectangles(np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], float))
    a.set_polarity(True)


def test_clicking_an_earlier_object_reopens_it_with_its_history_and_refining_changes_only_it(viewer, qtbot):
    w, a, _ = _start(viewer)
    before = _labels(viewer).copy()
    assert set(np.unique(before)) == {0, 1, 2} and w.objects_panel.table.rowCount() == 2
    assert a.object_id == 1
    _click_row(qtbot, w, 0)
    _settle(a)
    assert a.object_id == 0 and a.runner.session.prompt_history == a.histories[0]  # its own history is back
    assert len(a.histories[0]) == 1 and np.array_equal(_labels(viewer), before)  # reopening writes nothing new
    _negative_box(a, A[0], A[1] - 12, A[1] + 12, A[2] + 2, A[2] + 12)  # cut the right half away
    _settle(a)
    after = _labels(viewer)
    assert np.array_equal(after == 2, before == 2)  # the other object is untouched
    assert 0 < (after == 1).sum() < (before == 1).sum() and not ((after == 1) & (before != 1)).any()
    assert not (after == 1)[A[0], A[1] - 12 : A[1] + 12, A[2] + 2 : A[2] + 12].any()  # the negative box is cut away
    assert len(a.histories[0]) == 2 and len(a.histories[1]) == 1
    a.next_object()  # a fresh object never reuses an existing object's id or value
    assert a.object_id == 2
    _settle(a)
    _click_row(qtbot, w, 1)  # leaving the fresh, still empty object adds no empty row
    _settle(a)
    assert a.object_id == 1 and w.objects_panel.table.rowCount() == 2
    a.next_object()
    a.prompt_layers[Tool.POINT].add([A[0], A[1], A[2] + 6])
    _settle(a)
    assert set(np.unique(_labels(viewer))) == {0, 1, 2, 3} and np.array_equal(_labels(viewer) == 2, before == 2)


def test_semantic_objects_of_one_class_keep_their_own_voxels(viewer, qtbot):
    w, a, _ = _start(viewer, OutputMode.SEMANTIC, class_id=3)
    before = _labels(viewer).copy()
    assert set(np.unique(before)) == {0, 3}
    left, right = _halves(before > 0)
    assert left.any() and right.any()
    doc = object_sources(a, w.image_ref).build()  # each object is its own blob, not the whole class
    assert np.array_equal(doc.objects[0].mask, left) and np.array_equal(doc.objects[1].mask, right)
    _click_row(qtbot, w, 0)
    _settle(a)
    assert np.array_equal(a.runner.session.mask.astype(bool), left)
    _negative_box(a, A[0], A[1] - 12, A[1] + 12, A[2] + 2, A[2] + 12)
    _settle(a)
    after = _labels(viewer)
    assert np.array_equal(after[:, :, 60:], before[:, :, 60:])  # the class's other object is untouched
    assert (after[:, :, :60] == 3).sum() < (before[:, :, :60] == 3).sum()


def test_delete_erases_only_that_object_and_deleting_the_current_starts_a_fresh_one(viewer, qtbot):
    w, a, _ = _start(viewer)
    before = _labels(viewer).copy()
    doc = object_sources(a, w.image_ref).build()
    w.objects_panel.table.selectRow(0)
    w.objects_panel.delete_selected(confirm=False)
    after = _labels(viewer)
    assert not (after == 1).any() and np.array_equal(after == 2, before == 2)
    assert w.objects_panel.table.rowCount() == 1 and 0 not in a.targets and 0 not in a.histories
    w.objects_panel.table.selectRow(0)  # the current object (2)
    w.objects_panel.delete_selected(confirm=False)
    _settle(a)
    assert not _labels(viewer).any() and a.object_id == 2 and not a.targets
    a.prompt_layers[Tool.POINT].add(list(B))
    _settle(a)
    assert np.array_equal(_labels(viewer) > 0, before == 2)  # work goes on with a new object
    viewer.layers["nnInteractive objects"].data[...] = 0
    w.restore(doc, "Restored")  # a session saved before the deletions brings both back, editable
    _settle(a)
    assert np.array_equal(_labels(viewer), before) and a.object_id == 1 and w.objects_panel.table.rowCount() == 2


def test_hide_show_and_rename_objects(viewer, qtbot):
    from qtpy.QtCore import Qt

    w, a, _ = _start(viewer)
    layer = viewer.layers["nnInteractive objects"]
    data = _labels(viewer).copy()
    colour2 = np.ravel(layer.get_color(2)).copy()
    w.objects_panel.table.item(0, 2).setCheckState(Qt.CheckState.Unchecked)
    assert np.ravel(layer.get_color(1))[3] == 0 and np.allclose(np.ravel(layer.get_color(2)), colour2)
    assert layer.visible and np.array_equal(_labels(viewer), data)  # hiding never changes the labels
    w.objects_panel.table.item(0, 2).setCheckState(Qt.CheckState.Checked)
    assert np.ravel(layer.get_color(1))[3] == 1 and np.allclose(np.ravel(layer.get_color(2)), colour2)
    w.objects_panel.table.item(1, 0).setText("kidney")
    assert a.targets[1].name == "kidney"
    doc = object_sources(a, w.image_ref).build()
    assert [r.name for r in doc.objects] == ["object 1", "kidney"]


def test_hiding_an_object_of_its_own_layer_hides_the_layer(viewer, qtbot):
    from qtpy.QtCore import Qt

    w, _a, _ = _start(viewer, OutputMode.SEPARATE)
    w.objects_panel.table.item(1, 2).setCheckState(Qt.CheckState.Unchecked)
    assert not viewer.layers["nnInteractive object 2"].visible and viewer.layers["nnInteractive object 1"].visible


def test_deleting_an_objects_own_layer_takes_its_row_out_of_the_list(viewer, qtbot):
    w, _a, _ = _start(viewer, OutputMode.SEPARATE)
    assert w.objects_panel.table.rowCount() == 2
    viewer.layers.remove(viewer.layers["nnInteractive object 1"])
    qtbot.waitUntil(lambda: w.objects_panel.table.rowCount() == 1, timeout=5000)


def test_the_label_cell_text_reads_on_its_colour(viewer, qtbot):
    from napari_nninteractive.gui.objects_panel import LABEL

    w, a, _ = _start(viewer)
    for row, (object_id, _target) in enumerate(a.table.objects()):
        r, g, b = a.table.object_color(object_id)[:3]
        text = w.objects_panel.table.item(row, LABEL).foreground().color().name()
        assert text == ("#000000" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.4 else "#ffffff")
    assert {w.objects_panel.table.item(r, LABEL).foreground().color().name() for r in range(2)} == {
        "#000000",
        "#ffffff",
    }  # napari's first two label colours: one dark, one light


def _export(w, path, kind="instance"):
    w.objects_panel.kind_combo.setCurrentText(kind)
    w.objects_panel.export(path)
    if w.objects_panel.export_worker is not None:
        from qtpy.QtCore import QCoreApplication

        while w.objects_panel.export_worker is not None:
            QCoreApplication.processEvents()


def test_export_formats_kinds_and_names(viewer, qtbot, tmp_path):
    w, _a, _msgs = _start(viewer, OutputMode.SEMANTIC, class_id=4, scale=(2.0, 0.5, 0.5), translate=(10, 0, -5))
    labels = _labels(viewer)
    one, two = _halves(labels > 0)
    _export(w, tmp_path / "o.nii.gz")
    img = nib.load(str(tmp_path / "o.nii.gz"))
    assert np.array_equal(np.asarray(img.dataobj), one * 1 + two * 2)  # instance: 1..N in list order
    assert np.allclose(img.affine, [[2, 0, 0, 10], [0, 0.5, 0, 0], [0, 0, 0.5, -5], [0, 0, 0, 1]])
    assert "as an instance map" in w.status_label.text() and "scale and translation" in w.status_label.text()
    _export(w, tmp_path / "o.tif", "semantic")
    assert np.array_equal(tifffile.imread(tmp_path / "o.tif"), labels)  # semantic: the class ids
    _export(w, tmp_path / "o.npz")
    with np.load(tmp_path / "o.npz") as f:
        assert np.array_equal(f["labels"], one * 1 + two * 2)
    _export(w, tmp_path / "o.zarr")
    import zarr

    assert np.array_equal(zarr.open_array(str(tmp_path / "o.zarr"), mode="r")[...], one * 1 + two * 2)
    _export(w, tmp_path / "o.zarr", "semantic")  # a second export replaces the first
    assert np.array_equal(zarr.open_array(str(tmp_path / "o.zarr"), mode="r")[...], labels)
    # in-memory image: a file name from the layer name, never a broken one
    viewer.layers["scan"].name = "scan: 3/4 (copy)"
    w.objects_panel.format_combo.setCurrentText("nifti")
    assert w.objects_panel.default_export_path().name == "scan_3_4_copy_semantic.nii.gz"
    # a failed export says why and leaves the earlier file as it was
    earlier = (tmp_path / "o.tif").read_bytes()
    _export(w, tmp_path / "missing" / "o.tif")
    assert "does not exist" in w.status_label.text() and (tmp_path / "o.tif").read_bytes() == earlier
    _export(w, tmp_path / "o.png")
    assert "unknown export type" in w.status_label.text()


def test_nifti_export_keeps_the_source_affine(viewer, qtbot, tmp_path):
    from napari_nninteractive.io.export import default_path, nifti_affine

    affine = np.array([[0, 0, -1.5, 90], [0, 0.8, 0, -20], [2.5, 0, 0, 7], [0, 0, 0, 1]], float)
    src = tmp_path / "ct_042.nii.gz"
    nib.save(nib.Nifti1Image(_image(), affine), str(src))
    got, origin = nifti_affine(SHAPE, src, scale=(1, 1, 1))
    assert np.allclose(got, affine) and "ct_042.nii.gz" in origin
    got, origin = nifti_affine((5, 5, 5), src, scale=(1, 2, 3))  # another grid: not the source's affine
    assert np.allclose(np.diag(got)[:3], [1, 2, 3]) and "scale" in origin
    assert default_path("scan", src, "nifti") == tmp_path / "ct_042_instance.nii.gz"


def test_switching_objects_with_queued_prompts_asks_to_run_them_first(viewer, qtbot):
    w, a, msgs = _start(viewer)
    w.autorun_check.setChecked(False)
    a.prompt_layers[Tool.POINT].add([B[0], B[1], B[2] + 3])
    _settle(a)
    _click_row(qtbot, w, 0)
    assert "queued prompt" in msgs[-1] and a.object_id == 1 and a.last_outcome.state.pending == 1
    w.run_button.click()
    _settle(a)
    _click_row(qtbot, w, 0)
    _settle(a)
    assert a.object_id == 0 and len(a.histories[1]) == 2  # the run prompt belongs to object 2's history


def test_writing_a_change_touches_only_its_flipped_voxels_and_keeps_other_objects():
    """``write_object`` with the session's flipped region: hand edits elsewhere in the box survive, another
    object's voxels stay without overwrite, and an all-False change writes nothing."""
    from napari.layers import Image, Labels

    from napari_nninteractive.gui.layers import ImageView, write_object

    data = np.zeros((6, 8, 8), np.uint8)
    data[1, 1, 1] = 3  # painted by hand, outside the change
    data[2, 4, 4] = 5  # another object, inside the change
    layer, view = Labels(data), ImageView(np.zeros((6, 8, 8), np.float32), Image(np.zeros((6, 8, 8))))
    box = ((0, 6), (0, 8), (0, 8))
    mask = np.zeros((6, 8, 8), np.uint8)
    mask[2:4, 3:6, 3:6] = 1
    flipped = mask.astype(bool)
    assert write_object(layer, view, box, mask, 3, False, flipped) == 1  # the other object's voxel stayed
    expected = data.copy()
    expected[2:4, 3:6, 3:6] = 3
    expected[2, 4, 4] = 5
    assert np.array_equal(layer.data, expected)  # the hand-painted voxel survived too
    assert write_object(layer, view, box, np.zeros_like(mask), 3, False, np.zeros_like(flipped)) == 0
    assert np.array_equal(layer.data, expected)
    shrink = mask.copy()
    shrink[3] = 0
    assert write_object(layer, view, box, shrink, 3, True, mask.astype(bool) & ~shrink.astype(bool)) == 0
    expected[3, 3:6, 3:6] = 0
    assert np.array_equal(layer.data, expected)
    assert write_object(layer, view, box, shrink, 3, True) == 0  # no flipped region: the whole box is compared
    expected[1, 1, 1] = 0  # ... so the hand-painted voxel, not in the mask, goes
    expected[2, 4, 4] = 3
    assert np.array_equal(layer.data, expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.int64, np.uint64])
def test_writing_a_change_gives_the_voxel_rule_for_every_label_dtype(dtype):
    """``write_object`` against the rule written out voxel by voxel, on random layers, masks and flipped regions:
    where the change applies, the object's voxels become ``value`` (another object's only with overwrite) and
    voxels it gives up become 0; every other voxel keeps its value, and the dtype stays."""
    from napari.layers import Image, Labels

    from napari_nninteractive.gui.layers import ImageView, write_object

    rng = np.random.default_rng(7)
    box = ((3, 13), (4, 16), (5, 14))
    inner = tuple(slice(lo, hi) for lo, hi in box)
    for value in (1, 3, 120):
        for overwrite in (False, True):
            for with_flipped in (False, True):
                data = rng.integers(0, 4, (16, 20, 18)).astype(dtype)
                data[data == 3] = value  # some voxels already hold the object
                mask = (rng.random((10, 12, 9)) > 0.5).astype(np.uint8)
                region = data[inner]
                applies = mask.astype(bool) != (region == value)
                # the session's flipped region may hold voxels the rule leaves as they are (another object's)
                flipped = rng.random(applies.shape) > 0.3 if with_flipped else None
                todo = flipped if with_flipped else applies
                expected = data.copy()
                for idx in zip(*np.nonzero(todo), strict=True):
                    here = region[idx]
                    if mask[idx] and (overwrite or here in (0, value)):
                        expected[inner][idx] = value
                    elif not mask[idx] and here == value:
                        expected[inner][idx] = 0
                layer = Labels(data.copy())
                view = ImageView(np.zeros(data.shape, np.float32), Image(np.zeros(data.shape)))
                write_object(layer, view, box, mask, value, overwrite, flipped)
                assert layer.data.dtype == dtype
                assert np.array_equal(layer.data, expected), (value, overwrite, with_flipped)


def test_going_back_to_an_image_annotated_earlier_brings_its_objects_back(viewer, qtbot, tmp_path):
    from napari_nninteractive.core.document import load_document

    w, a, _ = _start(viewer)  # image "scan": two objects
    a.table.set_visible(0, False)  # one hidden
    other = viewer.add_image(_image()[:, ::-1].copy(), name="other")
    w.start_with_engine(other, SeededWatershedEngine())
    a.prompt_layers[Tool.POINT].add(list(A))
    _settle(a)
    assert [i for i, _ in a.table.objects()] == [0]  # the other image's own object
    w.start_with_engine(viewer.layers["scan"], SeededWatershedEngine())  # back to the first image
    assert [i for i, _ in a.table.objects()] == [0, 1] and w.objects_panel.table.rowCount() == 2
    assert not a.targets[0].visible and a.object_id == 2  # still hidden; a new object takes a fresh id
    a.prompt_layers[Tool.POINT].add([20, 24, 60])
    _settle(a)
    w.save_session(tmp_path / "s.npz")
    qtbot.waitUntil(lambda: w.file_worker is None, timeout=30000)
    assert [o.label for o in load_document(tmp_path / "s.npz").objects] == [1, 2, 3]  # none of them lost
