"""Trim napari's layer controls of our prompt layers to what means something there.

The prompt colours follow the polarity, and symbol, blending, text and the labels' editing
options do nothing useful on a prompt layer; only opacity and the marker size (point size, edge
width, brush size) stay. napari builds those controls itself and has no public API for them:
this looks them up by their row labels and hides the other rows; where napari lays them out
differently, nothing is hidden (the controls then work as in plain napari).
"""

from __future__ import annotations

import logging

from qtpy.QtWidgets import QApplication, QFormLayout, QLabel, QWidget

log = logging.getLogger(__name__)

#: The rows kept (napari's row labels, lower case, without the colon).
KEEP = frozenset({"opacity", "point size", "edge width", "brush size"})


def controls_of(layer) -> QWidget | None:
    """napari's control widget of ``layer`` (a ``Qt*Controls`` widget whose ``layer`` is it), found through Qt."""
    app = QApplication.instance()
    for top in app.topLevelWidgets() if app is not None else ():
        for widget in top.findChildren(QWidget):
            if type(widget).__name__.endswith("Controls") and getattr(widget, "layer", None) is layer:
                return widget
    return None


def trim_controls(layer) -> int:
    """Hide the rows of ``layer``'s napari controls that are not in :data:`KEEP`; returns how many were hidden."""
    controls = controls_of(layer)
    if controls is None:  # no Qt window (a headless viewer) or another napari layout
        return 0
    form = controls.layout()
    if not isinstance(form, QFormLayout):
        return 0
    hidden = 0
    for row in range(form.rowCount()):
        label = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
        field = form.itemAt(row, QFormLayout.ItemRole.FieldRole)
        widget = label.widget() if label is not None else None
        if not isinstance(widget, QLabel) or field is None or field.widget() is None:
            continue  # the mode buttons (no label) and rows not made of one widget stay
        name = " ".join(widget.text().split()).rstrip(":").lower()
        if name and name not in KEEP:
            widget.setVisible(False)
            field.widget().setVisible(False)
            hidden += 1
    log.debug("hid %d control rows of %s", hidden, layer.name)
    return hidden


__all__ = ["KEEP", "controls_of", "trim_controls"]
