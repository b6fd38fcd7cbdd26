"""Sample data contribution and the demo command."""

import numpy as np
import pytest

from napari_nninteractive.cli import demo
from napari_nninteractive.gui import demo as gui_demo
from napari_nninteractive.gui.samples import synthetic_scan


def test_sample_is_a_generated_scan_with_reference_labels():
    (image, _ikw, ikind), (labels, _lkw, lkind) = synthetic_scan()
    assert (ikind, lkind) == ("image", "labels")
    assert image.shape == labels.shape == (96, 128, 128)
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4}
    means = [float(image[labels == v].mean()) for v in range(5)]
    assert len({round(m, -1) for m in means}) == 5  # background and four objects of different contrast
    assert image[labels == 0].std() > 1  # noisy, like a scan


@pytest.mark.qt
def test_sample_opens_in_napari(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-nninteractive", "synthetic_scan")
    assert [layer.name for layer in viewer.layers] == ["synthetic scan", "synthetic reference"]


@pytest.mark.slow
def test_headless_demo_writes_mask_and_overview(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(demo.sys, "platform", "linux")
    assert not demo.has_display()
    assert demo.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "No display found" in out
    for name in ("scan.nii.gz", "labels.nii.gz", "prompts.json", "mask.nii.gz", "overview.png"):
        assert (tmp_path / name).exists()
    assert (tmp_path / "overview.png").read_bytes()[:4] == b"\x89PNG"
    dice = float(out.split("reference: ")[1].split(";")[0])
    assert dice > 0.9  # measured 0.968
    # One progress line per interaction, naming what the weight-free engine did (no network passes).
    progress = [line for line in out.splitlines() if line.startswith("[")]
    assert len(progress) == 2 and all("solver run" in line for line in progress) and "forward pass" not in out
    # The command the demo suggests next runs on what it wrote.
    assert f"nninteractive-eval {tmp_path / 'scan.nii.gz'} {tmp_path / 'labels.nii.gz'}" in out
    from napari_nninteractive.cli.eval import main as eval_main

    code = eval_main(
        [
            str(tmp_path / "scan.nii.gz"),
            str(tmp_path / "labels.nii.gz"),
            "--labels",
            "2",
            "--interactions",
            "1",
            "--out",
            str(tmp_path / "eval"),
        ]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert "D@1" in table and "weight-free" in table and (tmp_path / "eval" / "summary.txt").exists()


def _visible_world_box(viewer):
    """(lo, hi) of the world rectangle the 2-D canvas shows, in the displayed (row, column) axes."""
    cam = gui_demo.camera(viewer)
    size = np.asarray(viewer.canvas.size if hasattr(viewer, "canvas") else viewer._canvas_size, float)  # (h, w)
    centre = np.asarray(cam.center[-2:], float)
    return centre - size / (2 * cam.zoom), centre + size / (2 * cam.zoom), size


@pytest.mark.slow
@pytest.mark.qt
def test_gui_demo_opens_with_the_whole_slice_and_the_first_step_shown(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NNINTERACTIVE_HOME", str(tmp_path / "home"))
    viewer = make_napari_viewer(show=True)
    viewer_, widget = gui_demo.open_gui(viewer)
    assert viewer_ is viewer
    qtbot.waitUntil(lambda: widget.loader is None, timeout=30000)
    qtbot.wait(400)  # the delayed reset_view after Qt laid the docked window out
    assert widget.annotator.ready
    assert widget.status_label.text().startswith("Initialized")
    window = viewer.window._qt_window
    assert window.width() <= gui_demo.WINDOW_SIZE[0] and window.height() <= gui_demo.WINDOW_SIZE[1]

    lo, hi, size = _visible_world_box(viewer)
    assert min(size) > 250  # the canvas is not squeezed by the dock (was ~250 px wide)
    extent = viewer.layers["synthetic scan"].extent.world[:, -2:]  # the slice, in world units
    slice_lo, slice_hi = extent[0] - 0.5, extent[1] - 0.5  # pixel edges
    assert np.all(lo <= slice_lo + 1e-6) and np.all(hi >= slice_hi - 1e-6), (lo, hi, slice_lo, slice_hi)
    assert np.max((slice_hi - slice_lo) / (hi - lo)) > 0.8  # and it fills the canvas, not a speck

    overlay = gui_demo.text_overlay(viewer)
    assert overlay.visible and "Press P" in overlay.text and "click an object" in overlay.text


def test_overview_draws_the_prompts_on_named_slices(tmp_path):
    import matplotlib.image as mpimg

    image = np.zeros((20, 30, 40), np.float32)
    image[5:15, 10:20, 10:30] = 100
    mask = (image > 0).astype(np.uint8)
    prompts = [
        {"type": "bbox", "positive": True, "bbox": [[9, 10], [8, 22], [8, 32]]},
        {"type": "point", "positive": False, "coord": [9, 15, 20]},
    ]
    png = demo.overview_png(image, mask, mask.astype(bool), tmp_path / "o.png", prompts)
    rgb = mpimg.imread(str(png))[..., :3]
    assert np.any(np.all(np.abs(rgb - [0, 1, 0]) < 0.05, axis=-1))  # the box (lime)
    assert np.any(np.all(np.abs(rgb - [1, 0, 0]) < 0.05, axis=-1))  # the negative point (red)
    assert not list(tmp_path.glob("*.tmp*"))  # written in one piece


def test_overview_slices_go_through_the_point_and_panels_name_their_axes():
    pts = [
        {"type": "bbox", "positive": True, "bbox": [[4, 5], [1, 9], [2, 8]]},
        {"type": "point", "positive": True, "coord": [4, 5, 6]},
    ]
    assert demo._panel_centre(np.zeros((10, 10, 10)), pts).tolist() == [4, 5, 6]
    assert demo._panel_centre(np.zeros((10, 10, 10)), pts[:1]).tolist() == [4, 4, 4]
    assert [(name, demo._AXIS_NAMES[a]) for name, a, _ in demo._PANELS] == [
        ("axial", "z"),
        ("coronal", "y"),
        ("sagittal", "x"),
    ]


def test_testing_example_writes_the_reference_labels_for_eval(tmp_path, capsys):
    from napari_nninteractive import testing
    from napari_nninteractive.io.volumes import read_volume

    out = tmp_path / "example"
    assert testing._main([str(out), "--size", "48"]) == 0
    text = capsys.readouterr().out
    labels = np.asarray(read_volume(out / "labels.nii.gz").array)
    image = np.asarray(read_volume(out / "volume.nii.gz").array)
    assert labels.shape == image.shape == (48, 48, 48) and set(np.unique(labels)) <= {0, 1, 2, 3, 4}
    assert f"nninteractive-eval {out}/volume.nii.gz {out}/labels.nii.gz" in text
