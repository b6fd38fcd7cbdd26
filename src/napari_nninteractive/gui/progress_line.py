"""One line of text whose changes repaint only itself (what runs, in the dock's bottom row).

A ``QLabel`` asks its layout to be recomputed on every ``setText``; in napari that request climbs
to the main window, and each relayout repaints and recomposes the whole window. On a machine
without a GPU that costs several milliseconds of the same cores the prediction runs on, every time
the progress text changes. This line has a fixed height and draws its own text, so a new text is
one repaint of the line and nothing else.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtGui import QPainter
from qtpy.QtWidgets import QSizePolicy, QWidget


class ProgressLine(QWidget):
    """A single line of text, elided to the width it is given (the full text is its tooltip)."""

    def __init__(self, text: str = "") -> None:
        super().__init__()
        self._text = text
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(self.fontMetrics().height() + 4)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:
        if text != self._text:
            self._text = text
            self.setToolTip(text)
            self.update()

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        shown = self.fontMetrics().elidedText(self._text, Qt.TextElideMode.ElideRight, self.width())
        painter.drawText(self.rect(), int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), shown)
        painter.end()


__all__ = ["ProgressLine"]
