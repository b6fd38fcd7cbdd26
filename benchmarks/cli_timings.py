"""Per-interaction time and forward passes of ``nninteractive-segment`` on a synthetic volume.

Writes random-weight model folders in the official format (a tiny network and the full v1.0
architecture, 102 M parameters, 192^3 patches), a synthetic 128^3 volume and prompt files, then
runs the CLI with AutoZoom on and off and prints one table. Random weights segment nothing
meaningful, so the number of AutoZoom passes here is whatever the random network triggers: it
shows the cost per pass and the pass counts, not the counts a trained model would need.

    python benchmarks/cli_timings.py [--size 128] [--skip-full] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from napari_nninteractive.testing import synthetic_volume, tiny_architecture, v1_architecture, write_model_folder

LINE = re.compile(r"\[(\d+)/\d+\] (\S+): ([\d.]+) s, (\d+) forward pass")


def run_cli(image, prompts, model, out, autozoom: bool) -> list[tuple[str, float, int]]:
    cmd = [
        sys.executable,
        "-m",
        "napari_nninteractive.cli.segment",
        str(image),
        "--prompts",
        str(prompts),
        "--model",
        str(model),
        "-o",
        str(out),
        "--device",
        "cpu",
    ]
    if not autozoom:
        cmd.append("--no-autozoom")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return [(m.group(2), float(m.group(3)), int(m.group(4))) for m in LINE.finditer(proc.stdout)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--skip-full", action="store_true", help="only the tiny network")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="nnibench_"))
    image, labels = synthetic_volume((args.size,) * 3, seed=0)
    nib.save(nib.Nifti1Image(image, np.eye(4)), str(work / "volume.nii.gz"))
    centre = [int(v) for v in np.argwhere(labels == 1).mean(axis=0).round()]
    z, y, x = centre
    prompts = {
        "interactions": [
            {"type": "point", "positive": True, "coord": centre},
            {"type": "bbox", "positive": True, "bbox": [[z, z + 1], [y - 12, y + 12], [x - 12, x + 12]]},
            {"type": "point", "positive": False, "coord": [z, y, max(0, x - 30)]},
        ]
    }
    (work / "prompts.json").write_text(json.dumps(prompts))
    (work / "prompts1.json").write_text(json.dumps({"interactions": prompts["interactions"][:1]}))

    models = [("tiny (64^3)", write_model_folder(work / "tiny", tiny_architecture(), (64,) * 3), "prompts.json")]
    if not args.skip_full:
        models.append(
            ("full v1.0 (192^3)", write_model_folder(work / "full", v1_architecture(), (192,) * 3), "prompts1.json")
        )
    print(f"volume {args.size}^3, CPU threads: 2-core machine; work dir {work}")
    print(f"{'network':<20} {'AutoZoom':<9} {'interaction':<12} {'seconds':>8} {'passes':>7} {'s/pass':>7}")
    for name, folder, pfile in models:
        for autozoom in (False, True):
            t0 = time.perf_counter()
            rows = run_cli(work / "volume.nii.gz", work / pfile, folder, work / "mask.nii.gz", autozoom)
            for kind, secs, passes in rows:
                per = secs / passes if passes else float("nan")
                print(
                    f"{name:<20} {('on' if autozoom else 'off'):<9} {kind:<12} {secs:>8.2f} {passes:>7d} {per:>7.2f}",
                    flush=True,
                )
            print(f"{'':<20} {'':<9} {'(process)':<12} {time.perf_counter() - t0:>8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
