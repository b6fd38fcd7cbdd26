"""Weight-free engine vs. a plain scikit-image random-walker baseline, with simulated users.

Runs ``evaluation.md``'s protocol (single-type agents point / box / scribble / lasso, 5
corrections, seed 0) on the real volumes in ``../shared/data`` and prints Dice@0..5 and AUC per
object and engine, the mean AUC per case and overall, and seconds per interaction. MNI is
evaluated at half resolution (both engines on the same grid) so the random walker finishes.

    python benchmarks/weight_free_eval.py [--data ../shared/data] [--cases tptbox-ct,stardist] [--agents point,box] [--engines weight-free]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from napari_nninteractive.core.engines.seeded import RandomWalkerEngine, SeededWatershedEngine
from napari_nninteractive.core.session import Session
from napari_nninteractive.eval.runner import evaluate
from napari_nninteractive.io.volumes import read_volume


def _arr(path: Path) -> np.ndarray:
    return np.asarray(read_volume(path).array)


def load_cases(data: Path) -> dict[str, tuple[np.ndarray, np.ndarray, list[int]]]:
    t = data / "tptbox"
    mri_vert = _arr(t / "sub-mri_seg-vert_label-6_msk.nii.gz")
    mri_sub = _arr(t / "sub-mri_seg-subreg_label-6_msk.nii.gz")
    mri_lab = np.where(np.isin(mri_vert, [5, 6, 7]), mri_vert, 0).astype(np.int32)
    mri_lab[(mri_sub == 60) & (mri_lab == 0)] = 60
    nuclei = _arr(data / "stardist" / "mask3d.tif")
    t1 = _arr(data / "mni152" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")[::2, ::2, ::2]
    wm = _arr(data / "mni152" / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz")[::2, ::2, ::2] > 128
    gm = _arr(data / "mni152" / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz")[::2, ::2, ::2] > 128
    brain = np.zeros(t1.shape, np.int32)
    brain[wm] = 1
    brain[gm & ~wm] = 2
    return {
        "tptbox-ct": (
            _arr(t / "sub-ct_label-22_ct.nii.gz"),
            _arr(t / "sub-ct_seg-vert_label-22_msk.nii.gz"),
            [21, 22, 23],
        ),
        "tptbox-mri": (_arr(t / "sub-mri_label-6_T2w.nii.gz"), mri_lab, [5, 6, 7, 60]),
        "slicerio": (
            _arr(data / "slicerio" / "CTChest4.nrrd"),
            _arr(data / "slicerio" / "Segmentation.seg.nrrd"),
            [3, 4, 5, 6],
        ),
        "stardist": (_arr(data / "stardist" / "img3d.tif"), nuclei, [int(v) for v in np.unique(nuclei)[1:9]]),
        "mni-half": (t1, brain, [1, 2]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--cases", default="tptbox-ct,tptbox-mri,slicerio,stardist,mni-half")
    ap.add_argument("--agents", default="point,box,scribble,lasso")
    ap.add_argument("--interactions", type=int, default=5)
    ap.add_argument("--engines", default="weight-free,random-walker")
    args = ap.parse_args()
    cases = load_cases(args.data)
    agents = args.agents.split(",")
    totals: dict[str, list[float]] = {}
    print(f"agents {agents}, {args.interactions} corrections, seed 0")
    for name in args.cases.split(","):
        image, labels, values = cases[name]
        print(f"\n== {name}: image {image.shape} {image.dtype}, labels {values}")
        chosen = {"weight-free": SeededWatershedEngine, "random-walker": RandomWalkerEngine}
        for engine_cls in (chosen[e] for e in args.engines.split(",")):
            session = Session(engine_cls())
            session.set_image(image)
            t0 = time.perf_counter()
            runs = evaluate(session, labels, agents, args.interactions, 0, values, name)
            secs = (time.perf_counter() - t0) / max(1, sum(len(r.steps) for r in runs))
            for r in runs:
                print(
                    f"  {engine_cls.name:<28} {r.agent:<9} {r.label:>4}  AUC {r.auc:.3f}  Dice "
                    + " ".join(f"{d:.2f}" for d in r.dices)
                )
            mean = float(np.mean([r.auc for r in runs]))
            totals.setdefault(engine_cls.name, []).append(mean)
            print(f"  {engine_cls.name:<28} mean AUC {mean:.3f}  ({secs:.2f} s per interaction)", flush=True)
    print("\n== mean AUC over cases:", ", ".join(f"{k}: {np.mean(v):.3f}" for k, v in totals.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
