"""Object list, export and lazy images on a 512x512x133 scan with four objects (figures, not tests).

Prints, measured in one run:
- GUI-thread time to reopen an earlier object from the list (reading its voxels from the layer),
  in an instance map and in a semantic map (where finished objects keep their own voxels);
- time to export the four objects as one label map in each format (on the export worker);
- weight-free engine: set_image plus one click on the image in memory vs the same image as a dask
  array (read a slab / a window at a time), and the ratio.

    xvfb-run -a python benchmarks/objects_and_export.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _median_ms(fn, repeat=5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def main() -> int:
    os.environ["NNINTERACTIVE_HOME"] = tempfile.mkdtemp(prefix="nni_objects_")
    import dask.array as da
    import napari

    from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
    from napari_nninteractive.core.geometry import PackedMask
    from napari_nninteractive.core.session import Session
    from napari_nninteractive.gui.annotator import ObjectTarget
    from napari_nninteractive.gui.persist import object_sources
    from napari_nninteractive.gui.widget import NNInteractiveWidget
    from napari_nninteractive.io.export import label_map, write_label_map
    from napari_nninteractive.testing import synthetic_volume

    image, labels = synthetic_volume((133, 512, 512), seed=1)
    viewer = napari.Viewer(show=False)
    layer = viewer.add_image(image, name="ct")
    w = NNInteractiveWidget(viewer)
    a = w.start_with_engine(layer, SeededWatershedEngine())
    w.session_started()
    out = viewer.add_labels(labels.astype(np.uint16), name="nnInteractive objects")
    print(
        f"image {image.shape} {image.dtype}, four objects of {[int((labels == v).sum()) for v in range(1, 5)]} voxels"
    )

    a.targets = {i: ObjectTarget(out, i + 1, f"object {i + 1}") for i in range(4)}
    instance = _median_ms(lambda: a.object_mask(0))
    semantic_layer = viewer.add_labels((labels > 0).astype(np.uint16) * 3, name="semantic")
    a.targets = {i: ObjectTarget(semantic_layer, 3, f"object {i + 1}") for i in range(4)}
    a.own = {i: PackedMask.of(labels == i + 1) for i in range(3)}  # object 3 is being edited
    semantic_finished = _median_ms(lambda: a.object_mask(0))
    semantic_current = _median_ms(lambda: a.object_mask(3))
    print(
        f"reopen from the list, GUI thread (reading the object's voxels): instance map {instance:.0f} ms; "
        f"semantic map {semantic_finished:.0f} ms (finished object), {semantic_current:.0f} ms (object being edited)"
    )

    a.targets = {i: ObjectTarget(out, i + 1, f"object {i + 1}") for i in range(4)}
    a.own = {}
    a.object_id = 3
    records = object_sources(a, w.image_ref).build().objects
    folder = Path(tempfile.mkdtemp(prefix="nni_export_"))
    for name in ("objects.nii.gz", "objects.tif", "objects.zarr", "objects.npz"):
        t = time.perf_counter()
        write_label_map(folder / name, label_map([r.mask for r in records], [r.label for r in records]), np.eye(4))
        size = (
            sum(p.stat().st_size for p in (folder / name).rglob("*"))
            if (folder / name).is_dir()
            else (folder / name).stat().st_size
        )
        print(f"export {name:15s} {time.perf_counter() - t:5.2f} s, {size / 1e6:6.2f} MB")

    centre = tuple(int(c) for c in np.argwhere(labels == 2).mean(0).round())

    def click(volume):
        s = Session(SeededWatershedEngine())
        s.set_image(volume)
        s.add_point(centre)
        return s.mask

    lazy_image = da.from_array(image, chunks=(16, 512, 512))
    t = time.perf_counter()
    in_memory = click(image)
    t_mem = time.perf_counter() - t
    t = time.perf_counter()
    lazy = click(lazy_image)
    t_lazy = time.perf_counter() - t
    same = np.array_equal(in_memory, lazy)
    print(
        f"weight-free set_image + one click: in memory {t_mem:.2f} s, dask {t_lazy:.2f} s "
        f"(ratio {t_lazy / t_mem:.2f}); masks identical: {same}"
    )
    a.detach()
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
