"""The prompt groups of the dock widget: the output options, tools and actions, the initial mask (Qt widgets).

Every control calls the :class:`~.annotator.Annotator` directly (tools, polarity, Run, Undo, ...);
:meth:`PromptPanel.refresh` shows the annotator's state, and :meth:`PromptPanel.output_changed`
hands the output options to it.
"""

from __future__ import annotations

from napari.layers import Labels
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from ..core.prompts import PromptKind
from . import layers as L
from .annotator import Annotator, OutputMode, Tool
from .icons import tool_icon
from .restyle import restyle
from .setup_panel import fill_combo, layer_named

#: The output choice that makes a new labels layer.
NEW_LAYER = "<new layer>"
#: What each tool button does (its tooltip while the session takes that kind of prompt).
_LOCKED_TIP = "; sent markers are locked: Undo (Ctrl+Z) takes a prompt back"
TOOL_TIPS = {
    Tool.POINT: "Click a voxel of the object (P; P again: pan/zoom)" + _LOCKED_TIP,
    Tool.BBOX: "Drag a box around the object on a 2-D slice (B)" + _LOCKED_TIP,
    Tool.SCRIBBLE: "Paint a stroke on the object (S)",
    Tool.LASSO: "Hold and drag a closed outline around the object (L)" + _LOCKED_TIP,
}
MASK_TIP = "Start the current object from the voxels of a labels layer equal to value (refine: predict from it)"


