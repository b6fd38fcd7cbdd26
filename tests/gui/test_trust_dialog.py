"""The widget asks before loading a checkpoint that can run code (the dialog's two answers)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_nninteractive.testing import write_model_folder

from ..core.test_safety import _poison_checkpoint


@pytest.fixture
def folder(tmp_path) -> Path:
    return Path(shutil.copytree(write_model_folder(tmp_path / "src" / "model"), tmp_path / "model"))


@pytest.mark.qt
@pytest.mark.parametrize("accept", [False, True])
def test_widget_asks_before_loading_a_checkpoint_that_can_run_code(make_napari_viewer, qtbot, folder, tmp_path, accept):
    from napari_nninteractive.gui.widget import NNInteractiveWidget

    marker = tmp_path / "marker"
    _poison_checkpoint(folder, marker)
    viewer = make_napari_viewer()
    image = np.random.default_rng(0).normal(0, 1, (8, 16, 16)).astype(np.float32)
    image[2:6, 4:12, 4:12] += 100
    viewer.add_image(image, name="scan")
    w = NNInteractiveWidget(viewer)
    asked = []
    w.confirm_trust = lambda error: asked.append(error) or accept
    w.model_edit.setText(str(folder))
    w.device_combo.setCurrentText("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the loud "allowed (trusted by the user)" warning when accepted
        w.initialize()
        qtbot.waitUntil(
            lambda: w.loader is None and w.init_button.isEnabled() and (w.annotator.ready or not accept), timeout=60000
        )
    assert len(asked) == 1 and asked[0].names == ["builtins.exec"]
    assert marker.exists() == accept and w.annotator.ready == accept
    if not accept:
        assert "could run code" in w.status_label.text()
