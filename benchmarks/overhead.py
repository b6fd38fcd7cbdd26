"""The GPU user's latency floor: everything around the forward passes, with a network that costs nothing.

The network is replaced by a deterministic zero-cost stand-in that outlines bright objects (foreground
where the normalised image exceeds 1, as a trained model would), so AutoZoom and refinement take the
same path every run and the measured time is all overhead: cropping, normalising, composing prompt
channels, resampling at zoom 1.5-4, border tests, upsampling, opening, refinement planning, pasting.
On a GPU the passes become cheap and this is what is left.

Volume: 512 x 512 x 133 (z = 133) with a small object (fits one 192^3 patch at zoom 1) and a large one
(~110 x 340 x 340 voxels: AutoZoom zooms out to about 4 and refinement runs many patches), v1.0's patch
size 192^3. Interactions: a click on the small object, a box on the large one, a click and a negative
click on the large one, and two clicks near its edge (the window is off-centre: AutoZoom goes further
out, to 4 for the last); the box and the clicks on the large object each start a new object first,
timed apart (the last row: the slowest of those, which clears the large object's voxels and records
them for undo). Each runs "before" (the plain path: full S^3 input crops, one refinement patch
per pass) and "after" (the defaults: inputs built from the data-holding part, independent refinement
patches batched), in one run, and the masks are compared for equality. "Overlap s" is the part of
"after" spent building the next refinement input while a pass is in flight: on a device that queues
passes (CUDA) it runs alongside the pass and leaves the latency once the pass takes longer.

    python benchmarks/overhead.py [--repeats 2]
    PYTHONPATH=old_checkout/src python benchmarks/overhead.py --defaults-only masks.npy   # one version ...
    python benchmarks/overhead.py --defaults-only masks.npy                              # ... against another

Goals (issue 18): <= 0.2 s per interaction at zoom 1 and <= 1 s at zoom 4 with refinement, on 2 cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from napari_nninteractive.core.engines.base import ProgressEvent
from napari_nninteractive.core.engines.network import NetworkEngine
from napari_nninteractive.core.model import LoadedModel
from napari_nninteractive.core.session import Session

SHAPE = (133, 512, 512)
PATCH = (192, 192, 192)


class StandIn:
    """Zero-cost deterministic network: foreground where the normalised image exceeds 1; counts passes.

    It reads only the image channel. A real network (or the copy to a GPU) also reads the input's other
    channels, including the untouched all-zero pages of prompt channels no prompt reaches: a few
    milliseconds per pass that these figures do not include.
    """

    def __init__(self):
        self.passes = 0
        self.samples = 0
        self.seconds = 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        t = time.perf_counter()
        self.passes += 1
        self.samples += x.shape[0]
        fg = (x[:, 0] > 1.0).float()
        out = torch.stack([1 - fg, fg], dim=1)
        self.seconds += time.perf_counter() - t
        return out


def volume() -> tuple[np.ndarray, dict[str, tuple[int, ...]]]:
    """A CT-like float32 volume with a small and a large bright object, and where they are."""
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    image = rng.normal(0, 20, SHAPE).astype(np.float32)
    large = ((z - 66) / 55.0) ** 2 + ((y - 250) / 170.0) ** 2 + ((x - 250) / 170.0) ** 2 <= 1
    small = ((z - 60) / 12.0) ** 2 + ((y - 480) / 16.0) ** 2 + ((x - 480) / 16.0) ** 2 <= 1
    image[large] += 200
    image[small] += 200
    return image, {"small": (60, 480, 480), "large": (66, 250, 250)}


def interactions(session: Session, where: dict[str, tuple[int, ...]]):
    """``(name, setup, call)``: ``call`` is timed; ``setup`` (starting a new object, which clears the previous
    one's voxels) is a separate user action, timed as its own row."""
    zs, ys, xs = where["small"]
    zl, yl, xl = where["large"]
    new = session.reset_object
    return [
        ("click, small object", None, lambda: session.add_point([zs, ys, xs])),
        ("box, large object", new, lambda: session.add_bbox([[zl, zl + 1], [78, 422], [78, 422]])),
        ("click, large object", new, lambda: session.add_point([zl, yl, xl])),
        ("negative click, large", None, lambda: session.add_point([zl, yl + 120, xl], positive=False)),
        ("click near its edge", new, lambda: session.add_point([zl, yl - 140, xl - 140])),
        ("click at its far edge", new, lambda: session.add_point([zl, yl - 165, xl])),
    ]


def run(plain: bool, image: np.ndarray, where) -> list[dict]:
    net = StandIn()
    engine = NetworkEngine(LoadedModel(net, PATCH), device="cpu")
    if plain:
        engine.spec_as_written()
    zooms: list[float] = []
    # per refinement input built ahead (the first of an interaction has nothing to hide behind)
    overlap: list[float] = []
    real_windows = engine.window_inputs

    def timed_windows(*args, **options):
        t = time.perf_counter()
        x = real_windows(*args, **options)
        if options.get("prev_later"):
            overlap.append(time.perf_counter() - t)
        return x

    engine.window_inputs = timed_windows  # type: ignore[method-assign]

    def progress(ev: ProgressEvent) -> None:
        if ev.zoom is not None:
            zooms.append(ev.zoom)

    session = Session(engine, progress=progress)
    session.set_image(image)
    rows = []
    resets = []
    for name, setup, call in interactions(session, where):
        if setup is not None:
            t = time.perf_counter()
            setup()
            resets.append(time.perf_counter() - t)
        passes, samples, spent = net.passes, net.samples, net.seconds
        zooms.clear()
        overlap.clear()
        t = time.perf_counter()
        call()
        wall = time.perf_counter() - t
        rows.append(
            {
                "name": name,
                "overhead": wall - (net.seconds - spent),
                "passes": net.passes - passes,
                "patches": net.samples - samples,
                "zoom": max(zooms, default=1.0),
                "overlap": sum(overlap[1:]),
                "mask": session.read_mask().copy(),
            }
        )
    rows.append(
        {
            "name": "new object (clears)",
            "overhead": max(resets),
            "passes": 0,
            "patches": 0,
            "zoom": 1.0,
            "overlap": 0.0,
            "mask": session.read_mask().copy(),
        }
    )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=2, help="runs of each path; the fastest counts")
    ap.add_argument(
        "--defaults-only",
        metavar="MASKS.npy",
        help="time only the defaults and save the masks here; run it with another checkout on PYTHONPATH "
        "(PYTHONPATH=old/src) and again with this one to compare two versions, masks included",
    )
    a = ap.parse_args()
    torch.set_num_threads(2)
    image, where = volume()

    def best_of(plain: bool) -> list[dict]:
        runs = [run(plain, image, where) for _ in range(a.repeats)]
        return [min((r[i] for r in runs), key=lambda row: row["overhead"]) for i in range(len(runs[0]))]

    if a.defaults_only:
        rows = best_of(False)
        masks = np.stack([row["mask"] for row in rows])
        other = Path(a.defaults_only)
        same = np.array_equal(np.load(other, allow_pickle=False), masks) if other.exists() else None
        print(f"{'interaction':<32}{'max zoom':>9}{'seconds':>9}")
        for row in rows:
            print(f"{row['name']:<32}{row['zoom']:>9.2f}{row['overhead']:>9.3f}")
        if same is None:
            np.save(other, masks)
            print(f"masks saved to {other}")
        else:
            print(f"masks {'identical to' if same else 'DIFFERENT from'} those in {other}")
        return
    results = {"before": best_of(True), "after": best_of(False)}
    print(
        f"{'interaction':<24}{'max zoom':>9}{'passes':>8}{'patches':>9}{'before s':>10}{'after s':>9}{'ratio':>7}"
        f"{'overlap s':>11}  same mask"
    )
    for b, f in zip(results["before"], results["after"]):
        same = np.array_equal(b["mask"], f["mask"])
        print(
            f"{f['name']:<24}{f['zoom']:>9.2f}{f['passes']:>5}/{b['passes']:<3}{f['patches']:>8}"
            f"{b['overhead']:>10.3f}{f['overhead']:>9.3f}{f['overhead'] / b['overhead']:>7.2f}{f['overlap']:>11.3f}  {same}"
        )
    print(
        "\nseconds exclude the stand-in's own time (microseconds); passes: after/before. A real pass of the v1.0"
        "\nnetwork adds its own time per pass (36-68 s on these 2 CPU cores; see benchmarks/forward_options.py)."
    )


if __name__ == "__main__":
    main()
