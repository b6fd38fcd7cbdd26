"""The "Objects" group of the dock widget: the object list and export (Qt widgets).

Each row is one object: its name (editable), label value on its colour, and a visibility
checkbox. Clicking a row makes that object the current one, so the next prompts refine it with
its own prompt history; **Delete object** erases only that object's voxels. **Export…** writes all
objects as one label map (instance or semantic) as NIfTI, TIFF, zarr or npz, on a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QFont
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHeaderView,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
)

from .annotator import Annotator

NAME, LABEL, VISIBLE = range(3)


class ObjectsPanel(QGroupBox):
    """Object list plus export, for one :class:`Annotator`.

    ``image_ref`` returns the annotated image's reference (for session sources); ``report``
    shows ``(message, error)`` in the widget's status line.
    """

    def __init__(self, annotator: Annotator, image_ref: Callable[[], object], report: Callable[[str, bool], None]):
        super().__init__("Objects")
        self.annotator = annotator
        self.image_ref = image_ref
        self.report = report
        self.export_worker = None
        self._shown = None
        grid = QGridLayout(self)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Object", "Label", "Visible"])
        self.table.horizontalHeader().setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.table.setMinimumHeight(120)
        self.table.setMaximumHeight(180)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setToolTip("Click an object to keep refining it; double-click its name to rename it.")
        self.table.cellClicked.connect(self._clicked)
        self.table.itemChanged.connect(self._item_changed)
        grid.addWidget(self.table, 0, 0, 1, 4)
        self.delete_button = QPushButton("Delete object")
        self.delete_button.setToolTip("Erase the selected object's voxels (other objects stay)")
        self.delete_button.clicked.connect(lambda: self.delete_selected())
        grid.addWidget(self.delete_button, 1, 0)
        self.format_combo = QComboBox()
        from ..io.formats import formats  # the label-map formats of the one format table

        self.format_combo.addItems([f.name for f in formats("write_label_map")])
        self.kind_combo = QComboBox()
        self.kind_combo.addItems(["instance", "semantic"])
        self.kind_combo.setToolTip("instance: objects get 1..N in list order; semantic: each object's label value")
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(lambda: self.export())
        for i, w in enumerate((self.format_combo, self.kind_combo, self.export_button)):
            grid.addWidget(w, 1, 1 + i)

    # ------------------------------------------------------------------ list

    def refresh(self) -> None:
        """Show the annotator's objects (rebuilt only when something shown changed)."""
        a = self.annotator
        rows = (
            [(i, t.name, t.value, t.layer.name, t.visible, a.table.object_color(i)) for i, t in a.table.objects()]
            if a.ready
            else []
        )
        state = (tuple(rows), a.object_id if a.ready else None)
        ready = a.ready
        for w in (self.delete_button, self.export_button):
            w.setEnabled(ready and bool(rows))
        if state == self._shown:
            return
        self._shown = state
        self.table.blockSignals(True)
        self.table.setRowCount(len(rows))
        for r, (object_id, name, value, layer_name, visible, rgba) in enumerate(rows):
            item = QTableWidgetItem(name)
            item.setData(Qt.ItemDataRole.UserRole, object_id)
            item.setToolTip(f"in layer '{layer_name}'")
            font = QFont()
            font.setBold(object_id == a.object_id)
            item.setFont(font)
            label = QTableWidgetItem(str(value))
            label.setFlags(label.flags() & ~Qt.ItemFlag.ItemIsEditable)
            label.setBackground(QColor.fromRgbF(*rgba[:3], 1.0))
            label.setForeground(QColor(_text_on(rgba)))
            check = QTableWidgetItem()
            check.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
            check.setCheckState(Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked)
            for col, it in ((NAME, item), (LABEL, label), (VISIBLE, check)):
                self.table.setItem(r, col, it)
            if object_id == a.object_id:
                self.table.selectRow(r)
        self.table.blockSignals(False)

    def object_at(self, row: int) -> int | None:
        item = self.table.item(row, NAME)
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def _clicked(self, row: int, column: int) -> None:
        object_id = self.object_at(row)
        if object_id is not None and column != VISIBLE:
            self.annotator.select_object(object_id)

    def _item_changed(self, item: QTableWidgetItem) -> None:
        object_id = self.object_at(item.row())
        if object_id is None:
            return
        if item.column() == NAME:
            self.annotator.table.rename(object_id, item.text())
        elif item.column() == VISIBLE:
            self.annotator.table.set_visible(object_id, item.checkState() == Qt.CheckState.Checked)

    def delete_selected(self, confirm: bool = True) -> None:
        rows = self.table.selectionModel().selectedRows()
        object_id = self.object_at(rows[0].row()) if rows else None
        if object_id is None:
            return self.annotator.notify("Select the object to delete in the list first.", "warning")
        name = self.annotator.targets[object_id].name
        if (
            confirm
            and QMessageBox.question(self, "Delete object", f"Erase '{name}' from its labels layer?")
            != QMessageBox.StandardButton.Yes
        ):
            return
        self.annotator.delete_object(object_id)
        self.report(f"Deleted '{name}'.", False)

    # ------------------------------------------------------------------ export

    def default_export_path(self) -> Path:
        from ..io.export import default_path

        layer = self.annotator.view.layer
        return default_path(
            layer.name,
            getattr(getattr(layer, "source", None), "path", None),
            self.format_combo.currentText(),
            self.kind_combo.currentText(),
        )

    def export(self, path: str | Path | None = None) -> None:
        """Write all objects as one label map (format from the file name) in the background."""
        from ..io.export import format_of, nifti_affine
        from ..io.formats import dialog_filter
        from ..io.volumes import VolumeIOError
        from .persist import export_worker, object_sources

        a = self.annotator
        if not a.ready or not a.table.objects():
            return a.notify("There are no objects to export yet: segment an object first.", "warning")
        if self.export_worker is not None:
            return a.notify("An export is running; wait for it to finish.", "warning")
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Export objects", str(self.default_export_path()), dialog_filter("write_label_map", "Label map")
            )
            if not path:
                return
        try:
            fmt = format_of(path)
        except VolumeIOError as exc:
            return self.report(str(exc), True)
        layer, affine, origin = a.view.layer, None, ""
        if fmt == "nifti":
            from .layers import output_shape

            affine, origin = nifti_affine(
                output_shape(a.view), getattr(layer.source, "path", None), layer.scale, layer.translate, layer.metadata
            )
        kind = self.kind_combo.currentText()
        self.export_worker = export_worker(object_sources(a, self.image_ref()), path, kind, affine)
        self.export_worker.returned.connect(lambda result: self._exported(result, kind, origin))
        self.export_worker.start()

    def _exported(self, result, kind: str, origin: str) -> None:
        self.export_worker = None
        done, error = result
        if error:
            return self.report(error, True)
        path, overlaps = done
        text = f"Exported the objects as {'an' if kind[0] in 'aeiou' else 'a'} {kind} map to {path}" + (
            f" (with {origin})." if origin else "."
        )
        if overlaps:  # a warning (notified too): some object is not whole in the file
            return self.report(f"{text} {overlaps}", True)
        self.report(text, False)


def _text_on(rgba) -> str:
    """Black or white, whichever reads better on the colour ``rgba`` (by its luminance)."""
    r, g, b = (float(c) for c in rgba[:3])
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.4 else "white"
