"""Per-interaction latency and peak GPU memory of the full network on a GPU, per way of running it, in one run.

Issue 18's GPU check. The v1.0 architecture (102 M parameters, random weights, official folder format)
runs every pass for real, but its output is replaced by a fixed rule (foreground where the normalised
image exceeds 1, as a trained model outlines a bright object), so AutoZoom and refinement take the same
path in every variant and every run. The volume is ``overhead.py``'s: 512 x 512 x 133 with a small and a
large object; the prompts: a point on the small one (zoom 1), a box, a lasso and a point on the large one
(AutoZoom to 2-4, many refinement patches), each on a new object. Variants:

* ``plain``: the spec as written (full input crops, one refinement patch per pass, one pass after the
  other, ordinary host memory, contiguous layout), float16 autocast on CUDA: the reference's way;
* ``defaults``: what users run (lean inputs, pinned memory and asynchronous copies, channels-last 3-D,
  the next refinement input built while a pass runs);
* ``compile``: the defaults plus ``torch.compile`` (its one-off warm-up is printed separately).

It prints each interaction's seconds, passes and peak device memory per variant, the ratios to
``plain`` and whether every variant gave the same masks. Without a CUDA device it says so and exits;
``--device cpu --architecture tiny --interactions 1`` runs the same code on the CPU in a minute (a
smoke test; the zoomed interactions take hundreds of 64^3 passes there).

    python benchmarks/gpu_latency.py [--device cuda] [--repeats 2] [--variants plain,defaults,compile]
        [--interactions 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from overhead import SHAPE, volume  # benchmarks/ is the script's folder

from napari_nninteractive.core.engines.network import NetworkEngine
from napari_nninteractive.core.model import load_model_folder
from napari_nninteractive.core.prompts import fill_polygon
from napari_nninteractive.core.session import Session
from napari_nninteractive.testing import tiny_architecture, v1_architecture, write_model_folder


class FixedOutput(torch.nn.Module):
    """The real network's pass, with its output replaced by a fixed rule (the pass's cost stays: a compiler
    cannot drop it, its result joins the output with weight 0)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        fg = (x[:, 0] > 1.0).to(logits.dtype)
        return torch.stack([1 - fg, fg], dim=1) + 0 * logits.mean()


def interactions(session: Session, where: dict[str, tuple[int, ...]]):
    zs, ys, xs = where["small"]
    zl, yl, xl = where["large"]
    ring = [[zl, yl + 150 * np.sin(t), xl + 150 * np.cos(t)] for t in np.linspace(0, 2 * np.pi, 24, endpoint=False)]
    lasso, lasso_box = fill_polygon(ring, SHAPE)
    return [
        ("point, small object", lambda: session.add_point([zs, ys, xs])),
        ("box, large object", lambda: session.add_bbox([[zl, zl + 1], [78, 422], [78, 422]])),
        ("lasso, large object", lambda: session.add_lasso(lasso, bbox=lasso_box)),
        ("point, large object", lambda: session.add_point([zl, yl, xl])),
    ]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(variant: str, folder: Path, device: str, image: np.ndarray, where, count: int) -> tuple[list[dict], float]:
    model = load_model_folder(folder)
    model.network = FixedOutput(model.network)
    engine = NetworkEngine(model, device=device)
    if variant == "plain":
        engine.spec_as_written()
    warm = 0.0
    if variant == "compile":
        t = time.perf_counter()
        engine.compile()
        warm = time.perf_counter() - t
    else:
        engine.warm_up()  # every variant starts warm (kernel selection, allocator): the latency of later clicks
    dev = engine.device
    session = Session(engine)
    session.set_image(image)
    rows = []
    for name, call in interactions(session, where)[:count]:
        session.reset_object()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        sync(dev)
        t = time.perf_counter()
        call()
        sync(dev)
        seconds = time.perf_counter() - t
        peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
        rows.append(
            {
                "name": name,
                "seconds": seconds,
                "passes": engine.forward_passes,
                "peak": peak,
                "mask": session.read_mask().copy(),
            }
        )
    return rows, warm


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:1, mps or cpu")
    ap.add_argument("--architecture", choices=("v1", "tiny"), default="v1", help="v1 (default; 192^3) or tiny (64^3)")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each variant; the fastest counts per interaction")
    ap.add_argument("--variants", default="plain,defaults,compile")
    ap.add_argument("--interactions", type=int, default=4, help="run only the first N of the four interactions")
    a = ap.parse_args()
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: nothing to measure (try --device cpu --architecture tiny for a smoke run)")
        return 0
    variants = a.variants.split(",")
    arch, patch = (v1_architecture(), 192) if a.architecture == "v1" else (tiny_architecture(), 64)
    image, where = volume()
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_model_folder(Path(tmp) / "m", arch, (patch,) * 3)
        results, warm = {}, {}
        for variant in variants:
            runs = [run(variant, folder, a.device, image, where, a.interactions) for _ in range(a.repeats)]
            warm[variant] = max(w for _, w in runs)
            results[variant] = [
                min((r[i] for r, _ in runs), key=lambda row: row["seconds"]) for i in range(len(runs[0][0]))
            ]
    name = torch.cuda.get_device_name() if a.device.startswith("cuda") else a.device
    print(f"{a.architecture} architecture, patch {patch}^3, on {name}; torch {torch.__version__}")
    head = f"{'interaction':<22}{'passes':>7}" + "".join(f"{v + ' s':>13}{'GiB':>7}" for v in variants)
    print(head + "".join(f"{v + '/plain':>16}" for v in variants if v != "plain" and "plain" in variants))
    for i, row in enumerate(results[variants[0]]):
        line = f"{row['name']:<22}{row['passes']:>7}"
        line += "".join(f"{results[v][i]['seconds']:>13.3f}{results[v][i]['peak']:>7.2f}" for v in variants)
        if "plain" in variants:
            base = results["plain"][i]["seconds"]
            line += "".join(f"{results[v][i]['seconds'] / base:>16.2f}" for v in variants if v != "plain")
        print(line)
    same = all(
        np.array_equal(results[variants[0]][i]["mask"], results[v][i]["mask"])
        for v in variants
        for i in range(len(results[v]))
    )
    print(f"masks identical across variants: {same}")
    if "compile" in warm:
        print(f"torch.compile warm-up (once, at load): {warm['compile']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
