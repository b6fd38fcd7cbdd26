"""The trainer's output: a model folder in the official nnInteractive format.

``plans.json``, ``dataset.json``, the interaction metadata, ``LICENSE`` and
``fold_0/checkpoint_final.pth`` (``network_weights`` and the keys nnU-Net trainers write, loadable with
``weights_only=True``) are what the plugin, its server and the reference read; ``training_log.json`` and
``training_progress.png`` tell how the weights came about. Every file replaces the old one only when
complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..core import atomic
from .dataset import TrainingData
from .start import StartingPoint

FOLD = 0
FINAL, BEST, LATEST = "checkpoint_final.pth", "checkpoint_best.pth", "checkpoint_latest.pth"
TRAINER_NAME = "nninteractive-train"


def checkpoint_path(out: Path, name: str) -> Path:
    return out / f"fold_{FOLD}" / name


def dataset_json(start: StartingPoint, data: TrainingData) -> dict[str, Any]:
    """The source model's ``dataset.json`` when fine-tuning (kept as it is), else one for the new model."""
    if start.dataset_json is not None:
        return start.dataset_json
    return {
        "channel_names": dict(data.channel_names),
        "labels": {"background": 0, "foreground": 1},
        "numTraining": len(data.cases),
        "file_ending": data.file_ending,
        "name": f"nninteractive-train on {data.name}",
    }


def licence_text(start: StartingPoint, data: TrainingData) -> str:
    """What the weights derive from. The first line is the one the plugin shows (the facts line): a fine-tune
    leads with its source's licence line, which it inherits."""
    if start.source is not None:
        full = (start.licence or "").strip() or "(the source folder has no LICENSE file: ask its authors)"
        inherited = full.splitlines()[0].strip()
        return (
            f"{inherited}\n\nThese weights were fine-tuned by {TRAINER_NAME} from {start.source.name} on the dataset "
            f"{data.name}. They derive from {start.source.name} and inherit its licence, whose text follows.\n\n{full}\n"
        )
    return (
        f"Trained from scratch on {data.name}: that dataset's terms apply.\n\nThese weights were trained from scratch "
        f"(random initialisation) by {TRAINER_NAME} on the dataset {data.name}. They derive from that dataset only.\n"
    )


def final_checkpoint(
    state_dict: dict[str, torch.Tensor], start: StartingPoint, data: TrainingData, epoch: int, log: dict[str, Any]
) -> dict[str, Any]:
    """The keys an nnU-Net trainer writes, with plain values only (loads with ``weights_only=True``)."""
    aucs = [v["auc"] for v in log.get("validation", [])]
    return {
        "network_weights": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
        "init_args": {
            "plans": start.plans,
            "configuration": start.configuration,
            "fold": FOLD,
            "dataset_json": dataset_json(start, data),
            "device": torch.device("cpu"),
        },
        "trainer_name": TRAINER_NAME,
        "current_epoch": int(epoch),
        "logging": {
            "train_losses": [float(e["loss"]) for e in log.get("epochs", [])],
            "val_auc": [float(a) for a in aucs],
        },
        "_best_ema": float(max(aucs)) if aucs else None,
        "grad_scaler_state": None,
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }


def save(path: Path, obj: dict[str, Any]) -> Path:
    """``torch.save`` that replaces ``path`` only when complete."""
    with atomic.replacing(path, make_parents=True) as tmp:
        torch.save(obj, tmp)
    return path


def write_folder_files(out: Path, start: StartingPoint, data: TrainingData) -> None:
    """Everything but the checkpoints: plans, dataset.json, metadata, LICENSE."""
    atomic.write_text(out / "plans.json", json.dumps(start.plans, indent=2), make_parents=True)
    atomic.write_text(out / "dataset.json", json.dumps(dataset_json(start, data), indent=2))
    for name, text in start.metadata_files.items():
        atomic.write_text(out / name, text)
    atomic.write_text(out / "LICENSE", licence_text(start, data))


def write_log(out: Path, log: dict[str, Any]) -> None:
    """``training_log.json`` and ``training_progress.png`` (loss per epoch, validation AUC)."""
    atomic.write_text(out / "training_log.json", json.dumps(log, indent=2))
    epochs = log.get("epochs", [])
    if not epochs:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..eval.report import save_figure

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([e["epoch"] for e in epochs], [e["loss"] for e in epochs], color="tab:blue", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (Dice + CE)", color="tab:blue")
    val = log.get("validation", [])
    if val:
        ax2 = ax.twinx()
        ax2.plot([v["epoch"] for v in val], [v["auc"] for v in val], "o-", color="tab:orange", label="validation AUC")
        ax2.set_ylabel("simulated-user AUC", color="tab:orange")
        ax2.set_ylim(0, 1)
    ax.set_title(log.get("description", "training"), fontsize=9)
    fig.tight_layout()
    save_figure(fig, out / "training_progress.png")
