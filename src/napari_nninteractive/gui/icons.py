"""Icons of the prompt tools, drawn with QPainter (no image files, any Qt binding, any theme).

Each icon is the mark the tool leaves on the slice: a dot (point), a rectangle (box), a stroke
(scribble) and a closed loop (lasso), in a light grey that reads on napari's dark and light themes.
"""

from __future__ import annotations

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

from .prompt_layers import Tool

_INK = QColor(200, 200, 200)


def _path(tool: Tool, s: float) -> QPainterPath:
    path = QPainterPath()
    if tool is Tool.POINT:
        path.addEllipse(QPointF(s / 2, s / 2), s * 0.18, s * 0.18)
    elif tool is Tool.BBOX:
        path.addRect(QRectF(s * 0.15, s * 0.22, s * 0.7, s * 0.56))
    elif tool is Tool.SCRIBBLE:
        path.moveTo(s * 0.1, s * 0.7)
        path.cubicTo(s * 0.3, s * 0.1, s * 0.45, s * 0.95, s * 0.62, s * 0.45)
        path.cubicTo(s * 0.72, s * 0.2, s * 0.85, s * 0.3, s * 0.9, s * 0.25)
    else:  # lasso: a closed, uneven loop
        path.moveTo(s * 0.5, s * 0.12)
        path.cubicTo(s * 0.95, s * 0.1, s * 0.95, s * 0.75, s * 0.55, s * 0.85)
        path.cubicTo(s * 0.15, s * 0.95, s * 0.02, s * 0.45, s * 0.25, s * 0.25)
        path.closeSubpath()
    return path


def tool_icon(tool: Tool, size: int = 32) -> QIcon:
    """The icon of ``tool`` (a ``size`` x ``size`` pixmap)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    pen = QPen(_INK, max(1.5, size / 14))
    painter.setPen(pen)
    if tool is Tool.POINT:
        painter.setBrush(_INK)
    painter.drawPath(_path(tool, float(size)))
    painter.end()
    return QIcon(pixmap)


__all__ = ["tool_icon"]
