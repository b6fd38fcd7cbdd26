"""One line of text whose changes repaint only itself (what runs, in the dock's bottom row).

A ``QLabel`` asks its layout to be recomputed on every ``setText``; in napari that request climbs
to the main window, and each relayout repaints and recomposes the whole window. On a machine
without a GPU that costs several milliseconds of the same cores the prediction runs on, every time
the progress text changes. This line keeps its text itself and draws it, elided, at a fixed
height, so a new text is one repaint of the line and nothing else. It is still a ``QLabel`` for
napari's style sheet (its font size) and the theme's colours; its height follows font changes.
"""

from __future__ import annotations

from qtpy.QtCore import QEvent, Qt
from qtpy.QtGui import QPainter
from qtpy.QtWidgets import QLabel, QSizePolicy


class ProgressLine(QLabel):
    """A single line of text, elided to the width it is given (the full text is its tooltip)."""

    def __init__(self, text: str = "") -> None:
        super().__init__()  # QLabel's own text stays empty: it would ask for a relayout on every change
        self._text = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self._fit_height()
        self.setText(text)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:
        if text != self._text:
            self._text = text
            self.setToolTip(text)
            self.setAccessibleName(text)  # what a screen reader says
            self.update()

    def _fit_height(self) -> None:
        self.setFixedHeight(self.fontMetrics().height() + 4)

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._fit_height()  # a larger font (napari's font size setting) gets a taller line

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        shown = self.fontMetrics().elidedText(self._text, Qt.TextElideMode.ElideRight, self.width())
        painter.drawText(self.rect(), int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), shown)
        painter.end()


__all__ = ["ProgressLine"]
