"""``python -m napari_nninteractive.demo``: try the plugin with nothing downloaded.

With a display: napari opens with the generated sample scan, the nnInteractive widget docked and
the weight-free engine initialized; click a point (P) on an object. Without a display that answers
(or with ``--headless``): the same engine segments an object of the sample through the command
line and writes the scan, the prompts, the mask and a PNG overview (three orthogonal slices with
the mask overlaid) into the output folder, replacing earlier demo files of these names.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from .core import atomic

PROG = "python -m napari_nninteractive.demo"
#: Run in a child process: a Qt that cannot reach the display aborts the process (libxcb).
_PROBE = "from qtpy.QtWidgets import QApplication; QApplication([])"


def display_problem(timeout: float = 15.0) -> str | None:
    """Why no Qt window can open here, in words, or ``None`` when one can.

    Opening a Qt application on a display that does not answer aborts the whole process, so a
    child process tries it first (up to ``timeout`` seconds).
    """
    display = os.environ.get("WAYLAND_DISPLAY") or os.environ.get("DISPLAY")
    name = "WAYLAND_DISPLAY" if os.environ.get("WAYLAND_DISPLAY") else "DISPLAY"
    if sys.platform not in ("darwin", "win32") and not display:
        return "No display found"
    where = f"{name}={display}" if display else "this desktop"
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE], check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"Cannot open a window on {where}: no answer within {timeout:.0f} s"
    if probe.returncode == 0:
        return None
    lines = [line.strip() for line in probe.stderr.splitlines() if line.strip()]
    return f"Cannot open a window on {where} ({lines[0] if lines else f'Qt exit status {probe.returncode}'})"


def has_display() -> bool:
    """True where a Qt window can open (see :func:`display_problem`)."""
    return display_problem() is None


def run_gui() -> int:
    import napari

    from ._sample import synthetic_scan

    viewer = napari.Viewer(title="nnInteractive demo")
    for data, kwargs, kind in synthetic_scan():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget("napari-nninteractive", "nnInteractive")
    widget.initialize()  # no model folder: the weight-free engine
    napari.run()
    return 0


def overview_png(image: np.ndarray, mask: np.ndarray, reference: np.ndarray | None, path: Path) -> Path:
    """Mid-slices of the object in the three orthogonal views with the mask (and reference) overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centre = np.argwhere(mask).mean(axis=0).round().astype(int) if mask.any() else np.array(image.shape) // 2
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), dpi=110)
    for axis, ax in enumerate(axes):
        img = np.take(image, centre[axis], axis=axis)
        m = np.take(mask, centre[axis], axis=axis)
        ax.imshow(img, cmap="gray")
        ax.imshow(np.ma.masked_where(m == 0, m), cmap="autumn", alpha=0.5, vmin=0, vmax=1)
        if reference is not None:
            ax.contour(np.take(reference, centre[axis], axis=axis), levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_title(f"axis {axis} = {centre[axis]}")
        ax.axis("off")
    fig.suptitle("weight-free engine: mask (yellow), reference outline (cyan)")
    fig.tight_layout()
    try:
        with atomic.replacing(path, make_parents=True) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path


def run_headless(out: Path) -> int:
    import nibabel as nib

    from .cli import main as segment
    from .testing import enclosing_box, synthetic_volume

    atomic.check_output(out, folder=True, may_replace_folder=lambda p: True, what="--out folder")
    image, labels = synthetic_volume((96, 128, 128), seed=3)
    obj = labels == 2
    z = int(np.argwhere(obj)[:, 0].mean())
    ys, xs = np.nonzero(obj[z])
    prompts = {"interactions": [
        {"type": "bbox", "positive": True, "bbox": enclosing_box(obj, z)},
        {"type": "point", "positive": True, "coord": [z, int(ys.mean()), int(xs.mean())]},
    ]}
    with atomic.replacing(out / "scan.nii.gz", make_parents=True) as tmp:
        nib.save(nib.Nifti1Image(image, np.eye(4)), str(tmp))
    atomic.write_text(out / "prompts.json", json.dumps(prompts, indent=1))
    code = segment([str(out / "scan.nii.gz"), "--prompts", str(out / "prompts.json"), "-o", str(out / "mask.nii.gz")])
    if code:
        return code
    mask = np.asarray(nib.load(str(out / "mask.nii.gz")).dataobj)
    png = overview_png(image, mask, obj, out / "overview.png")
    d = 2 * np.count_nonzero(mask.astype(bool) & obj) / (mask.astype(bool).sum() + obj.sum())
    print(f"Dice with the generated reference: {d:.3f}; overview: {png}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .cli import guarded

    ap = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--headless", action="store_true", help="no GUI even if a display is available")
    ap.add_argument("--out", type=Path, default=Path("demo"), help="output folder of the headless run (default demo/)")
    args = ap.parse_args(argv)
    if not args.headless:
        problem = display_problem()
        if problem is None:
            return run_gui()
        print(f"{problem}: running the same segmentation headless.")
    return guarded(PROG, lambda a: run_headless(a.out), args)


if __name__ == "__main__":
    raise SystemExit(main())
