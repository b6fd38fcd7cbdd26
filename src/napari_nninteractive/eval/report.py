"""Evaluation outputs: CSV (one row per object x interaction), text table, PNG plot, prompt logs."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..core import atomic, codec
from .runner import ObjectRun, drop_share

CSV_FIELDS = [
    "image",
    "label",
    "agent",
    "engine",
    "interaction",
    "prompt",
    "positive",
    "dice",
    "auc",
    "seconds",
    "forward_passes",
]


def write_csv(runs: list[ObjectRun], path: Path) -> Path:
    """One row per object x interaction; ``auc`` repeats the object's AUC on every row."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for run in runs:
        for s in run.steps:
            writer.writerow(
                {
                    "image": run.image,
                    "label": run.label,
                    "agent": run.agent,
                    "engine": run.engine,
                    "interaction": s.interaction,
                    "prompt": s.kind or "",
                    "positive": "" if s.positive is None else int(s.positive),
                    "dice": f"{s.dice:.6f}",
                    "auc": f"{run.auc:.6f}",
                    "seconds": f"{s.seconds:.4f}",
                    "forward_passes": s.forward_passes,
                }
            )
    return atomic.write_text(path, text.getvalue(), make_parents=True)


def _groups(runs: list[ObjectRun]) -> dict[tuple[str, str], list[ObjectRun]]:
    groups: dict[tuple[str, str], list[ObjectRun]] = defaultdict(list)
    for run in runs:
        groups[(run.engine, run.agent)].append(run)
    return groups


def summary_table(runs: list[ObjectRun]) -> str:
    """Per-object Dice@0..N, AUC and drop share, then the mean per engine and agent.

    ``drops`` is the share of correction rounds whose Dice fell by more than :data:`~.runner.DROP`
    (the object's own rounds, or every round of the engine and agent on the ``mean`` row).

    Columns are as wide as their longest entry: names left-aligned, numbers right-aligned; a blank
    line separates the engine/agent groups.
    """
    if not runs:
        return "no objects evaluated"
    n = len(runs[0].steps)
    head = ["engine", "agent", "label", *(f"D@{k}" for k in range(n)), "AUC", "drops", "s/int", "passes"]
    groups: list[list[list[str]]] = []
    for (engine, agent), group in _groups(runs).items():
        rows = []
        for run in group:
            secs = np.mean([s.seconds for s in run.steps])
            passes = np.mean([s.forward_passes for s in run.steps])
            rows.append(
                [
                    engine,
                    agent,
                    str(run.label),
                    *(f"{v:.3f}" for v in run.dices),
                    f"{run.auc:.3f}",
                    f"{run.drop_share:.2f}",
                    f"{secs:.2f}",
                    f"{passes:.1f}",
                ]
            )
        mean = np.mean([r.dices for r in group], axis=0)
        secs = np.mean([s.seconds for r in group for s in r.steps])
        passes = np.mean([s.forward_passes for r in group for s in r.steps])
        auc = np.mean([r.auc for r in group])
        drops = drop_share(group)
        rows.append(
            [
                engine,
                agent,
                "mean",
                *(f"{v:.3f}" for v in mean),
                f"{auc:.3f}",
                f"{drops:.2f}",
                f"{secs:.2f}",
                f"{passes:.1f}",
            ]
        )
        groups.append(rows)
    widths = [max(len(row[i]) for row in [head, *(r for rows in groups for r in rows)]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    header = line(head)
    lines = [header, "-" * len(header)]
    for rows in groups:
        lines.extend(line(row) for row in rows)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def plot_dice(runs: list[ObjectRun], path: Path, title: str = "") -> Path:
    """PNG: mean Dice vs interaction, one line per engine/agent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for (engine, agent), group in _groups(runs).items():
        mean = np.mean([r.dices for r in group], axis=0)
        auc = np.mean([r.auc for r in group])
        ax.plot(range(len(mean)), mean, marker="o", label=f"{engine} / {agent} (AUC {auc:.3f})")
    ax.set_xticks(range(len(runs[0].steps)) if runs else [])
    ax.set_xlabel("interaction")
    ax.set_ylabel("mean Dice")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title or f"{len(runs)} object run(s)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig: Any, path: Path) -> Path:
    """Write a matplotlib figure as PNG, replacing ``path`` only when complete; the figure is closed."""
    import matplotlib.pyplot as plt

    try:
        with atomic.replacing(path, make_parents=True) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path


def write_prompt_log(run: ObjectRun, path: Path) -> Path:
    """The object's prompts in the ``nninteractive-segment`` prompt-file format (exact replay).

    Items are :func:`..core.codec.encode`'s (scribbles and lassos as voxel lists), which prompt
    files read as they are.
    """
    items = [codec.encode(p) for p in run.prompts]
    return atomic.write_text(path, json.dumps({"interactions": items}), make_parents=True)


def prompt_log_name(run: ObjectRun) -> str:
    """File name of a run's prompt log: ``<agent>_label<value>.json`` (engine-safe characters)."""
    return f"{run.agent}_label{run.label}.json"
