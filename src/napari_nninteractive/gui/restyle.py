"""Style sheets set only when they change.

``QWidget.setStyleSheet`` re-polishes the widget and repaints it (and the parents behind it) even
when the sheet is the same, and the dock refreshes after every prediction: calling it blindly made
each click repaint much of the dock (slow under software rendering, and time taken from the
prediction's cores).
"""

from __future__ import annotations

from qtpy.QtWidgets import QWidget


def restyle(widget: QWidget, sheet: str) -> None:
    """Give ``widget`` the style sheet ``sheet`` unless it has it already."""
    if widget.styleSheet() != sheet:
        widget.setStyleSheet(sheet)


__all__ = ["restyle"]
