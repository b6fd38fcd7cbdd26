"""``nninteractive-segment``: segment a volume file from a prompt file, headless."""

from __future__ import annotations

import argparse
import logging
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..io import formats
from ..io.prompt_file import __doc__ as PROMPT_DOC
from .common import add_engine_arguments, add_server_arguments, session_from_args


def _format_list(use: formats.Use) -> str:
    """``.nii.gz/.nii (...), .nrrd/.seg.nrrd, ... or .npz (...)``: the formats serving ``use``, from the table."""
    notes = {"nifti": " (OUT keeps the image's affine)", "npz": " (array 'image')"}
    items = ["/".join(f.suffixes) + notes.get(f.name, "") for f in formats.formats(use)]
    return (", ".join(items[:-1]) + " or " + items[-1]) if len(items) > 1 else items[0]


_READ, _WRITE = _format_list("read_volume"), _format_list("write_mask")
_FILES = textwrap.fill(
    (f"IMAGE and OUT may be {_READ}" if _READ == _WRITE else f"IMAGE may be {_READ}, and OUT {_WRITE}")
    + ", in any letter case. OUT is a uint8 0/1 mask on the image grid, written under a temporary name and "
    "renamed when complete (an earlier OUT survives any failure); OUT may not be IMAGE, the prompt file, a mask "
    "it names, or --save-steps, and is never an existing folder. Coordinates are voxel indices in the array "
    "order of the file as read (no reorientation). A 4-D image is channel-first; a TIFF tagged RGB (2-D or "
    "a stack) is segmented by its luminance.",
    100,
)

EPILOG = (
    (PROMPT_DOC or "").split("\n", 2)[-1].replace("%", "%%")
    + f"""
{_FILES}

--save-steps STEPS.npz stores the mask after every interaction as arrays step_000, step_001, ...
(a queued interaction, "run": false, stores the unchanged mask; when the file ends with queued
interactions, they run at the end and one more array holds the mask they gave).

Examples:
  nninteractive-segment ct.nii.gz --prompts prompts.json --model nnInteractive_v1.0 -o mask.nii.gz
  nninteractive-segment ct.nii.gz --prompts prompts.json -o mask.nii.gz     # weight-free engine
  nninteractive-segment ct.nii.gz --prompts prompts.json --server http://gpu-box:1527 -o mask.nii.gz
"""
)

if TYPE_CHECKING:
    from ..core.api import SegmentationSession

log = logging.getLogger("napari_nninteractive")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nninteractive-segment",
        description="Segment one object in a 3-D volume from point / box / scribble / lasso / mask "
        "prompts, without a GUI: with an nnInteractive model folder (--model), on an nnInteractive server "
        "(--server), or with the weight-free engine when neither is given. Prints one progress line per interaction with "
        "its time and forward passes (solver runs for the weight-free engine).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("image", type=Path, metavar="IMAGE", help="volume to segment")
    parser.add_argument(
        "--prompts", type=Path, required=True, metavar="PROMPTS.json", help="prompt file (format below)"
    )
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="OUT", help="mask file to write")
    parser.add_argument(
        "--save-steps", type=Path, metavar="STEPS.npz", help="also save the mask after each interaction"
    )
    add_engine_arguments(parser)
    add_server_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return parser


def run(args: argparse.Namespace) -> int:
    check_outputs(args)
    with session_from_args(args) as session:
        return _segment(args, session)


def _segment(args: argparse.Namespace, session: SegmentationSession) -> int:
    from ..core.api import paste
    from ..core.atomic import replacing
    from ..io.prompt_file import load_prompt_file
    from ..io.volumes import read_volume, write_mask

    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, flush=True))
    volume = read_volume(args.image)
    t0 = time.perf_counter()
    caps = session.capabilities
    say(f"loaded {caps.description} in {time.perf_counter() - t0:.1f} s")
    if caps.licence:
        say(f"model licence: {caps.licence}")
    if volume.meta.get("note"):
        say(volume.meta["note"])
    session.set_image(volume.array)
    current = session.read_mask()  # our copy of the object, updated from each change

    mask_files: list[Path] = []

    def read_mask(path: Path) -> np.ndarray:
        mask_files.append(path)
        arr = np.asarray(read_volume(path).array)
        return (arr[None] if arr.ndim == 2 else arr) != 0

    interactions = load_prompt_file(args.prompts, session.shape, read_mask)
    check_outputs(args, mask_files)
    steps: dict[str, np.ndarray] = {}
    total = 0.0

    def work(n: int) -> str:  # network passes, or the weight-free engines' solves (one per region tried)
        return f"{n} {caps.pass_name}{'' if n == 1 else ('es' if caps.pass_name.endswith('s') else 's')}"

    pending = 0
    for i, item in enumerate(interactions):
        t = time.perf_counter()
        change = session.add_prompts([item.prompt], run=item.run)
        dt = time.perf_counter() - t
        total += dt
        paste(change, current)
        pending = change.pending
        sign = "+" if item.prompt.positive else "-"
        what = "queued" if not item.run else f"changed {change.bbox}"
        say(
            f"[{i + 1}/{len(interactions)}] {item.prompt.kind.value}{sign}: {dt:.2f} s, "
            f"{work(change.forward_passes)}, {what}, mask {int(current.sum())} voxels"
        )
        for notice in change.notices:
            say(notice)
        if args.save_steps:
            steps[f"step_{i:03d}"] = current.copy()
    if pending:
        t = time.perf_counter()
        change = session.predict()
        total += time.perf_counter() - t
        paste(change, current)
        say(f"predicted the queued prompts: {work(change.forward_passes)}, mask {int(current.sum())} voxels")
        for notice in change.notices:
            say(notice)
        if args.save_steps:  # one more step: the mask the queued prompts gave
            steps[f"step_{len(interactions):03d}"] = current.copy()
    mask = current[0] if np.ndim(volume.array) == 2 else current
    inputs = [args.image, args.prompts, *mask_files]
    write_mask(args.out, mask, volume, inputs=inputs)
    if args.save_steps:
        with replacing(
            args.save_steps,
            inputs=inputs + [args.out],
            temp_name="steps.npz",
            make_parents=True,
            what="--save-steps file",
        ) as tmp:
            np.savez_compressed(tmp, **steps)
    say(f"wrote {args.out} ({int(mask.sum())} voxels) after {len(interactions)} interaction(s), {total:.2f} s")
    return 0


def check_outputs(args: argparse.Namespace, more_inputs: list[Path] = ()) -> None:
    """Refuse, before any work, outputs that are inputs, folders, each other, or of unknown type."""
    from ..core.atomic import check_output, same_file
    from ..core.errors import OutputError
    from ..io.volumes import file_format

    file_format(args.out, "write_mask")
    inputs = [args.image, args.prompts, *more_inputs]
    check_output(args.out, inputs)
    if args.save_steps:
        if not str(args.save_steps).lower().endswith(".npz"):
            raise OutputError(f"--save-steps {args.save_steps}: the steps file must end with .npz.")
        if same_file(args.save_steps, args.out):
            raise OutputError(f"--save-steps {args.save_steps} is also the output -o; give them different names.")
        check_output(args.save_steps, inputs, what="--save-steps file")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``nninteractive-segment``."""
    from .common import guarded

    return guarded("nninteractive-segment", run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
