"""The whole process on the CPU: a small network, a 128^3 volume, five mixed prompts with AutoZoom.

Runs the same interactions twice in one process, each in a fresh session, and compares the masks after
every step:

- ``plain``: the spec's construction as written: full S^3 input crops, one refinement patch per pass,
  and PyTorch's own choice of convolution kernel (``slow_conv3d`` for a batch of one in most layers of
  a small network);
- ``default``: what users run: inputs built from the data-holding part, independent refinement
  patches batched, every convolution through oneDNN (core/onednn.py).

Prompts, on the synthetic volume's objects: a box, a positive point, a negative point and a scribble on
one object, then a lasso on a second one (a new object), so AutoZoom and refinement run. The time is that
of the interactions (loading the model and the image is not counted); one untimed interaction of each
path warms the process up first, so the path that runs first pays no start-up cost. The network is
a model folder given with ``--model`` (e.g. one trained with ``nninteractive-train --plans PLANS.json``)
or, by default, the tiny test architecture with random weights (64^3 patches; its masks are
meaningless but take the same path and cost).

    python benchmarks/whole_process.py [--model MODEL_DIR] [--repeats 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_nninteractive.core.engines.network import NetworkEngine
from napari_nninteractive.core.prompts import Box, Lasso, Point, Scribble
from napari_nninteractive.core.session import Session
from napari_nninteractive.samples.synthetic import synthetic_volume
from napari_nninteractive.testing import write_model_folder


def prompts(labels: np.ndarray) -> list[tuple[str, bool, object]]:
    """``(name, new_object_first, prompt)`` on the volume's first two objects."""
    a = np.argwhere(labels == 1)
    b = np.argwhere(labels == 2)
    ca, cb = [int(v) for v in a.mean(0).round()], [int(v) for v in b.mean(0).round()]
    lo, hi = a.min(0), a.max(0) + 1
    z = ca[0]
    box = Box(((z, z + 1), (int(lo[1]), int(hi[1])), (int(lo[2]), int(hi[2]))), True)
    outside = [ca[0], int(min(labels.shape[1] - 1, hi[1] + 3)), ca[2]]
    scribble = np.zeros(labels.shape, bool)
    scribble[z, ca[1] - 2 : ca[1] + 3, ca[2] - 6 : ca[2] + 7] = True
    lasso = np.zeros(labels.shape, bool)
    sl = labels[cb[0]] == 2
    lasso[cb[0]] = sl
    return [
        ("box, object 1", True, box),
        ("point+, object 1", False, Point(tuple(ca), True)),
        ("point-, outside it", False, Point(tuple(outside), False)),
        ("scribble+, object 1", False, Scribble(scribble, positive=True)),
        ("lasso+, object 2", True, Lasso(lasso, positive=True)),
    ]


def run(folder: Path, image: np.ndarray, steps, plain: bool) -> tuple[list[float], list[int], list[np.ndarray]]:
    engine = NetworkEngine.from_folder(folder, device="cpu", autozoom=True)
    if plain:
        engine.spec_as_written()
    session = Session(engine)
    session.set_image(image)
    times, passes, masks = [], [], []
    for _name, new, prompt in steps:
        if new:
            session.reset_object()
        t = time.perf_counter()
        change = session.add_prompt(prompt)
        times.append(time.perf_counter() - t)
        passes.append(change.forward_passes)
        masks.append(session.read_mask().copy())
    return times, passes, masks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="model folder (default: the tiny test architecture, random weights)")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each path; the fastest counts per step")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    image, labels = synthetic_volume((128, 128, 128))
    steps = prompts(labels)
    with tempfile.TemporaryDirectory() as tmp:
        folder = a.model or write_model_folder(Path(tmp) / "tiny")
        results = {}
        for plain in (True, False):  # warm-up: the first passes of a process set up oneDNN and allocate
            run(folder, image, steps[:1], plain)
        for plain in (True, False):
            runs = [run(folder, image, steps, plain) for _ in range(a.repeats)]
            times = [min(r[0][i] for r in runs) for i in range(len(steps))]
            results[plain] = (times, runs[0][1], runs[0][2])
    print(
        f"model: {a.model or 'tiny test architecture, random weights'}; {a.threads} threads, torch {torch.__version__}"
    )
    print(f"{'step':<22}{'passes':>8}{'plain s':>9}{'default s':>11}{'ratio':>7}  same mask")
    (pt, pp, pm), (dt, dp, dm) = results[True], results[False]
    for (name, _, _), t0, t1, p0, p1, m0, m1 in zip(steps, pt, dt, pp, dp, pm, dm):
        print(f"{name:<22}{p1:>4}/{p0:<3}{t0:>9.2f}{t1:>11.2f}{t1 / t0:>7.2f}  {np.array_equal(m0, m1)}")
    same = all(np.array_equal(x, y) for x, y in zip(pm, dm))
    print(
        f"{'whole process':<22}{sum(dp):>4}/{sum(pp):<3}{sum(pt):>9.2f}{sum(dt):>11.2f}{sum(dt) / sum(pt):>7.2f}  {same}"
    )
    print(
        "\npasses: default/plain (a batched pass counts each patch). ratio: default / plain, measured in this run;"
        "\nloading the model and the image is not included."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
