"""The fold layout of a model folder (``fold_X/checkpoint_final.pth``), without importing torch."""

from __future__ import annotations

from pathlib import Path

#: The checkpoint file in each ``fold_X`` folder.
CHECKPOINT_NAME = "checkpoint_final.pth"


def folds(folder: Path) -> list[str]:
    """The fold names (``"0"``, ``"all"``, ...) of ``folder``'s ``fold_*`` subfolders."""
    return sorted(p.name[5:] for p in folder.glob("fold_*") if p.is_dir())


def list_folds(folder: str | Path) -> list[str]:
    """The fold names of ``folder``; ``[]`` if it is no folder (cheap: a directory listing)."""
    path = Path(folder).expanduser()
    try:
        return folds(path) if path.is_dir() else []
    except OSError:
        return []


def has_checkpoint(folder: Path) -> bool:
    """Whether any fold of ``folder`` holds a checkpoint file."""
    return any(folder.glob(f"fold_*/{CHECKPOINT_NAME}"))


__all__ = ["CHECKPOINT_NAME", "folds", "has_checkpoint", "list_folds"]
