"""Screenshot of the dock widget in use on a 1366x768 window: ``xvfb-run -a -s "-screen 0 1366x768x24" python docs/make_screenshot.py``.

Drives the real widget in a real viewer: synthetic scan, Initialize with a random-weight model
folder in the official format (the real weights are not bundled), two objects seeded from a
labels layer with "Initialize with mask" (so the object list shows them), then a positive point
and a negative box queued on the second (auto-run off) so the prompt colours show. Writes
``docs/screenshot.png``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    import os

    os.environ["NNINTERACTIVE_HOME"] = tempfile.mkdtemp(prefix="nni_screenshot_")  # no autosave of earlier runs
    import napari
    from qtpy.QtCore import QCoreApplication

    from napari_nninteractive.gui.annotator import Tool
    from napari_nninteractive.testing import synthetic_volume, write_model_folder

    def pump(seconds: float = 0.3) -> None:
        end = time.time() + seconds
        while time.time() < end:
            QCoreApplication.processEvents()

    model = write_model_folder(Path(tempfile.mkdtemp()) / "nnInteractive_random_weights")
    image, labels = synthetic_volume((96, 128, 128), seed=3)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1366, 768)  # a common laptop screen: the dock must fit it
    viewer.add_image(image, name="scan", colormap="gray")
    viewer.add_labels(labels, name="reference", visible=False)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-nninteractive", "nnInteractive")
    widget.model_edit.setText(str(model))
    widget.device_combo.setCurrentText("cpu")
    widget.initialize()
    while widget.loader is not None:
        pump(0.1)
    a = widget.annotator
    widget.refresh_layer_choices()
    widget.mask_combo.setCurrentText("reference")
    widget.mask_value.setValue(1)
    widget.apply_mask()
    a.runner.wait(60)
    a.next_object()
    value = 2
    z = int(np.argwhere(labels == value)[:, 0].mean())
    viewer.dims.set_current_step(0, z)
    widget.refresh_layer_choices()
    widget.mask_combo.setCurrentText("reference")
    widget.mask_value.setValue(value)
    widget.apply_mask()
    a.runner.wait(60)
    widget.autorun_check.setChecked(False)
    ys, xs = np.nonzero(labels[z] == value)
    a.prompt_layers[Tool.POINT].add([z, int(ys.mean()), int(xs.mean())])
    a.set_polarity(False)
    cy, cx = int(ys.mean()), int(xs.mean()) + 40
    a.prompt_layers[Tool.BBOX].add_rectangles(
        np.array([[z, cy - 10, cx - 10], [z, cy - 10, cx + 10], [z, cy + 10, cx + 10], [z, cy + 10, cx - 10]])
    )
    a.set_polarity(True)
    a.set_tool(Tool.POINT)
    a.runner.wait(60)
    viewer.reset_view()
    viewer.scene.camera.zoom *= 0.95
    pump(8.0)  # let napari's start-up notification toast expire
    out = Path(__file__).with_name("screenshot.png")
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    print(f"wrote {out}")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
