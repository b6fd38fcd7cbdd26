"""``nninteractive-demo``: try the plugin with nothing downloaded.

With a display: napari opens, sized to fit the screen, with the generated sample scan, the
nnInteractive widget docked and the weight-free engine initialized; the canvas says what to do
first: press P and click an object. Without a display that answers
(or with ``--headless``): the same engine segments an object of the sample through the command
line and writes the scan, its reference labels, the prompts, the mask and a PNG overview (three
orthogonal slices through the prompts with the mask, the reference outline and the prompts drawn)
into the output folder, replacing earlier demo files of these names. Then measure the engine with
simulated users: ``nninteractive-eval demo/scan.nii.gz demo/labels.nii.gz --out demo/eval``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from ..core import atomic

PROG = "nninteractive-demo"
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
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE], check=False, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"Cannot open a window on {where}: no answer within {timeout:.0f} s"
    if probe.returncode == 0:
        return None
    lines = [line.strip() for line in probe.stderr.splitlines() if line.strip()]
    return f"Cannot open a window on {where} ({lines[0] if lines else f'Qt exit status {probe.returncode}'})"


def has_display() -> bool:
    """True where a Qt window can open (see :func:`display_problem`)."""
    return display_problem() is None


#: The three panels of the overview: (name, sliced array axis, (row axis, column axis)) in array order z, y, x.
_PANELS = (("axial", 0, (1, 2)), ("coronal", 1, (0, 2)), ("sagittal", 2, (0, 1)))
_AXIS_NAMES = "zyx"


def _panel_centre(mask: np.ndarray, interactions: list[dict]) -> np.ndarray:
    """Where the three slices cross: the first point prompt, else the first box's centre, else the mask's."""
    for item in interactions:
        if item.get("type") == "point":
            return np.asarray(item["coord"], int)
    for item in interactions:
        if item.get("type") == "bbox":
            return np.array([(lo + hi - 1) // 2 for lo, hi in item["bbox"]])
    return np.argwhere(mask).mean(axis=0).round().astype(int) if mask.any() else np.array(mask.shape) // 2


def overview_png(
    image: np.ndarray,
    mask: np.ndarray,
    reference: np.ndarray | None,
    path: Path,
    interactions: list[dict] | None = None,
) -> Path:
    """One PNG: the axial, coronal and sagittal slices through the prompts with the mask overlaid.

    ``image``, ``mask`` and ``reference`` are 3-D arrays in (z, y, x) order; ``interactions`` are
    prompt-file entries (``"point"`` and ``"bbox"`` are drawn on every slice they lie on, green when
    positive, red when negative). The reference is drawn as an outline; a legend names everything.
    Each panel is titled with its slice (e.g. ``axial (z = 40)``) and its axes are labelled.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    from ..eval.report import save_figure

    interactions = interactions or []
    centre = _panel_centre(mask, interactions)
    fig, axes = plt.subplots(1, 3, figsize=(13, 5.2), dpi=110)
    for ax, (name, axis, (row, col)) in zip(axes, _PANELS):
        c = int(centre[axis])
        m = np.take(mask, c, axis=axis)
        ax.imshow(np.take(image, c, axis=axis), cmap="gray", interpolation="nearest")
        ax.imshow(np.ma.masked_where(m == 0, m), cmap="autumn", alpha=0.5, vmin=0, vmax=1, interpolation="nearest")
        if reference is not None:
            ref = np.take(reference, c, axis=axis)
            if ref.any() and not ref.all():
                ax.contour(ref.astype(np.uint8), levels=[0.5], colors="cyan", linewidths=0.9)
        for item in interactions:
            colour = "lime" if item.get("positive", True) else "red"
            if item.get("type") == "bbox":
                (rlo, rhi), (clo, chi), (alo, ahi) = (item["bbox"][row], item["bbox"][col], item["bbox"][axis])
                if alo <= c < ahi:  # the box crosses this slice: its outline (a line where it is one voxel thin)
                    ax.add_patch(
                        Rectangle(
                            (clo - 0.5, rlo - 0.5), chi - clo, rhi - rlo, fill=False, edgecolor=colour, linewidth=1.5
                        )
                    )
            elif item.get("type") == "point" and int(item["coord"][axis]) == c:
                ax.plot(
                    item["coord"][col],
                    item["coord"][row],
                    marker="*",
                    markersize=14,
                    color=colour,
                    markeredgecolor="black",
                    markeredgewidth=0.8,
                    linestyle="none",
                )
        ax.set_title(f"{name} ({_AXIS_NAMES[axis]} = {c})")
        ax.set_xlabel(_AXIS_NAMES[col])
        ax.set_ylabel(_AXIS_NAMES[row])
    handles = [
        Patch(facecolor=plt.get_cmap("autumn")(1.0), alpha=0.6, label="mask (result)"),
        Line2D([], [], color="cyan", label="reference outline"),
        Patch(fill=False, edgecolor="lime", linewidth=1.5, label="box prompt (green +, red -)"),
        Line2D(
            [],
            [],
            marker="*",
            markersize=12,
            color="lime",
            markeredgecolor="black",
            linestyle="none",
            label="point prompt (green +, red -)",
        ),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False)
    fig.suptitle("weight-free engine: slices through the prompts (array order z, y, x; voxel indices)")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return save_figure(fig, path)


