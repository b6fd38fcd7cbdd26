"""Network path: time per interaction split into forward passes and everything else, passes,
peak RSS and session bytes per voxel; and the zoomed-input construction before/after, in one run.

Random-weight networks in the official folder format (the tiny test network and the full v1.0
architecture, 102 M parameters, 192^3 patch) on synthetic 128^3 and 512x512x133 volumes. Every
measurement runs in its own process, and peak RSS (VmHWM) is reset once the model and image are
loaded, so the increase belongs to the interactions alone.

- ``session`` rows: box, positive point, negative point through ``Session``. AutoZoom is on only
  for the tiny network on 128^3: random weights make every zoom trigger, and refining the resulting
  diff with the spec's planner needs hundreds of patches on 512x512x133 (thousands for the tiny
  network's 64^3 patch, whose inner box is 16 voxels); the full network runs AutoZoom off, one
  ~1 min pass per interaction on 2 cores. The zoomed path is measured by the next rows.
- ``zoom input`` rows: building the network input at zoom 4 (crop 4P per axis) around an object
  with prompts and a previous mask, with full S^3 float crops (before) and from the data-holding
  part only (after, the default); inputs are compared for bit equality in the same run.
- ``AutoZoom with a stand-in`` rows: a box and a point with AutoZoom on and a zero-cost network
  that outlines bright objects (as a trained one would), so the time is all overhead: zoomed
  inputs, border tests, upsampling, opening, planning, refinement bookkeeping; before/after as above.

    python benchmarks/network_speed.py [--arch tiny,full] [--volumes 128,133x512x512]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _rss_mb(field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of this process in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    """Start a new peak-RSS window (``echo 5 > /proc/self/clear_refs``)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


class Timed:
    """Wraps the network and adds up the seconds spent in forward passes."""

    def __init__(self, net):
        self.net, self.seconds, self.calls = net, 0.0, 0

    def __call__(self, x):
        t = time.perf_counter()
        y = self.net(x)
        self.seconds += time.perf_counter() - t
        self.calls += 1
        return y


def _setup(folder: str, volume: str, autozoom: bool, network=None):
    """Session on the saved volume with the folder's model, or its metadata around ``network``."""
    import dataclasses

    from napari_nninteractive.core.engines.network import NetworkEngine
    from napari_nninteractive.core.model import load_model_folder
    from napari_nninteractive.core.session import Session

    image, labels = np.load(f"{volume}_image.npy"), np.load(f"{volume}_labels.npy")
    model = load_model_folder(folder)
    if network is None:
        model.network.eval()
    timed = Timed(network or model.network)
    engine = NetworkEngine(dataclasses.replace(model, network=timed), device="cpu", autozoom=autozoom)
    session = Session(engine)
    session.set_image(image)
    return session, engine, timed, image, labels


def _interactions(session, labels) -> list[tuple[str, Callable[[], object]]]:
    """Box on object 1's central slice, a click at its centre, a negative click at its box corner."""
    obj = np.argwhere(labels == 1)
    lo, hi = obj.min(0), obj.max(0) + 1
    centre = [int(v) for v in obj.mean(0).round()]
    z = centre[0]
    return [
        ("box+", lambda: session.add_bbox([[z, z + 1], [lo[1], hi[1]], [lo[2], hi[2]]])),
        ("point+", lambda: session.add_point(centre)),
        ("point-", lambda: session.add_point([z, int(lo[1]), int(lo[2])], positive=False)),
    ]


def child_session(folder: str, volume: str, autozoom: bool) -> dict:
    session, _engine, timed, image, labels = _setup(folder, volume, autozoom)
    _reset_peak()
    rss_ready = _rss_mb("VmRSS")
    rows = []
    for name, call in _interactions(session, labels):
        before, calls = timed.seconds, timed.calls
        t = time.perf_counter()
        call()
        wall = time.perf_counter() - t
        rows.append(
            {"interaction": name, "wall": wall, "forward": timed.seconds - before, "passes": timed.calls - calls}
        )
    used = session.state_nbytes()
    n = int(np.prod(session.shape))
    return {
        "rows": rows,
        "rss_ready_mb": rss_ready,
        "rss_peak_mb": _rss_mb(),
        "image_mb": image.nbytes / 2**20,
        "bytes_per_voxel": sum(used.values()) / n,
        "state": used,
    }


class StandIn:
    """A zero-cost stand-in for the network: foreground where the normalised image exceeds 1.

    Like a trained model it outlines bright objects, so AutoZoom zooms out until the object fits
    and refinement plans a few patches; what is left to time is everything around the passes.
    """

    def __call__(self, x):
        import torch

        fg = (x[:, 0] > 1.0).float()
        return torch.stack([1 - fg, fg], dim=1)


def child_overhead(folder: str, volume: str, lean: bool) -> dict:
    session, engine, timed, _image, labels = _setup(folder, volume, True, network=StandIn())
    engine.lean_inputs = lean
    _reset_peak()
    rss_ready = _rss_mb("VmRSS")
    walls, passes = [], []
    for _, call in _interactions(session, labels)[:2]:
        calls, spent = timed.calls, timed.seconds
        t = time.perf_counter()
        call()
        walls.append(time.perf_counter() - t - (timed.seconds - spent))
        passes.append(timed.calls - calls)
    return {
        "walls": walls,
        "passes": passes,
        "rss_ready_mb": rss_ready,
        "rss_peak_mb": _rss_mb(),
        "mask_file": _save_mask(session.mask, lean),
    }


