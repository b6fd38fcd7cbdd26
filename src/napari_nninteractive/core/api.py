"""The one session interface every backend implements, and the change value its operations return.

The widget, the command lines and the evaluation talk only to a :class:`SegmentationSession`:
the local :class:`~.session.Session` (an engine in this process) implements it, and so can a
remote client or a learned engine. Each operation returns a :class:`Change` that says everything a
caller needs to know afterwards (which region changed and its voxels, undo/redo availability,
queued prompts, the object's prompt history, notices), so nobody reads session state on the side.

Typical use::

    change = session.add_prompts([Point((40, 100, 120), positive=True)])
    labels[bbox_to_slices(change.bbox)] = change.values      # only the changed region
    if change.notices: print(*change.notices)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .engines.base import ProgressEvent
from .geometry import BBox
from .prompts import Prompt, PromptKind
from .undo import Rounds


@dataclass(frozen=True)
class Capabilities:
    """What a session's backend can do, for a UI to enable its tools and say what runs."""

    #: Short name of the method, e.g. ``"nnInteractive network"``.
    name: str
    #: One line for logs and the UI, e.g. ``"nnInteractive network on cuda, patch (192, 192, 192)"``.
    description: str
    #: Prompt kinds the backend understands.
    supported_kinds: frozenset[PromptKind]
    #: Whether boxes may be 3-D (no axis of extent 1).
    supports_3d_box: bool = False
    #: Image channels needed, or ``None`` for any number.
    n_image_channels: int | None = None
    #: Undo levels kept, or ``None`` for unlimited.
    undo_depth: int | None = None
    #: Whether undone actions can be redone.
    redo: bool = True
    #: The model's licence, when the backend runs a model with one.
    licence: str | None = None
    #: ``"cpu"``, ``"cuda"``, ``"mps"``, ... when the backend runs on one device; ``None`` otherwise.
    device: str | None = None
    #: What :attr:`Change.forward_passes` counts: ``"forward pass"`` or, for solvers, ``"solver run"``.
    pass_name: str = "forward pass"


@dataclass(frozen=True)
class Change:
    """What one session operation did to the current object.

    ``bbox`` is the half-open region whose voxels may have changed (``None``: nothing changed) and
    ``values`` the object's 0/1 mask there after the operation (a copy the caller owns).
    ``flipped`` is a bool array of the ``bbox`` region, set where the value changed, when the session
    knows it (``None``: compare the whole region). The other fields describe the session after the
    operation.
    """

    bbox: BBox | None = None
    values: np.ndarray | None = None
    flipped: np.ndarray | None = None
    can_undo: bool = False
    can_redo: bool = False
    #: Prompts queued and not yet predicted.
    pending: int = 0
    #: The current object's prompts, oldest first (what :meth:`SegmentationSession.restore_object` takes back).
    history: tuple[Prompt, ...] = ()
    #: How ``history`` was predicted (:data:`.undo.Rounds`; what ``restore_object`` takes back to replay it
    #: exactly); ``None`` where the session does not know (a remote one: its undo steps are the server's).
    rounds: Rounds | None = ()
    #: Messages the user should see about this operation (e.g. a fall back to the CPU).
    notices: tuple[str, ...] = ()
    #: Forward passes (or solver runs) the operation took.
    forward_passes: int = 0

    @classmethod
    def of(
        cls,
        mask: np.ndarray,
        box: BBox | None,
        flipped: np.ndarray | None,
        state: tuple[bool, bool, int, tuple[Prompt, ...], Rounds | None],
        notices: tuple[str, ...] = (),
        passes: int = 0,
    ) -> Change:
        """A session's change: ``mask``'s voxels in ``box`` (copied), and its state
        ``(can_undo, can_redo, pending, history, rounds)``."""
        values = None if box is None else mask[tuple(slice(lo, hi) for lo, hi in box)].copy()
        return cls(box, values, flipped if box is not None else None, *state, notices, passes)


def paste(change: Change, buffer: np.ndarray) -> np.ndarray:
    """Write the change's voxels into ``buffer`` (an image-shaped copy of the mask a caller keeps)."""
    if change.bbox is not None and change.values is not None:
        buffer[tuple(slice(lo, hi) for lo, hi in change.bbox)] = change.values
    return buffer


ProgressCallback = Callable[[ProgressEvent], None]
CancelCheck = Callable[[], bool]


@runtime_checkable
class SegmentationSession(Protocol):
    """Interactive segmentation of one object at a time in one image (see :mod:`.api`).

    Operations run one at a time (a session is not thread-safe); a prediction that is cancelled
    or fails leaves the mask unchanged and its prompts queued.
    """

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(Z, Y, X)`` of the image (a 2-D image has ``Z == 1``)."""
        ...

    def set_image(self, image: np.ndarray) -> None:
        """Use ``image`` (``(Z, Y, X)``, ``(C, Z, Y, X)`` or ``(Y, X)``); starts a fresh object."""
        ...

    def set_run_control(self, progress: ProgressCallback | None, should_cancel: CancelCheck | None) -> None:
        """Receive progress events, and poll ``should_cancel`` between expensive steps."""
        ...

    def add_prompts(self, prompts: Sequence[Prompt], run: bool = True) -> Change:
        """Validate and queue ``prompts``; with ``run``, predict with everything queued."""
        ...

    def predict(self) -> Change:
        """Predict with every queued prompt."""
        ...

    def undo(self) -> Change: ...

    def redo(self) -> Change: ...

    def reset_object(self) -> Change:
        """Clear the current object's mask and prompts (undoable)."""
        ...

    def next_object(self) -> Change:
        """Finish the current object and start an empty one (not undoable).

        The change describes the *finished* object: its bbox, its voxels there and its history.
        """
        ...

    def restore_object(self, mask: np.ndarray, prompts: Sequence[Prompt] = (), rounds: Rounds | None = None) -> Change:
        """Make ``mask`` (full size, 0/1) with ``prompts`` (predicted as ``rounds`` said) the current object,
        without predicting."""
        ...

    def read_mask(self) -> np.ndarray:
        """A copy of the current object's whole 0/1 mask (``uint8``, image grid)."""
        ...

    def state(self) -> Change:
        """The session now, as a change of nothing (undo/redo availability, queued prompts, history)."""
        ...


__all__ = ["CancelCheck", "Capabilities", "Change", "ProgressCallback", "SegmentationSession", "paste"]
