"""How long Cancel takes while a forward pass runs: with the checks inside the pass, and without.

A session predicts a point on a worker thread; Cancel is pressed ``--after`` seconds into the
forward pass. Printed: seconds from Cancel to the prediction's end, with the per-convolution
checks (``network.cancel_points``, the default) and without them (the pass runs to its end, as
before), paired in one run, and their ratio. Random-weight networks in the official folder format,
on the CPU: the tiny test network and the full nnInteractive v1.0 architecture.

    python benchmarks/cancel_latency.py [--patch 128] [--after 0.5] [--repeats 3] [--skip-full]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--after", type=float, default=0.5, help="seconds into the pass when Cancel is pressed")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-full", action="store_true", help="only the tiny network")
    args = ap.parse_args()

    import torch

    from napari_nninteractive.core.engines import network
    from napari_nninteractive.core.engines.base import PredictionCancelled
    from napari_nninteractive.core.session import Session
    from napari_nninteractive.testing import synthetic_volume, tiny_architecture, v1_architecture, write_model_folder

    image, labels = synthetic_volume((args.patch,) * 3)
    centre = [int(v) for v in np.argwhere(labels == 1).mean(axis=0).round()]
    checked = network.cancel_points
    archs = [("tiny", tiny_architecture())] + ([] if args.skip_full else [("v1.0", v1_architecture())])
    print(f"CPU, {torch.get_num_threads()} threads, patch {args.patch}^3, Cancel {args.after} s into the pass")
    for name, arch in archs:
        folder = write_model_folder(Path(tempfile.mkdtemp()) / name, arch, (args.patch,) * 3)
        engine = network.NetworkEngine.from_folder(folder, device="cpu", autozoom=False)
        session = Session(engine)
        session.set_image(image)
        results: dict[str, list[float]] = {"checks inside the pass": [], "checks between passes only": []}
        for _ in range(args.repeats):
            for variant, times in results.items():
                network.cancel_points = checked if variant.startswith("checks inside") else _unchecked
                cancel, started, ended = threading.Event(), threading.Event(), []

                def run(session=session, started=started, cancel=cancel, ended=ended):
                    session.set_run_control(lambda e: started.set(), cancel.is_set)
                    try:
                        session.add_point(centre)
                    except PredictionCancelled:
                        ended.append(time.perf_counter())

                worker = threading.Thread(target=run)
                worker.start()
                started.wait()
                time.sleep(args.after)
                pressed = time.perf_counter()
                cancel.set()
                worker.join()
                if not ended:
                    raise SystemExit("the prediction finished before Cancel: lower --after")
                times.append(ended[0] - pressed)
                session.set_run_control(None, None)
                session.reset_object()
        network.cancel_points = checked
        inside, between = (np.median(v) for v in results.values())
        for variant, times in results.items():
            print(
                f"  {name:<5} {variant:<28} median {np.median(times):6.2f} s  ({', '.join(f'{t:.2f}' for t in times)})"
            )
        print(f"  {name:<5} cancel latency ratio inside / between: {inside / between:.3f}")
    return 0


@contextlib.contextmanager
def _unchecked(net, control):
    yield


if __name__ == "__main__":
    raise SystemExit(main())
