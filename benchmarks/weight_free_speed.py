"""Seconds per interaction of the weight-free engine on a 512x512x133 CT-sized volume (budget: 1 s).

A synthetic int16 volume of that size with four organ-like objects of different contrast and
noise; for each object: a box on its largest slice, a positive click at its deepest voxel, a
negative click in the background next to it, then undo and redo. Prints the wall time of every
interaction (engine only), the ROI solver runs and the Dice reached. (The simulated users of
``nninteractive-eval`` are slow on 35 M voxels themselves, so they are not used here.) Run on an
otherwise idle machine:

    python benchmarks/weight_free_speed.py
"""

from __future__ import annotations

import time

import numpy as np

from napari_nninteractive.core.engines.seeded import SeededConfig, SeededWatershedEngine
from napari_nninteractive.core.session import Session
from scipy import ndimage

from napari_nninteractive.eval import simulate as sim
from napari_nninteractive.eval.runner import dice
from napari_nninteractive.testing import synthetic_volume


def run(image, labels, cfg):
    session = Session(SeededWatershedEngine(cfg))
    session.set_image(image)
    times, masks = [], []
    for value in range(1, 5):
        ref = labels == value
        box = sim.box_prompt(ref)
        click = sim.point_prompt(ref)
        ring = ndimage.binary_dilation(ref, iterations=3) & ~ndimage.binary_dilation(ref, iterations=2)
        neg = tuple(int(v) for v in np.argwhere(ring)[0])
        session.new_object()
        for name, call in (("box", lambda: session.add_prompt(box)), ("point+", lambda: session.add_prompt(click)),
                           ("point-", lambda: session.add_point(neg, positive=False)),
                           ("undo", session.undo), ("redo", session.redo)):
            t = time.perf_counter()
            call()
            dt = time.perf_counter() - t
            times.append(dt)
            masks.append(session.mask.copy())
            print(f"  object {value} {name:<7} {dt:5.2f} s, {session.engine.forward_passes} solver run(s), "
                  f"Dice {dice(session.mask, ref):.3f}", flush=True)
    return np.array(times), masks


def main() -> int:
    t0 = time.perf_counter()
    image, labels = synthetic_volume((133, 512, 512), seed=1)
    image = (image * 10 - 1000).astype(np.int16)  # HU-like range
    print(f"volume {image.shape} {image.dtype} made in {time.perf_counter() - t0:.1f} s; "
          f"object sizes {[int((labels == v).sum()) for v in range(1, 5)]} voxels")
    summary = {}
    for label, cfg in (("watershed on the whole region (before)", SeededConfig(crop_watershed=False)),
                       ("watershed on the unmarked box (after)", SeededConfig())):
        print(f"-- {label}")
        summary[label], masks = run(image, labels, cfg)
        summary[label + " masks"] = masks
    (b_name, a_name) = [k for k in summary if not k.endswith("masks")]
    same = all(np.array_equal(x, y) for x, y in zip(summary[b_name + " masks"], summary[a_name + " masks"]))
    tb, ta = summary[b_name], summary[a_name]
    print(f"median {np.median(tb):.2f} -> {np.median(ta):.2f} s ({np.median(tb) / np.median(ta):.1f}x), "
          f"max {tb.max():.2f} -> {ta.max():.2f} s ({tb.max() / ta.max():.1f}x); identical masks: {same}; budget 1 s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
