"""GUI-thread cost of one autosave request in the widget, on a 512x512x133 image with four objects.

Autosave runs after every finished interaction. The part on the GUI thread (what the user can
feel as a stall) is timed here, against the first version which fingerprinted the image and
compared every layer with its label on the GUI thread; writing the file happens on a worker.
Run under Xvfb:

    xvfb-run -a python benchmarks/autosave_cost.py
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np


def main() -> int:
    os.environ["NNINTERACTIVE_HOME"] = tempfile.mkdtemp(prefix="nni_autosave_")
    import napari
    from qtpy.QtCore import QCoreApplication

    from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
    from napari_nninteractive.gui.annotator import ObjectTarget
    from napari_nninteractive.gui.widget import NNInteractiveWidget
    from napari_nninteractive.testing import synthetic_volume

    image, labels = synthetic_volume((133, 512, 512), seed=1)
    viewer = napari.Viewer(show=False)
    layer = viewer.add_image(image, name="ct")
    w = NNInteractiveWidget(viewer)
    w.start_with_engine(layer, SeededWatershedEngine())
    w.session_started()
    out = viewer.add_labels(labels.astype(np.uint16), name="nnInteractive objects")
    w.annotator.targets = {i: ObjectTarget(out, i + 1) for i in range(4)}
    w.annotator.object_id = 3
    from napari_nninteractive.gui.persist import image_ref, object_sources

    before = []  # the first version: fingerprint and masks computed on the GUI thread at every request
    for _ in range(5):
        t = time.perf_counter()
        object_sources(w.annotator, image_ref(w.annotator)).build()
        before.append(time.perf_counter() - t)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        w.autosaver.request()
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        while w.autosaver.busy:
            QCoreApplication.processEvents()
        written = time.perf_counter() - t
    print(f"GUI thread, fingerprint + masks per request (before): median {1000 * np.median(before):.0f} ms")
    print(
        f"GUI thread per autosave request: median {1000 * np.median(times):.0f} ms, max {1000 * max(times):.0f} ms; "
        f"writing on the worker: {written:.2f} s; file {w.autosaver.path().stat().st_size / 1e3:.0f} kB"
    )
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
