"""Validation with the evaluation's simulated users on held-out cases (Dice@k, AUC, its CSV and plot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.engines.network import NetworkEngine
from ..core.model import LoadedModel
from ..core.session import Session
from ..eval import report
from ..eval.runner import ObjectRun, evaluate
from .dataset import ObjectTable
from .start import StartingPoint


def object_labels(table: ObjectTable, case: int, limit: int | None = None) -> np.ndarray:
    """Case ``case``'s objects (label values or instances, as the table has them) numbered 1..n."""
    refs = [r for r in table.refs if r.case == case][:limit]
    labels = np.zeros(table.data.cases[case].labels.shape, np.uint16)
    for k, ref in enumerate(refs, start=1):
        labels[table.mask(ref) & (labels == 0)] = k
    return labels


def validate(
    network: torch.nn.Module,
    start: StartingPoint,
    table: ObjectTable,
    device: torch.device,
    n_interactions: int = 5,
    seed: int = 0,
    max_objects: int = 4,
    autozoom: bool = False,
) -> list[ObjectRun]:
    """Every held-out case's first ``max_objects`` objects, prompted and corrected by the random agent.

    Runs the network through the plugin's own session and network engine, as a user would, but with
    AutoZoom off unless ``autozoom``: an undertrained network's masks touch the window's borders, and
    AutoZoom would then zoom out with dozens of passes per step, so validation would cost more than
    training. The network is left in training mode afterwards.
    """
    model = LoadedModel(network, start.patch_size, start.n_image_channels, start.metadata)
    session = Session(NetworkEngine(model, device=str(device), autozoom=autozoom))
    try:
        return evaluate_cases(session, table, n_interactions, seed, max_objects, engine="trained")
    finally:
        network.train()


def evaluate_cases(
    session: Session,
    table: ObjectTable,
    n_interactions: int = 5,
    seed: int = 0,
    max_objects: int | None = None,
    engine: str | None = None,
) -> list[ObjectRun]:
    """The random agent on every case's first ``max_objects`` objects (all when ``None``), through ``session``."""
    runs: list[ObjectRun] = []
    for i, case in enumerate(table.data.cases):
        labels = object_labels(table, i, max_objects)
        if not labels.any():
            continue
        session.set_image(case.image)
        runs += evaluate(session, labels, ("random",), n_interactions, seed, image=case.name, engine=engine)
    return runs


def write_validation(runs: list[ObjectRun], folder: Path, title: str) -> None:
    """The evaluation's files: ``results.csv``, ``summary.txt``, ``dice.png``."""
    from ..core import atomic

    report.write_csv(runs, folder / "results.csv")
    atomic.write_text(folder / "summary.txt", report.summary_table(runs))
    report.plot_dice(runs, folder / "dice.png", title=title)


def mean_auc(runs: list[ObjectRun]) -> float:
    return float(np.mean([r.auc for r in runs])) if runs else float("nan")
