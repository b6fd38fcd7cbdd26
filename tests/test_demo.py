"""Sample data contribution and the demo command."""

import numpy as np
import pytest

from napari_nninteractive import demo
from napari_nninteractive._sample import synthetic_scan


def test_sample_is_a_generated_scan_with_reference_labels():
    (image, ikw, ikind), (labels, lkw, lkind) = synthetic_scan()
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


def test_headless_demo_writes_mask_and_overview(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(demo.sys, "platform", "linux")
    assert not demo.has_display()
    assert demo.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "No display found" in out
    for name in ("scan.nii.gz", "prompts.json", "mask.nii.gz", "overview.png"):
        assert (tmp_path / name).exists()
    assert (tmp_path / "overview.png").read_bytes()[:4] == b"\x89PNG"
    dice = float(out.split("reference: ")[1].split(";")[0])
    assert dice > 0.9  # measured 0.968
