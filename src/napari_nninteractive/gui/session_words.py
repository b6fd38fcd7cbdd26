"""What the dock says when a session starts: the facts line, the status line and the CPU warning.

Plain functions of the session's capabilities and the Setup choice (no Qt), so the wording lives
in one place and tests can read it without a viewer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..core.engines.registry import resolve
from ..core.prompts import PromptKind

#: How the status line starts once a session is attached (Local, Remote).
STARTED = ("Initialized", "Connected")
_KIND_NAMES = {"point": "point", "bbox": "box", "scribble": "scribble", "lasso": "lasso", "mask": "initial mask"}


def undo_words(caps) -> str:
    """What a session's undo offers, in one sentence (``Undo: one level on this server (no redo).``)."""
    depth, redo = caps.undo_depth, caps.redo
    if depth == 0:
        return "Undo: not offered by this server."
    levels = "unlimited" if depth is None else "one level" if depth == 1 else f"{depth} levels"
    return f"Undo: {levels} on this server" + (", with redo." if redo else " (no redo).")


def kinds_words(caps) -> str:
    """The prompt kinds a session takes, e.g. ``point, box, scribble, lasso, initial mask``."""
    return ", ".join(_KIND_NAMES[k.value] for k in PromptKind if k in caps.supported_kinds) or "none"


@dataclass(frozen=True)
class StartWords:
    """``facts``: the parts of the facts line; ``status``: the status lines; ``cpu_warning``: or ``None``."""

    facts: tuple[str | None, ...]
    status: list[str]
    cpu_warning: str | None


def describe_start(session, choice) -> StartWords:
    """What to say once ``session`` (made from the Setup ``choice``: local or remote) is attached."""
    caps = session.capabilities
    fold = None if choice.remote else choice.fold
    patch = _patch_size(session)
    network = patch is not None or (not choice.remote and resolve(choice.engine, choice.folder).needs_model)
    what = caps.description if choice.remote else choice.label  # the model folder's name, or the engine
    facts = (
        "The" + what[3:] if what.startswith("the ") else what,
        f"server {choice.label}" if choice.remote else None,
        caps.device,
        ("AutoZoom on" if choice.autozoom else "AutoZoom off") if network else None,
        f"licence: {caps.licence}" if caps.licence else None,
    )
    status = [f"{STARTED[choice.remote]}: {caps.description}" + (f", fold {fold}." if fold else ".")]
    if choice.remote:
        status.append(f"{undo_words(caps)} Prompts: {kinds_words(caps)}.")
    elif caps.supported_kinds != frozenset(PromptKind):
        status.append(f"This engine takes {kinds_words(caps)} prompts only; the other tools are off.")
    warning = None
    if caps.device == "cpu" and network and (patch is None or math.prod(patch) >= SLOW_PATCH_VOXELS):
        there = "The server runs its network on a CPU" if choice.remote else "The network runs on the CPU"
        warning = (
            f"{there}: the full nnInteractive model needs about a minute per forward pass there; a GPU makes "
            "it interactive."
        )
    return StartWords(facts, status, warning)


#: From this patch size on (128^3 voxels) a CPU forward pass takes many seconds: the slow-CPU warning is shown.
#: Smaller networks (e.g. one trained with ``nninteractive-train --plans cpu-small``, 32^3) run in a fraction of
#: a second on a CPU.
SLOW_PATCH_VOXELS = 128**3


def _patch_size(session) -> tuple[int, ...] | None:
    """The network's patch size: from a server's snapshot, or the local engine; ``None`` when unknown."""
    patch = (getattr(session, "snapshot", None) or {}).get("patch_size")
    if patch is None:
        patch = getattr(getattr(session, "engine", None), "patch_size", None)
    return tuple(int(p) for p in patch) if patch else None


__all__ = ["STARTED", "StartWords", "describe_start", "kinds_words", "undo_words"]
