"""``nninteractive-eval``: simulated users on an image/label pair; CSV, table, plot, prompt logs."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ..core import atomic
from ..core.errors import OutputError, UserError
from ..eval.agents import AGENT_NAMES
from ..io import formats
from .common import add_engine_arguments, add_server_arguments, session_from_args

OUTPUTS = ("results.csv", "summary.txt", "dice.png")

EPILOG = """\
Writes into --out (created if needed; these files in it are replaced, nothing else is touched):
  results.csv        one row per object x interaction: label, agent, engine, prompt type and
                     sign, Dice after the interaction, the object's AUC, seconds, forward passes
  summary.txt        the table printed at the end (per object and mean per agent): Dice@k, AUC
                     and "drops", the share of correction rounds whose Dice fell by more than 0.05
  dice.png           mean Dice vs interaction, one line per engine/agent
  prompts/AGENT_labelL.json
                     every prompt of that run in nninteractive-segment's prompt-file format;
                     replay it exactly with
                     nninteractive-segment IMAGE --prompts prompts/AGENT_labelL.json --model DIR \\
                        -o mask.nii.gz --save-steps steps.npz

Protocol (evaluation.md): interaction 0 is the agent's initial prompt placed from the reference
mask on the object's largest slice; interactions 1..N correct the largest error component
(negative with probability |FP| / (|FP| + |FN|)). AUC is the trapezoidal area under Dice@0..N
divided by N. All randomness comes from --seed.
"""


class EvalUsageError(UserError, ValueError):
    """A bad argument or input file of ``nninteractive-eval``; the message says what to pass instead."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nninteractive-eval",
        description="Measure an engine with simulated users: Dice after every interaction and AUC, "
        "per object of a label volume.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("image", type=Path, metavar="IMAGE", help=f"volume ({'/'.join(formats.suffixes('read_volume'))})")
    p.add_argument("labels", type=Path, metavar="LABELS", help="reference label volume on the same grid")
    p.add_argument(
        "--labels",
        dest="values",
        default=None,
        metavar="1,5,7",
        help="label values to evaluate (default: every nonzero value)",
    )
    p.add_argument(
        "--agent",
        default="random",
        metavar="NAME[,NAME]",
        help=f"one or more of {', '.join(AGENT_NAMES)} (comma-separated; default random)",
    )
    p.add_argument(
        "--interactions",
        type=int,
        default=5,
        metavar="N",
        help="corrections after the first prompt (0 to 1000; default 5)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for every random choice (0 or more; default 0)")
    p.add_argument("--out", type=Path, default=Path("results"), help="output folder (default results/)")
    add_engine_arguments(p)
    add_server_arguments(p)
    return p


#: Corrections per object at most (the protocol uses 5; beyond this a run only measures patience).
MAX_INTERACTIONS = 1000


def _parse_values(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise EvalUsageError(f"--labels must be comma-separated integers, got {text!r}") from None
    if not values:
        raise EvalUsageError(f"--labels names no label value ({text!r}); give e.g. --labels 1,2")
    return list(dict.fromkeys(values))  # each object once, in the order given


def _check_out(args: argparse.Namespace) -> None:
    """Refuse an --out that is a file or an input, or whose outputs would replace a folder or an input."""
    inputs = (args.image, args.labels)
    atomic.check_output(args.out, inputs, folder=True, may_replace_folder=lambda p: True, what="--out folder")
    for name in OUTPUTS:
        atomic.check_output(args.out / name, inputs)
    atomic.check_output(args.out / "prompts", inputs, folder=True, may_replace_folder=lambda p: True)


def _make_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"Cannot create the --out folder {out} ({exc.strerror or exc}); choose another folder."
        ) from None


def _label_values(labels: np.ndarray, path: Path, wanted: list[int] | None) -> list[int]:
    """The label values to evaluate; refuses a file that is not a label map and values it lacks."""
    from ..eval.runner import label_values

    if labels.dtype.kind not in "biuf" or (labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels))):
        raise EvalUsageError(
            f"{path} is not a label volume: its values must be whole numbers (it has "
            f"{labels.dtype} values); pass the reference segmentation as LABELS."
        )
    try:
        values = label_values(labels, wanted)
    except ValueError as exc:
        raise EvalUsageError(str(exc)) from None
    if not values:
        raise EvalUsageError(
            f"{path} has no labelled voxel (every value is 0); pass the reference segmentation as LABELS."
        )
    if any(v < 0 for v in values):
        raise EvalUsageError(
            f"{path} has negative label values {[v for v in values if v < 0]}; pass labels "
            "0 (background) and up, or choose values with --labels."
        )
    return values


def run(args: argparse.Namespace) -> int:
    from ..core.lazy import as_channel_first
    from ..eval import report
    from ..eval.runner import evaluate
    from ..io.volumes import read_volume

    agents = list(dict.fromkeys(a.strip() for a in args.agent.split(",") if a.strip()))  # each agent once
    unknown = [a for a in agents if a not in AGENT_NAMES]
    if unknown or not agents:
        raise EvalUsageError(f"unknown agent(s) {unknown}; use {', '.join(AGENT_NAMES)}")
    if not 0 <= args.interactions <= MAX_INTERACTIONS:
        raise EvalUsageError(f"--interactions must be 0 to {MAX_INTERACTIONS} (corrections after the first prompt)")
    if args.seed < 0:
        raise EvalUsageError("--seed must be 0 or more")
    wanted = _parse_values(args.values)
    _check_out(args)
    image = read_volume(args.image)
    if image.meta.get("note"):
        print(image.meta["note"], flush=True)
    label_volume = read_volume(args.labels)
    if label_volume.meta.get("note"):  # its colours were turned into grey values: not labels
        raise EvalUsageError(f"{args.labels} is an RGB image; pass a label volume (one integer value per voxel).")
    labels = np.asarray(label_volume.array)
    spatial = as_channel_first(image.array).shape[1:]
    labels = labels[None] if labels.ndim == 2 else labels
    if labels.shape != spatial:
        raise EvalUsageError(
            f"the label volume has shape {labels.shape} but the image grid is {spatial}; "
            "pass labels on the same grid (read with the same reader)."
        )
    values = _label_values(labels, args.labels, wanted)
    _make_out(args.out)
    with session_from_args(args) as session:
        session.set_image(image.array)
        t0 = time.perf_counter()

        def progress(done: int, total: int, run) -> None:
            bar = "#" * int(30 * done / total)
            print(
                f"\r[{bar:<30}] {done}/{total} objects (label {run.label}, {run.agent}: AUC {run.auc:.3f}, "
                f"{time.perf_counter() - t0:.0f} s)",
                end="\n" if done == total else "",
                file=sys.stderr,
                flush=True,
            )

        name = session.capabilities.name + (" + MRF" if getattr(session, "fusion", False) else "")
        runs = evaluate(session, labels, agents, args.interactions, args.seed, values, args.image.name, progress, name)
    out = args.out
    report.write_csv(runs, out / "results.csv")
    table = report.summary_table(runs)
    atomic.write_text(out / "summary.txt", table)
    report.plot_dice(runs, out / "dice.png", title=f"{args.image.name} ({len(runs)} object runs)")
    for r in runs:
        report.write_prompt_log(r, out / "prompts" / report.prompt_log_name(r))
    print(table, end="")
    print(f"wrote {out}/results.csv, summary.txt, dice.png and prompts/ ({len(runs)} runs)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``nninteractive-eval``; user errors print one line and exit 2."""
    from .common import guarded

    return guarded("nninteractive-eval", run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
