"""What the image gradient allows: the weight-free engine's watershed given markers from the truth.

For each object of the first five cases of ``weight_free_eval.py``, object markers are the reference
mask eroded by ``e`` voxels and background markers everything beyond ``e`` voxels of it; the
engine's watershed on the gradient (the image smoothed as the engine does) decides the band of
``2e`` voxels between. Next to it: the best single intensity threshold in that band, chosen per
object with the truth. Both are upper bounds of a kind: no user's prompts give markers that close.
Prints the mean Dice per case and over the cases, for ``e`` = 1, 2, 3.

    python benchmarks/gradient_oracle.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage
from weight_free_eval import load_cases

from napari_nninteractive.core.engines import filters
from napari_nninteractive.core.engines import watershed as ws
from napari_nninteractive.core.engines.seeded import SeededConfig
from napari_nninteractive.eval.runner import dice

CASES = ("tptbox-ct", "tptbox-mri", "slicerio", "stardist", "mni-half")
GAPS = (1, 2, 3)


def watershed_dice(img: np.ndarray, ref: np.ndarray, gap: int) -> float:
    fg = ndimage.binary_erosion(ref, iterations=gap)
    if not fg.any():  # a thin object: its deepest voxels
        depth = ndimage.distance_transform_edt(ref)
        fg = depth >= depth.max()
    markers = np.zeros(ref.shape, np.int32)
    markers[~ndimage.binary_dilation(ref, iterations=gap)] = 1
    markers[fg] = 2
    ws.flood_unmarked(img, markers)
    return dice(markers == 2, ref)


def threshold_dice(img: np.ndarray, ref: np.ndarray, gap: int) -> float:
    inner = ndimage.binary_erosion(ref, iterations=gap)
    band = ndimage.binary_dilation(ref, iterations=gap) & ~inner
    values = img[band]
    best = 0.0
    for t in np.unique(np.percentile(values, np.linspace(0, 100, 201))):
        for side in (values > t, values <= t):
            guess = inner.copy()
            guess[band] = side
            best = max(best, dice(guess, ref))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = ap.parse_args()
    cases = load_cases(args.data)
    means: dict[tuple[str, int], list[float]] = {}
    print("mean Dice per case: watershed with markers e voxels from the truth | best threshold in the band")
    for name in CASES:
        image, labels, values = cases[name]
        img = filters.gaussian_filter(np.asarray(image, np.float32), SeededConfig().smoothing)
        row = []
        for gap in GAPS:
            refs = [labels == v for v in values]
            w = float(np.mean([watershed_dice(img, r, gap) for r in refs]))
            t = float(np.mean([threshold_dice(img, r, gap) for r in refs]))
            means.setdefault(("watershed", gap), []).append(w)
            means.setdefault(("threshold", gap), []).append(t)
            row.append(f"e={gap}: {w:.3f} | {t:.3f}")
        print(f"  {name:<11} " + "   ".join(row), flush=True)
    print(
        "  mean        "
        + "   ".join(
            f"e={g}: {np.mean(means[('watershed', g)]):.3f} | {np.mean(means[('threshold', g)]):.3f}" for g in GAPS
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
