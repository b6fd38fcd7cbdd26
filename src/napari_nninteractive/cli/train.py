"""``nninteractive-train``: train or fine-tune an nnInteractive network with simulated users."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..core.errors import UserError

EPILOG = """\
DATASET is an nnU-Net raw dataset folder: dataset.json (channel_names, labels, file_ending),
imagesTr/<case>_0000<ending> (one file per channel), labelsTr/<case><ending>, and optionally
imagesTs/ + labelsTs/ (held out for validation; without them 20 %% of the cases are held out).
The file ending may be any volume format the plugin reads (.nii.gz, .nrrd, .tif, .npy, ...).
Every case is checked before training starts; problems are listed by case.

Each training sample is a simulated user's session on one object (a label value, or a connected
instance with --objects instances): a first prompt, then up to --max-corrections corrections of the
network's own predictions, placed by the same simulated users as nninteractive-eval and encoded
by the same code as inference. Only the last step is graded (Dice + cross-entropy).

OUT_MODEL_DIR becomes a model folder in the official format (plans.json, dataset.json, metadata,
LICENSE, fold_0/checkpoint_final.pth) that the plugin, nninteractive-segment and nninteractive-serve
load unchanged, plus training_log.json, training_progress.png, validation/ (the evaluation's CSV,
summary and plot of the latest validation), validation_best/ with fold_0/checkpoint_best.pth, and
fold_0/checkpoint_latest.pth for --resume.

Examples:
  nninteractive-train Dataset001_Cells -o my_model --plans cpu-small --minutes 15
  nninteractive-train Dataset002_Liver -o liver_model --from nnInteractive_v1.0 --epochs 50 --device cuda
  nninteractive-train Dataset002_Liver -o liver_model --from nnInteractive_v1.0 --epochs 50 --resume
  torchrun --nproc_per_node 4 $(which nninteractive-train) Dataset002_Liver -o m --plans v1 --epochs 100
