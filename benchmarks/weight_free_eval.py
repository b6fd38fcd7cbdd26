"""Weight-free engine vs. a plain scikit-image random-walker baseline, with simulated users.

Runs ``evaluation.md``'s protocol (single-type agents point / box / scribble / lasso, 5
corrections, seed 0) on the real volumes in ``../shared/data`` and prints Dice@0..5 and AUC per
object and engine, the mean AUC per case and overall, and seconds per interaction. MNI is
evaluated at half resolution (both engines on the same grid) so the random walker finishes;
``lungs-x16`` is the chest CT resampled 16-fold (large organs, ~0.5 M voxels each). Each engine
runs alone and with multi-round result fusion (``:mrf``); "drops" is the share of correction
rounds whose Dice fell by more than 0.05. The random walker is skipped on volumes over
``RANDOM_WALKER_MAX_VOXELS`` (on lungs-x16 it ran over 10 min here).

    python benchmarks/weight_free_eval.py [--data ../shared/data] [--cases tptbox-ct,stardist] [--agents point,box] [--engines weight-free]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from napari_nninteractive.core.engines.random_walker import RandomWalkerEngine
from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.core.prompts import PromptKind
from napari_nninteractive.core.session import Session
from napari_nninteractive.eval import simulate as sim
from napari_nninteractive.eval.runner import ObjectRun, dice, drop_share, evaluate
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
        "lungs-x16": large_lungs(data),
    }


def large_lungs(data: Path) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Large organs: the chest CT resampled 2 x 2 x 4 (linear; labels nearest) to 256x256x136, lungs ~0.5 M voxels each."""
    from scipy import ndimage

    ct = _arr(data / "slicerio" / "CTChest4.nrrd").astype(np.float32)
    seg = _arr(data / "slicerio" / "Segmentation.seg.nrrd")
    image = ndimage.zoom(ct, (2, 2, 4), order=1).astype(np.int16)
    labels = ndimage.zoom(np.where(np.isin(seg, [5, 6]), seg, 0).astype(np.uint8), (2, 2, 4), order=0)
    return image, labels, [5, 6]


#: The random walker is skipped on larger volumes (lungs-x16, 8.9 M voxels, ran over 10 min here).
RANDOM_WALKER_MAX_VOXELS = 4_000_000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--cases", default="tptbox-ct,tptbox-mri,slicerio,stardist,mni-half,lungs-x16")
    ap.add_argument("--agents", default="point,box,scribble,lasso")
    ap.add_argument("--interactions", type=int, default=5)
    ap.add_argument(
        "--engines",
        default="weight-free,weight-free:mrf,random-walker",
        help="ENGINE[:mrf|:mrf-prompt] list: the engine alone (the session's default), or with multi-round "
        "result fusion (mrf: every axis votes; mrf-prompt: the newest prompt's axis)",
    )
    ap.add_argument(
        "--box-point-cases",
        default="tptbox-ct,slicerio,lungs-x16",
        help="CT cases for the one-box-plus-one-point figure (a box on the largest slice, then one corrective click)",
    )
    args = ap.parse_args()
    cases = load_cases(args.data)
    agents = args.agents.split(",")
    variants = args.engines.split(",")
    totals: dict[str, list[float]] = {}
    all_runs: dict[str, list[ObjectRun]] = {}
    print(f"agents {agents}, {args.interactions} corrections, seed 0")
    for name in args.cases.split(","):
        image, labels, values = cases[name]
        print(f"\n== {name}: image {image.shape} {image.dtype}, labels {values}")
        for variant in variants:
            if variant.startswith("random-walker") and image.size > RANDOM_WALKER_MAX_VOXELS:
                print(f"  {variant:<22} skipped: {image.size / 1e6:.1f} M voxels (over 10 min on 2 cores)")
                continue
            session = make_session(variant)
            session.set_image(image)
            t0 = time.perf_counter()
            runs = evaluate(session, labels, agents, args.interactions, 0, values, name)
            secs = (time.perf_counter() - t0) / max(1, sum(len(r.steps) for r in runs))
            slowest = max(s.seconds for r in runs for s in r.steps)
            for r in runs:
                print(
                    f"  {variant:<22} {r.agent:<9} {r.label:>4}  AUC {r.auc:.3f}  Dice "
                    + " ".join(f"{d:.2f}" for d in r.dices)
                )
            mean = float(np.mean([r.auc for r in runs]))
            totals.setdefault(variant, []).append(mean)
            all_runs.setdefault(variant, []).extend(runs)
            print(
                f"  {variant:<22} mean AUC {mean:.3f}  drops {drop_share(runs):.3f}  "
                f"({secs:.2f} s per interaction with the simulated user, slowest engine call {slowest:.2f} s)",
                flush=True,
            )
    print("\n== over cases (mean of the case means; drops over every round):")
    for variant in totals:
        print(f"  {variant:<22} AUC {np.mean(totals[variant]):.3f}  drops {drop_share(all_runs[variant]):.3f}")
    print("\n== one box plus one point (CT organs):")
    for variant in variants:
        names = [
            n
            for n in args.box_point_cases.split(",")
            if not variant.startswith("random-walker") or cases[n][0].size <= RANDOM_WALKER_MAX_VOXELS
        ]
        dices = [box_point(make_session(variant), *cases[name]) for name in names]
        flat = [d for case in dices for d in case]
        print(f"  {variant:<22} mean Dice {np.mean(flat):.3f}  ({', '.join(f'{d:.2f}' for d in flat)})")
    return 0


def make_session(variant: str) -> Session:
    """``ENGINE``, ``ENGINE:mrf`` or ``ENGINE:mrf-prompt`` as a session."""
    engine_name, _, mode = variant.partition(":")
    chosen = {"weight-free": SeededWatershedEngine, "random-walker": RandomWalkerEngine}
    if engine_name not in chosen or mode not in ("", "mrf", "mrf-prompt"):
        raise SystemExit(f"unknown variant {variant!r}: use ENGINE, ENGINE:mrf or ENGINE:mrf-prompt")
    return Session(chosen[engine_name](), fusion=bool(mode), fusion_axes="prompt" if mode == "mrf-prompt" else "all")


def box_point(session: Session, image: np.ndarray, labels: np.ndarray, values: list[int]) -> list[float]:
    """Dice per object after a box on its largest slice and one corrective click (seeded per object)."""
    session.set_image(image)
    out = []
    for value in values:
        ref = labels == value
        session.next_object()
        session.add_prompt(sim.box_prompt(ref))
        click = sim.correction(PromptKind.POINT, ref, session.mask, np.random.default_rng(value))
        if click is not None:
            session.add_prompt(click)
        out.append(dice(session.mask, ref))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
