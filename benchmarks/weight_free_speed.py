"""Seconds per interaction of the weight-free engine on a 512x512x133 CT-sized volume (budget: 1 s).

A synthetic int16 volume of that size with four organ-like objects of different contrast and
noise; for each object a simulated user (box, point, scribble and lasso agents) makes the
initial prompt and 5 corrections. Prints the median and maximum wall time per interaction, the
ROI solver runs, and the Dice reached. Run on an otherwise idle machine:

    python benchmarks/weight_free_speed.py
"""

from __future__ import annotations

import time

import numpy as np

from napari_nninteractive.core.engines.seeded import SeededWatershedEngine
from napari_nninteractive.core.session import Session
from napari_nninteractive.eval.runner import evaluate
from napari_nninteractive.testing import synthetic_volume


def main() -> int:
    t0 = time.perf_counter()
    image, labels = synthetic_volume((133, 512, 512), seed=1)
    image = (image * 10 - 1000).astype(np.int16)  # HU-like range
    print(f"volume {image.shape} {image.dtype} made in {time.perf_counter() - t0:.1f} s; "
          f"object sizes {[int((labels == v).sum()) for v in range(1, 5)]} voxels")
    session = Session(SeededWatershedEngine())
    t0 = time.perf_counter()
    session.set_image(image)
    print(f"set_image: {time.perf_counter() - t0:.2f} s")
    runs = evaluate(session, labels, ["box", "point", "scribble", "lasso"], 5, 0)
    secs = np.array([s.seconds for r in runs for s in r.steps if s.kind])
    passes = np.array([s.forward_passes for r in runs for s in r.steps if s.kind])
    print(f"{len(secs)} interactions: median {np.median(secs):.2f} s, 90th percentile {np.percentile(secs, 90):.2f} s, "
          f"max {secs.max():.2f} s per interaction; solver runs per interaction: median {np.median(passes):.0f}, "
          f"max {passes.max()}")
    for r in runs:
        print(f"  {r.agent:<9} object {r.label}: Dice@0 {r.dices[0]:.3f} Dice@5 {r.dices[-1]:.3f} AUC {r.auc:.3f}, "
              f"max {max(s.seconds for s in r.steps):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