def _save_mask(mask, lean: bool) -> str:
    out = Path(tempfile.gettempdir()) / f"nni_overhead_mask_{'lean' if lean else 'full'}.npy"
    np.save(out, mask)
    return str(out)


def child_zoom_input(folder: str, volume: str, lean: bool) -> dict:
    import torch

    from napari_nninteractive.core import autozoom as az
    from napari_nninteractive.core.geometry import window

    session, engine, _, _image, labels = _setup(folder, volume, True)
    obj = labels == 1
    centre = [int(v) for v in np.argwhere(obj).mean(0).round()]
    session.add_point(centre, run=False)
    session.add_point([c + 3 for c in centre], positive=False, run=False)
    prev = obj.astype(np.uint8)
    box = window(centre, az.crop_size(engine.patch_size, 4.0))
    engine.lean_inputs = lean
    _reset_peak()
    rss_ready = _rss_mb("VmRSS")
    t = time.perf_counter()
    x, _ = engine.network_input(prev, box, 4.0)
    secs = time.perf_counter() - t
    out = Path(tempfile.gettempdir()) / f"nni_zoom_input_{'lean' if lean else 'full'}.pt"
    torch.save(x, out)
    return {"seconds": secs, "rss_ready_mb": rss_ready, "rss_peak_mb": _rss_mb(), "file": str(out)}


def _run_child(*args) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *map(str, args)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="tiny,full")
    ap.add_argument("--volumes", default="128,133x512x512")
    ap.add_argument("--parts", default="session,zoom,overhead", help="which measurements (default: all)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, folder, volume, flag = args.child
        child = {"session": child_session, "zoom": child_zoom_input, "overhead": child_overhead}[kind]
        result = child(folder, volume, flag == "1")
        print(json.dumps(result))
        return 0

    import torch

    from napari_nninteractive.testing import synthetic_volume, tiny_architecture, v1_architecture, write_model_folder

    work = Path(tempfile.mkdtemp(prefix="nni_netbench_"))
    archs = {"tiny": (tiny_architecture(), 64, True), "full": (v1_architecture(), 192, False)}  # AutoZoom on 128^3
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; random weights; work dir {work}")
    volumes = {}
    for vol in args.volumes.split(","):
        shape = "x".join([vol] * 3) if "x" not in vol else vol
        image, labels = synthetic_volume(tuple(int(v) for v in shape.split("x")), seed=0)
        volumes[shape] = str(work / shape)
        np.save(f"{volumes[shape]}_image.npy", image)
        np.save(f"{volumes[shape]}_labels.npy", labels)
        del image, labels
    for arch in args.arch.split(","):
        spec, patch, autozoom = archs[arch]
        folder = write_model_folder(work / arch, spec, (patch,) * 3)
        for shape, volume in volumes.items():
            autozoom_here = autozoom and shape == "128x128x128"
            print(f"\n== {arch} network (patch {patch}^3), volume {shape}")
            parts = args.parts.split(",")
            r = _run_child("session", folder, volume, int(autozoom_here)) if "session" in parts else {"rows": []}
            if r["rows"]:
                print(f"  session, AutoZoom {'on' if autozoom_here else 'off'}:")
            for row in r["rows"]:
                other = row["wall"] - row["forward"]
                print(
                    f"  {row['interaction']:<7} {row['wall']:8.2f} s = forward {row['forward']:8.2f} s "
                    f"({row['passes']} passes) + other {other:6.2f} s ({100 * other / row['wall']:4.1f} %)"
                )
            if r["rows"]:
                print(
                    f"  peak RSS {r['rss_peak_mb']:.0f} MB (after loading model+image {r['rss_ready_mb']:.0f} MB; "
                    f"image {r['image_mb']:.0f} MB); session state {r['bytes_per_voxel']:.3f} B/voxel {r['state']}"
                )
            if "zoom" in parts:
                full = _run_child("zoom", folder, volume, 0)
                lean = _run_child("zoom", folder, volume, 1)
                same = torch.equal(torch.load(full["file"]), torch.load(lean["file"]))
                print(
                    f"  zoom-4 input ({4 * patch}^3 crop): full crops {full['seconds']:.2f} s, peak RSS "
                    f"{full['rss_peak_mb']:.0f} MB (+{full['rss_peak_mb'] - full['rss_ready_mb']:.0f}) -> data part only "
                    f"{lean['seconds']:.2f} s, {lean['rss_peak_mb']:.0f} MB (+{lean['rss_peak_mb'] - lean['rss_ready_mb']:.0f}); "
                    f"{full['seconds'] / lean['seconds']:.1f}x faster, identical input: {same}",
                    flush=True,
                )
            if "overhead" not in parts:
                continue
            full = _run_child("overhead", folder, volume, 0)
            lean = _run_child("overhead", folder, volume, 1)
            same = np.array_equal(np.load(full["mask_file"]), np.load(lean["mask_file"]))
            for i, name in enumerate(("box+", "point+")):
                print(
                    f"  AutoZoom with a zero-cost stand-in network, {name}: {full['passes'][i]} passes, everything "
                    f"but the passes {full['walls'][i]:.2f} s -> {lean['walls'][i]:.2f} s "
                    f"({full['walls'][i] / lean['walls'][i]:.1f}x)"
                )
            print(
                f"    peak RSS +{full['rss_peak_mb'] - full['rss_ready_mb']:.0f} MB -> "
                f"+{lean['rss_peak_mb'] - lean['rss_ready_mb']:.0f} MB; identical masks: {same}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