"""


class TrainUsageError(UserError, ValueError):
    """A command-line choice that cannot work."""


def build_parser() -> argparse.ArgumentParser:
    from ..train.presets import PRESETS

    p = argparse.ArgumentParser(
        prog="nninteractive-train",
        description="Train an nnInteractive network from scratch (--plans) or fine-tune a model folder (--from) "
        "on an nnU-Net raw dataset, with simulated users; the output is an ordinary model folder.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", type=Path, metavar="DATASET", help="nnU-Net raw dataset folder")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="OUT_MODEL_DIR", help="model folder to write")
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--from", dest="from_dir", type=Path, metavar="MODEL_DIR", help="fine-tune this model folder")
    start.add_argument(
        "--plans",
        metavar="PLANS",
        help=f"train from scratch: a plans.json file or a preset ({', '.join(PRESETS)}; cpu-small trains on a CPU in minutes)",
    )
    p.add_argument("--configuration", metavar="C", help="configuration of the plans file (needed when it has several)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="train for about this many minutes (default 15)")
    length.add_argument("--epochs", type=int, help="train this many epochs (reproducible with --seed)")
    p.add_argument(
        "--iterations-per-epoch", type=int, default=50, metavar="N", help="iterations per epoch (default 50)"
    )
    p.add_argument("--device", default="auto", help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:1, mps (default auto)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--batch-size", type=int, help="samples per step (default: the plans' batch size; at most 4 on a CPU)"
    )
    p.add_argument(
        "--optimizer",
        choices=("sgd", "adamw"),
        default="adamw",
        help="adamw (default: converges much faster in short runs) or sgd (nnU-Net's: Nesterov momentum 0.99)",
    )
    p.add_argument(
        "--lr",
        type=float,
        help="initial learning rate (default adamw: 1e-3 from scratch, 3e-4 fine-tuning; sgd: 1e-2 and 1e-3)",
    )
    p.add_argument("--val-every", type=int, default=10, metavar="E", help="validate every E epochs (and at the end)")
    p.add_argument("--val-objects", type=int, default=4, metavar="N", help="objects per held-out case to validate")
    p.add_argument(
        "--val-autozoom",
        action="store_true",
        help="validate with AutoZoom on, as users run it (off by default: an undertrained network makes it slow)",
    )
    p.add_argument(
        "--objects",
        choices=("labels", "instances"),
        default="labels",
        help="what one object is: a label value, or each connected instance of a label (default labels)",
    )
    p.add_argument(
        "--merge-probability",
        type=float,
        default=0.1,
        metavar="P",
        help="chance that a target merges touching objects, so the model learns ambiguity (default 0.1)",
    )
    p.add_argument(
        "--max-corrections",
        type=int,
        default=4,
        metavar="K",
        help="corrections simulated before the graded step (0..K)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in OUT_MODEL_DIR from its last epoch")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    return p


def _check(args: argparse.Namespace) -> None:
    for name in ("epochs", "iterations_per_epoch", "batch_size", "val_objects", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise TrainUsageError(f"--{name.replace('_', '-')} must be 1 or more, not {value}.")
    for name in ("minutes", "lr"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise TrainUsageError(f"--{name} must be above 0, not {value}.")
    if args.val_every < 0 or args.max_corrections < 0 or args.seed < 0:
        raise TrainUsageError("--val-every, --max-corrections and --seed must be 0 or more.")
    if not 0 <= args.merge_probability <= 1:
        raise TrainUsageError(f"--merge-probability must be between 0 and 1, not {args.merge_probability}.")
    if not args.dataset.is_dir():
        raise TrainUsageError(
            f"{args.dataset} is not a folder; pass an nnU-Net raw dataset folder (with dataset.json)."
        )
    out = args.out.expanduser().resolve()
    for other, what in ((args.dataset, "the dataset"), (args.from_dir, "the model it fine-tunes")):
        if other is not None and out == other.expanduser().resolve():
            raise TrainUsageError(f"-o {args.out} is {what}; choose a new folder for the trained model.")
    if out.exists() and not out.is_dir():
        raise TrainUsageError(f"-o {args.out} is a file; choose a folder.")
    started = (out / "fold_0" / "checkpoint_latest.pth").is_file()
    if args.resume and not started:
        raise TrainUsageError(f"--resume: {args.out} holds no training run to continue; start without --resume.")
    if not args.resume and out.is_dir() and any(out.iterdir()):
        hint = " (pass --resume to continue it)" if started else ""
        raise TrainUsageError(f"-o {args.out} is not empty{hint}; choose a new folder, nothing is overwritten.")


def run(args: argparse.Namespace) -> int:
    from ..train.loop import Progress, TrainConfig, Trainer

    _check(args)
    cfg = TrainConfig(
        dataset=args.dataset,
        out=args.out,
        from_dir=args.from_dir,
        plans=args.plans,
        configuration=args.configuration,
        minutes=args.minutes if args.minutes or args.epochs else 15.0,
        epochs=args.epochs,
        iterations_per_epoch=args.iterations_per_epoch,
        device=args.device,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        val_every=args.val_every,
        val_objects=args.val_objects,
        val_autozoom=args.val_autozoom,
        objects=args.objects,
        merge_probability=args.merge_probability,
        max_corrections=args.max_corrections,
        resume=args.resume,
        threads=args.threads,
    )
    trainer = Trainer(cfg, Progress(enabled=not args.quiet))
    out = trainer.run()
    if trainer.writer:
        val = trainer.log["validation"]
        best = f", best validation AUC {max(v['auc'] for v in val):.3f}" if val else ""
        print(f"wrote the model folder {out} ({trainer.iteration} iterations, {trainer.epoch} epochs{best})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``nninteractive-train``; user errors print one line and exit 2."""
    from .common import guarded

    code = guarded("nninteractive-train", run, build_parser().parse_args(argv))
    if argv is None and os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1"):
        # One of several torchrun workers, done: leave without the interpreter's teardown. There PyTorch's
        # distributed threads now and then abort a worker after a successful run ("terminate called without an
        # active exception", pytorch/pytorch#65231), and torchrun then reports the whole job as failed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