def run_headless(out: Path) -> int:
    import nibabel as nib

    from ..samples.synthetic import enclosing_box, synthetic_volume
    from .segment import main as segment

    atomic.check_output(out, folder=True, may_replace_folder=lambda p: True, what="--out folder")
    image, labels = synthetic_volume((96, 128, 128), seed=3)
    obj = labels == 2
    z = int(np.argwhere(obj)[:, 0].mean())
    ys, xs = np.nonzero(obj[z])
    prompts = {
        "interactions": [
            {"type": "bbox", "positive": True, "bbox": enclosing_box(obj, z)},
            {"type": "point", "positive": True, "coord": [z, int(ys.mean()), int(xs.mean())]},
        ]
    }
    with atomic.replacing(out / "scan.nii.gz", make_parents=True) as tmp:
        nib.save(nib.Nifti1Image(image, np.eye(4)), str(tmp))
    with atomic.replacing(out / "labels.nii.gz") as tmp:  # the reference, for nninteractive-eval
        nib.save(nib.Nifti1Image(labels, np.eye(4)), str(tmp))
    atomic.write_text(out / "prompts.json", json.dumps(prompts, indent=1))
    code = segment([str(out / "scan.nii.gz"), "--prompts", str(out / "prompts.json"), "-o", str(out / "mask.nii.gz")])
    if code:
        return code
    mask = np.asarray(nib.load(str(out / "mask.nii.gz")).dataobj)
    png = overview_png(image, mask, obj, out / "overview.png", prompts["interactions"])
    d = 2 * np.count_nonzero(mask.astype(bool) & obj) / (mask.astype(bool).sum() + obj.sum())
    print(
        f"Dice with the generated reference: {d:.3f}; overview: {png}\n"
        f"next: nninteractive-eval {out / 'scan.nii.gz'} {out / 'labels.nii.gz'} --out {out / 'eval'}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    from .common import guarded

    ap = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--headless", action="store_true", help="no GUI even if a display is available")
    ap.add_argument("--out", type=Path, default=Path("demo"), help="output folder of the headless run (default demo/)")
    args = ap.parse_args(argv)
    if not args.headless:
        problem = display_problem()
        if problem is None:
            from ..gui.demo import run_gui

            return run_gui()
        print(f"{problem}: running the same segmentation headless.")
    return guarded(PROG, lambda a: run_headless(a.out), args)


if __name__ == "__main__":
    raise SystemExit(main())