class PromptPanel(QWidget):
    """Three groups for one :class:`Annotator`: "Output" (set before the first prompt), "Prompts" and
    "Initialize with mask"."""

    def __init__(self, annotator: Annotator, viewer):
        super().__init__()
        self.annotator = annotator
        self.viewer = viewer
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        for group in (self._build_output(), self._build_prompts(), self._build_mask()):
            root.addWidget(group)

    def _build_prompts(self) -> QGroupBox:
        a = self.annotator
        prompts = QGroupBox("Prompts (draw on any 2-D slice)")
        grid = QGridLayout(prompts)
        self.tool_buttons = {}
        for i, (tool, text) in enumerate(
            [
                (Tool.POINT, "Point (P)"),
                (Tool.BBOX, "BBox (B)"),
                (Tool.SCRIBBLE, "Scribble (S)"),
                (Tool.LASSO, "Lasso (L)"),
            ]
        ):
            b = QPushButton(tool_icon(tool), text)
            b.setCheckable(True)
            b.setToolTip(TOOL_TIPS[tool])
            b.clicked.connect(lambda _=False, t=tool: a.toggle_tool(t))
            grid.addWidget(b, 0, i)
            self.tool_buttons[tool] = b
        self.polarity_button = QPushButton()
        self.polarity_button.clicked.connect(a.toggle_polarity)
        grid.addWidget(self.polarity_button, 1, 0, 1, 2)
        self.autorun_check = QCheckBox("Auto-run")
        self.autorun_check.setChecked(True)
        self.autorun_check.toggled.connect(lambda on: setattr(a, "autorun", on))
        grid.addWidget(self.autorun_check, 1, 2)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(a.run)
        grid.addWidget(self.run_button, 1, 3)
        arrows = self.style()
        self.undo_button = QPushButton(arrows.standardIcon(QStyle.StandardPixmap.SP_ArrowBack), "Undo (Ctrl+Z)")
        self.undo_button.clicked.connect(a.undo)
        self.redo_button = QPushButton(
            arrows.standardIcon(QStyle.StandardPixmap.SP_ArrowForward), "Redo (Ctrl+Shift+Z)"
        )
        self.redo_button.clicked.connect(a.redo)
        self.reset_button = QPushButton("Reset object (R)")
        self.reset_button.clicked.connect(a.reset_object)
        self.next_button = QPushButton("Next object (M)")
        self.next_button.clicked.connect(a.next_object)
        for i, b in enumerate([self.undo_button, self.redo_button, self.reset_button, self.next_button]):
            grid.addWidget(b, 2 + i // 2, 2 * (i % 2), 1, 2)
        return prompts

    def _build_mask(self) -> QGroupBox:
        self.mask_group = seed = QGroupBox("Initialize with mask")
        seed.setToolTip(MASK_TIP)
        row = QHBoxLayout(seed)
        self.mask_combo = QComboBox()
        self.mask_value = QSpinBox()
        self.mask_value.setRange(1, 2**31 - 1)
        self.mask_refine = QCheckBox("refine")
        self.mask_button = QPushButton("Use mask")
        self.mask_button.clicked.connect(lambda: self.apply_mask())
        for w in (self.mask_combo, QLabel("value"), self.mask_value, self.mask_refine, self.mask_button):
            row.addWidget(w)
        row.setStretch(0, 3)  # the layer's name gets the room ("nnInteractive objects" was cut to "nnInterac")
        row.setStretch(2, 1)
        return seed

    def _build_output(self) -> QGroupBox:
        out = QGroupBox("Output")
        form = QFormLayout(out)
        self.output_combo = QComboBox()
        self.output_combo.currentIndexChanged.connect(self.output_changed)
        form.addRow("Labels layer", self.output_combo)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems([m.value for m in OutputMode])
        self.mode_combo.currentIndexChanged.connect(self.output_changed)
        form.addRow("Mode", self.mode_combo)
        self.class_spin = QSpinBox()
        self.class_spin.setRange(1, 65535)
        self.class_spin.valueChanged.connect(self.output_changed)
        form.addRow("Class id (semantic)", self.class_spin)
        self.overlap_combo = QComboBox()
        self.overlap_combo.addItems(["keep existing objects", "overwrite"])
        self.overlap_combo.currentIndexChanged.connect(self.output_changed)
        form.addRow("On overlap", self.overlap_combo)
        return out

    # ------------------------------------------------------------------ actions

    def apply_mask(self) -> None:
        """Start the current object from the chosen labels layer's value (Use mask)."""
        layer = layer_named(self.viewer, self.mask_combo.currentText(), Labels)
        if layer is None:
            return self.annotator.notify("Pick a labels layer to start from.", "warning")
        self.annotator.init_with_mask(layer, self.mask_value.value(), self.mask_refine.isChecked())

    def output_changed(self, *_) -> None:
        """Hand the output options (mode, class id, overlap, layer) to the annotator."""
        a = self.annotator
        a.mode = list(OutputMode)[self.mode_combo.currentIndex()]
        a.class_id = self.class_spin.value()
        a.overwrite = self.overlap_combo.currentIndex() == 1
        a.output_choice = layer_named(self.viewer, self.output_combo.currentText(), Labels)
        self.class_spin.setEnabled(a.mode is OutputMode.SEMANTIC)
        self.output_combo.setEnabled(a.mode is not OutputMode.SEPARATE)

    def set_label_choices(self, names: list[str]) -> None:
        """Offer the labels layers ``names`` as initial masks and outputs."""
        fill_combo(self.mask_combo, names)
        fill_combo(self.output_combo, [NEW_LAYER] + names)
        self.output_changed()

    # ------------------------------------------------------------------ state

    def refresh(self) -> None:
        """Show the annotator's tool, polarity and what can be done now."""
        a = self.annotator
        ready = a.ready
        for tool, button in self.tool_buttons.items():
            refusal = a.tool_refusal(tool)
            button.setEnabled(ready and refusal is None)
            button.setChecked(a.tool is tool)
            button.setToolTip(f"Off: {refusal}" if refusal else TOOL_TIPS[tool])
        refusal = a.kind_refusal(PromptKind.MASK)
        self.mask_group.setEnabled(refusal is None)
        self.mask_group.setToolTip(f"Off: {refusal}" if refusal else MASK_TIP)
        self.polarity_button.setText("Positive (T)" if a.positive else "Negative (T)")
        color = L.POSITIVE_COLOR if a.positive else L.NEGATIVE_COLOR
        restyle(self.polarity_button, f"background-color: {color}; color: black; font-weight: bold;")
        state = a.last_outcome.state if a.last_outcome is not None else None
        for b in (self.run_button, self.reset_button, self.next_button):
            b.setEnabled(ready)
        # nothing told yet (a fresh session): nothing to undo; while busy the press is queued behind the action
        self.undo_button.setEnabled(ready and ((state is not None and state.can_undo) or a.runner.busy))
        self.redo_button.setEnabled(ready and (state is not None and (state.can_redo or a.runner.busy)))


__all__ = ["MASK_TIP", "NEW_LAYER", "TOOL_TIPS", "PromptPanel"]
