"""Seconds per interaction of the weight-free engine on a 512x512x133 CT-sized volume (budget: 1 s).

A synthetic int16 volume of that size with four organ-like objects of different contrast and
noise, and a second volume of that size with one liver-sized object (about 3 M voxels, low
contrast); for each object: a box on its largest slice, a positive click at its deepest voxel, a
negative click in the background next to it, undo and redo, then that click alone as the first
prompt of a new object (its region grows from the click, for the liver to the whole volume).

The liver runs first: with and without multi-round result fusion (default configuration), then
with the 2 M-voxel coarse copy used before the 1 M one, four rounds each (the ratio of the warm boxes'
median times is printed). Then the four objects, for three configurations in one run: the watershed over the
whole region, the watershed visiting only unmarked voxels (same masks), and the default
coarse-to-fine solve of large regions (``--quick``: the default only). Prints the wall time of
every interaction (engine only), the ROI solver runs and the Dice reached. (The simulated users of
``nninteractive-eval`` are slow on 35 M voxels themselves, so they are not used here.) Run on an
otherwise idle machine:

    python benchmarks/weight_free_speed.py [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
from scipy import ndimage

from napari_nninteractive.core.engines.seeded import SeededConfig
from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.core.session import Session
from napari_nninteractive.eval import simulate as sim
from napari_nninteractive.eval.runner import dice
from napari_nninteractive.testing import synthetic_volume

#: Interactions per object and round in :func:`run` (box, point+, point-, undo, redo, click alone).
PER_OBJECT = 6


def run(image, labels, cfg, fusion=False, rounds=1):
    """Every object's interactions in one session; ``rounds`` > 1 repeats them as new objects (a warm engine)."""
    session = Session(SeededWatershedEngine(cfg), fusion=fusion)
    session.set_image(image)
    times, masks = [], []
    for round_, value in itertools.product(range(rounds), [int(v) for v in np.unique(labels) if v]):
        ref = labels == value
        box = sim.box_prompt(ref)
        click = sim.point_prompt(ref)
        ring = ndimage.binary_dilation(ref, iterations=3) & ~ndimage.binary_dilation(ref, iterations=2)
        neg = tuple(int(v) for v in np.argwhere(ring)[0])
        session.next_object()
        for name, call in (
            ("box", lambda box=box: session.add_prompt(box)),
            ("point+", lambda click=click: session.add_prompt(click)),
            ("point-", lambda neg=neg: session.add_point(neg, positive=False)),
            ("undo", session.undo),
            ("redo", session.redo),
            ("click", lambda click=click: (session.next_object(), session.add_prompt(click))),  # a new object
        ):
            t = time.perf_counter()
            call()
            dt = time.perf_counter() - t
            times.append(dt)
            masks.append(session.mask.copy())
            print(
                f"  object {value}{' again' if round_ else ''} {name:<7} {dt:5.2f} s, "
                f"{session.engine.forward_passes} solver run(s), "
                f"Dice {dice(session.mask, ref):.3f}",
                flush=True,
            )
    return np.array(times), masks


def liver_volume(shape, seed=1):
    """A volume of the same size with one ~3 M-voxel ellipsoid 40 above the background (5 noise sigmas)."""
    rng = np.random.default_rng(seed)
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    centre, radii = (66, 256, 256), (45, 110, 145)
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)) <= 1
    image = np.where(inside, 60.0, 20.0).astype(np.float32) + rng.normal(0, 8, shape).astype(np.float32)
    return (image * 10 - 1000).astype(np.int16), inside.astype(np.uint8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick", action="store_true", help="the four objects in the default configuration only (fusion on)"
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    image, labels = synthetic_volume((133, 512, 512), seed=1)
    image = (image * 10 - 1000).astype(np.int16)  # HU-like range
    liver, liver_labels = liver_volume(image.shape)
    print(
        f"volume {image.shape} {image.dtype} made in {time.perf_counter() - t0:.1f} s; "
        f"object sizes {[int((labels == v).sum()) for v in range(1, 5)]} voxels; liver {int(liver_labels.sum())}"
    )
    liver_times = {}
    for label, cfg, fusion in (
        ("default configuration, fusion off", SeededConfig(), False),
        ("default configuration, fusion on", SeededConfig(), True),
        ("coarse copy of 2 M voxels (before 1 M), fusion off", SeededConfig(coarse_voxels=2_000_000), False),
    ):
        print(f"-- liver, {label}")
        t, _ = run(liver, liver_labels, cfg, fusion, rounds=4)
        liver_times[label] = t
        print(
            f"  median {np.median(t):.2f} s, max {t.max():.2f} s, max on a warm engine {t[PER_OBJECT:].max():.2f} s;"
            " budget 1 s per interaction"
        )
    now, _, before = liver_times.values()
    # the warm boxes (the first interaction of rounds 2-4): the first configuration's first round also pays
    # for the process's fresh memory, which the later ones find recycled
    warm_now = float(np.median(now[PER_OBJECT::PER_OBJECT]))
    warm_before = float(np.median(before[PER_OBJECT::PER_OBJECT]))
    print(
        f"  the liver's box on a warm engine with a 2 M- instead of a 1 M-voxel coarse copy: "
        f"{warm_before / warm_now:.2f}x the time (medians of three: {warm_before:.2f} s against {warm_now:.2f} s)"
    )
    if args.quick:
        print("-- four objects, default configuration, fusion on")
        t, _ = run(image, labels, SeededConfig(), True)
        print(f"  median {np.median(t):.2f} s, max {t.max():.2f} s; budget 1 s per interaction")
        return 0
    configs = {
        "full resolution, watershed over the whole region": SeededConfig(crop_watershed=False, full_res_voxels=10**12),
        "full resolution, watershed visits unmarked voxels only": SeededConfig(full_res_voxels=10**12),
        "coarse-to-fine above 2 M voxels (default)": SeededConfig(),
    }
    times, masks = {}, {}
    for label, cfg in configs.items():
        print(f"-- {label}")
        times[label], masks[label] = run(image, labels, cfg)
    names = list(configs)
    print("\nper interaction (s): median / max, and agreement with the first configuration")
    for name in names:
        t = times[name]
        same = all(np.array_equal(x, y) for x, y in zip(masks[names[0]], masks[name]))
        agree = min(dice(x, y) for x, y in zip(masks[names[0]], masks[name]))
        print(f"  {name:<56} {np.median(t):5.2f} / {t.max():5.2f}   identical masks: {same}, min Dice {agree:.4f}")
    for a, b in itertools.pairwise(names):
        print(
            f"  {b}: median {np.median(times[a]) / np.median(times[b]):.1f}x, "
            f"max {times[a].max() / times[b].max():.1f}x faster than the line above"
        )
    print(
        f"  overall: median {np.median(times[names[0]]) / np.median(times[names[-1]]):.1f}x, "
        f"max {times[names[0]].max() / times[names[-1]].max():.1f}x; budget 1 s per interaction"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
