"""The weight-free engine's first prompts on a liver with and without the float32 copy of their region.

A coarse-to-fine solve of a one-channel in-memory image reads the region through a view of the
source (``SeededWatershedEngine._source_view``) instead of copying it to float32 first; the masks
are the same. On the 512x512x133 liver volume of ``weight_free_speed.py`` this times, in one run,
a click alone (its region grows to the whole 35 M-voxel volume) and a box, each on a fresh engine
and then again on the same (warm) engine, with the view and with the copy (as before), alternating
which goes first, and prints the medians, their ratio and whether every mask was identical:

    python benchmarks/region_copy.py [--repeats 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from weight_free_speed import liver_volume

from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.core.session import Session
from napari_nninteractive.eval import simulate as sim


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=4)
    args = ap.parse_args()
    image, labels = liver_volume((133, 512, 512))
    ref = labels == 1
    prompts = {"click alone": sim.point_prompt(ref), "box": sim.box_prompt(ref)}
    view = SeededWatershedEngine._source_view
    modes = {"view": view, "copy (before)": lambda self, roi: None}
    times: dict[tuple[str, str, str], list[float]] = {}
    masks: dict[tuple[str, str], list[np.ndarray]] = {}
    try:
        for rep in range(args.repeats):
            order = list(modes) if rep % 2 == 0 else list(modes)[::-1]
            for mode in order:
                SeededWatershedEngine._source_view = modes[mode]  # type: ignore[method-assign]
                for name, prompt in prompts.items():
                    session = Session(SeededWatershedEngine())
                    session.set_image(image)
                    for state in ("fresh", "warm"):
                        session.next_object()
                        t = time.perf_counter()
                        session.add_prompt(prompt)
                        times.setdefault((mode, name, state), []).append(time.perf_counter() - t)
                    masks.setdefault((mode, name), []).append(session.mask.astype(bool))
                    print(
                        f"  {mode:<14} {name:<12} fresh {times[mode, name, 'fresh'][-1]:.2f} s, "
                        f"warm {times[mode, name, 'warm'][-1]:.2f} s",
                        flush=True,
                    )
    finally:
        SeededWatershedEngine._source_view = view  # type: ignore[method-assign]
    print("\nmedians (s) and the copy's time over the view's:")
    for name in prompts:
        for state in ("fresh", "warm"):
            a, b = (float(np.median(times[m, name, state])) for m in modes)
            print(f"  {name:<12} {state:<5}  view {a:.2f}  copy {b:.2f}  ratio {b / a:.2f}x")
    same = all(np.array_equal(x, y) for name in prompts for x, y in zip(*(masks[m, name] for m in modes)))
    print(f"identical masks: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
