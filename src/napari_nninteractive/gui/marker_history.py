"""Which sent markers the current object's prompt history still holds (markers follow Undo and Redo).

Every sent prompt leaves a marker on its prompt layer (a point, a box, a lasso outline, a scribble
stroke). The session's prompt history is the truth: Undo takes its newest prompts out, Redo puts
them back, a failed prediction leaves its prompts out. :class:`MarkerHistory` keeps the markers in
the order they were sent and, whenever the session is idle, compares the history's length with the
markers it holds: the newest markers beyond the history are hidden (and shown again on Redo).
Hidden markers that can never come back (no Redo left, or a new prompt replaced the Redo) are
dropped. Prompts that came without a marker (an object reopened with its earlier prompts, an
initial mask) count as history before the markers: the count starts when the markers were cleared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .prompt_layers import Tool


@dataclass
class Drawn:
    """A sent prompt's marker: ``tool`` and what redraws it (points: coordinates and colour; boxes and
    lassos: vertices, colour and shape type; scribbles: voxel indices and the layer value)."""

    tool: Tool
    marker: tuple


class MarkerHistory:
    """The markers of the current object's sent prompts, oldest first; the first :attr:`shown` are shown."""

    def __init__(self) -> None:
        self.drawn: list[Drawn] = []
        #: How many of :attr:`drawn` are in the history (the rest were undone).
        self.shown = 0
        self._base: int | None = None  # history entries before the first marker (None: count at the next follow)

    def clear(self) -> None:
        """The markers were taken off the layers (reset, next object, reopened object, initial mask)."""
        self.drawn, self.shown, self._base = [], 0, None

    def add(self, drawn: list[Drawn]) -> None:
        """Markers of prompts just sent; undone ones go for good (a new prompt ends their Redo)."""
        del self.drawn[self.shown :]
        self.drawn.extend(drawn)
        self.shown = len(self.drawn)

    def follow(self, length: int, can_redo: bool) -> list[tuple[Drawn, bool]]:
        """Match the history's ``length`` (the session idle); returns the markers to hide (``False``) or to
        show again (``True``)."""
        if self._base is None:
            self._base = length - len(self.drawn)
        shown = min(max(length - self._base, 0), len(self.drawn))
        lo, hi = sorted((shown, self.shown))
        changed = [(d, shown > self.shown) for d in self.drawn[lo:hi]]
        self.shown = shown
        if not can_redo:
            del self.drawn[shown:]
        if not self.drawn:
            self._base = None
        return changed

    def shown_markers(self, tool: Tool) -> list[tuple]:
        """The shown markers of ``tool``, oldest first."""
        return [d.marker for d in self.drawn[: self.shown] if d.tool is tool]


__all__ = ["Drawn", "MarkerHistory"]
