"""The same clicks on the main thread and on a worker thread, without Qt, in one run.

The widget runs every prediction on a worker thread (the GUI must stay responsive); the engine-alone
figures of ``ui_stall.py`` run on the main thread. This measures what the thread alone costs: a
random-weight network with 128^3 patches (as ``ui_stall.py``), AutoZoom off, on a 160^3 synthetic
volume, the same clicks in a fresh session on each thread; the first click of each run is left out
of the median. Try it with allocator settings in the environment, e.g. ``MALLOC_ARENA_MAX=1``.

    python benchmarks/worker_thread.py [--clicks 6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from napari_nninteractive.core.engines.network import NetworkEngine
from napari_nninteractive.core.session import Session
from napari_nninteractive.testing import synthetic_volume, tiny_architecture, write_model_folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clicks", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2, help="main / worker alternations")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_model_folder(Path(tmp) / "m", tiny_architecture(), (128,) * 3)
        image, labels = synthetic_volume((160, 160, 160))
        centre = [int(v) for v in np.argwhere(labels == 1).mean(axis=0).round()]
        clicks = [[c + (r % 3) - 1 for c in centre] for r in range(a.clicks)]

        def clicks_timed() -> list[float]:
            session = Session(NetworkEngine.from_folder(folder, device="cpu", autozoom=False))
            session.set_image(image)
            times = []
            for click in clicks:
                t = time.perf_counter()
                session.add_point(click)
                times.append(time.perf_counter() - t)
            return times

        medians: dict[str, list[float]] = {"main thread": [], "worker thread": []}
        with ThreadPoolExecutor(1) as worker:
            for _ in range(a.rounds):
                medians["main thread"].append(float(np.median(clicks_timed()[1:])))
                medians["worker thread"].append(float(np.median(worker.submit(clicks_timed).result()[1:])))
    for name, values in medians.items():
        print(f"{name:<14} median seconds per click, per round: " + " ".join(f"{v:.3f}" for v in values))
    ratio = np.median(medians["worker thread"]) / np.median(medians["main thread"])
    print(f"worker / main: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
