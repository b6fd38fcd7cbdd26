"""The prompt layers of one image: tools, polarity and keys; each edit becomes a prompt (no Qt widgets).

:class:`PromptLayers` owns the four layers (points, boxes, scribbles, lassos) drawn over the
annotated image. A finished edit is converted into a core prompt in voxel coordinates and emitted
as :attr:`PromptLayers.prompt`; keys that act on the object (reset, next, undo, redo) are emitted
as :attr:`PromptLayers.command`. User mistakes are emitted as :attr:`PromptLayers.message`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import numpy as np
from napari.layers import Labels, Points, Shapes
from napari.utils.colormaps import DirectLabelColormap
from psygnal import Signal

from ..core.prompts import Prompt, PromptError
from . import layers as L


class Tool(enum.Enum):
    """Prompt tools and their keys."""

    POINT = "P"
    BBOX = "B"
    SCRIBBLE = "S"
    LASSO = "L"


_TOOL_MODES = {Tool.POINT: "add", Tool.BBOX: "add_rectangle", Tool.SCRIBBLE: "paint", Tool.LASSO: "add_polygon_lasso"}
# scribble layer values: fresh positive / negative stroke, consumed positive / negative
_SCRIBBLE_COLORS = {
    None: "transparent",
    0: "transparent",
    1: L.POSITIVE_COLOR,
    2: L.NEGATIVE_COLOR,
    3: L.POSITIVE_COLOR,
    4: L.NEGATIVE_COLOR,
}
#: Keys that act on the object rather than on the tools, and the command each emits.
COMMAND_KEYS = {"R": "reset", "M": "next", "Control-Z": "undo", "Control-Shift-Z": "redo"}
NOT_READY = "Initialize first (pick an image layer and press Initialize)."


class PromptLayers:
    """Prompt layers over one image view; :meth:`create` them for a view, :meth:`remove` them after."""

    #: A prompt built from a finished edit (voxel coordinates of the annotated image).
    prompt = Signal(object)
    #: ``"reset"``, ``"next"``, ``"undo"`` or ``"redo"``, from a key.
    command = Signal(str)
    #: ``(text, level)`` for the user; level ``"info"`` or ``"warning"``.
    message = Signal(str, str)
    #: The tool or the polarity changed.
    changed = Signal()

    def __init__(self, viewer):
        self.viewer = viewer
        self.view: L.ImageView | None = None
        self.layers: dict[Tool, object] = {}
        self.tool: Tool | None = None
        #: Why a tool cannot be used now (``None``: it can); the annotator asks its session.
        self.refuse: Callable[[Tool], str | None] = lambda tool: None
        self.positive = True
        self._stroke_pending = False
        viewer.dims.events.ndisplay.connect(self._on_ndisplay)

    # ------------------------------------------------------------------ lifecycle

    def create(self, view: L.ImageView) -> None:
        """Add the four prompt layers for ``view`` (same transform as its image layer) and bind the keys."""
        self.view = view
        kw = L.copy_transform(view.layer)
        nd = view.layer.ndim
        pts = Points(
            ndim=nd, name=L.PROMPT_LAYER_PREFIX + "points", size=6, border_width=0, face_color=L.POSITIVE_COLOR, **kw
        )
        boxes = Shapes(
            ndim=nd,
            name=L.PROMPT_LAYER_PREFIX + "boxes",
            edge_width=1.5,
            face_color="transparent",
            edge_color=L.POSITIVE_COLOR,
            **kw,
        )
        lassos = Shapes(
            ndim=nd,
            name=L.PROMPT_LAYER_PREFIX + "lassos",
            edge_width=1.5,
            face_color="transparent",
            edge_color=L.POSITIVE_COLOR,
            **kw,
        )
        shape = view.layer.data[0].shape if view.layer.multiscale else view.layer.data.shape
        shape = shape[:-1] if view.layer.rgb else shape
        scribbles = Labels(
            np.zeros(shape, np.uint8),
            name=L.PROMPT_LAYER_PREFIX + "scribbles",
            opacity=0.9,
            colormap=DirectLabelColormap(color_dict=_SCRIBBLE_COLORS),
            **kw,
        )
        scribbles.n_edit_dimensions = 2
        scribbles.brush_size = 2
        scribbles.selected_label = 1
        pts.events.data.connect(self._on_points)
        boxes.events.data.connect(self._on_boxes)
        lassos.events.data.connect(self._on_lassos)
        scribbles.events.paint.connect(self._on_paint)
        scribbles.events.labels_update.connect(self._on_labels_update)
        self.layers = {Tool.POINT: pts, Tool.BBOX: boxes, Tool.SCRIBBLE: scribbles, Tool.LASSO: lassos}
        for layer in self.layers.values():
            self.viewer.add_layer(layer)
            self._bind_keys(layer)
        self._bind_keys(view.layer)
        self.viewer.layers.selection.active = view.layer
        self.set_polarity(self.positive)

    def remove(self) -> None:
        """Remove the prompt layers (never the image); the tool returns to none."""
        self.tool = None
        for layer in list(self.layers.values()):
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.layers = {}
        self.view = None

    def clear(self) -> None:
        """Empty every prompt layer (the prompts stay with the session)."""
        for tool, layer in self.layers.items():
            if layer not in self.viewer.layers:
                continue
            if tool is Tool.SCRIBBLE:
                layer.data[...] = 0
                layer.refresh()
            else:
                layer.selected_data = set()  # a stale selection would break the next colour change
                with layer.events.data.blocker():
                    layer.data = []

    def active_layer(self):
        """The layer that should stay selected: the active tool's, else the image."""
        if self.tool is not None and self.tool in self.layers:
            return self.layers[self.tool]
        return self.view.layer if self.view is not None else None

    # ------------------------------------------------------------------ keys, tools, polarity

    def _bind_keys(self, layer) -> None:
        """Shortcuts on our layers only, so napari's global keys keep working."""
        bindings: dict[str, Callable] = {tool.value: (lambda _, t=tool: self.toggle_tool(t)) for tool in Tool}
        bindings["T"] = lambda _: self.toggle_polarity()
        for key, command in COMMAND_KEYS.items():
            bindings[key] = lambda _, c=command: self.command.emit(c)
        for key, func in bindings.items():
            layer.bind_key(key, func, overwrite=True)

    def toggle_tool(self, tool: Tool) -> None:
        """Activate ``tool``; pressing the active tool again returns to pan/zoom."""
        if self.view is None:
            self.message.emit(NOT_READY, "warning")
            return
        refusal = None if self.tool is tool else self.refuse(tool)
        if refusal:
            self.message.emit(refusal, "warning")
            return
        self.set_tool(None if self.tool is tool else tool)

    def set_tool(self, tool: Tool | None) -> None:
        if self.tool is not None and self.tool in self.layers:
            self.layers[self.tool].mode = "pan_zoom"
        self.tool = tool
        if tool is not None:
            layer = self._layer(tool)
            self.viewer.layers.selection.active = layer
            layer.mode = _TOOL_MODES[tool]
            if self.viewer.dims.ndisplay == 3:
                self.message.emit(
                    "Prompts are drawn on 2-D slices: switch to the 2-D view (the 2D/3D button) to draw.", "warning"
                )
        self.changed.emit()

    def _layer(self, tool: Tool):
        layer = self.layers.get(tool)
        if layer is None or layer not in self.viewer.layers:
            self.message.emit("A prompt layer was deleted; recreating the prompt layers.", "warning")
            for other in list(self.layers.values()):
                if other in self.viewer.layers:
                    self.viewer.layers.remove(other)
            self.create(self.view)
            layer = self.layers[tool]
        return layer

    def toggle_polarity(self) -> None:
        self.set_polarity(not self.positive)

    def set_polarity(self, positive: bool) -> None:
        self.positive = bool(positive)
        color = L.polarity_color(self.positive)
        if self.layers:
            self.layers[Tool.POINT].current_face_color = color
            self.layers[Tool.BBOX].current_edge_color = color
            self.layers[Tool.LASSO].current_edge_color = color
            self.layers[Tool.SCRIBBLE].selected_label = 1 if self.positive else 2
        self.changed.emit()

    # ------------------------------------------------------------------ layer events -> prompts

    def _on_points(self, event) -> None:
        if getattr(event, "action", None) != "added" or self.view is None:
            return
        layer = self.layers[Tool.POINT]
        for i in event.data_indices:
            self._emit(lambda i=i: L.point_from_coords(self.view, layer, layer.data[i], self.positive))

    def _on_boxes(self, event) -> None:
        self._on_shape(event, Tool.BBOX, lambda vox: L.box_from_vertices(vox, self.positive))

    def _on_lassos(self, event) -> None:
        self._on_shape(event, Tool.LASSO, lambda vox: L.lasso_from_vertices(vox, self.view.shape, self.positive))

    def _on_shape(self, event, tool, make) -> None:
        if getattr(event, "action", None) != "added" or self.view is None:
            return
        layer = self.layers[tool]
        for i in event.data_indices:
            verts = layer.data[i]
            self._emit(lambda v=verts: make(L.world_to_voxel(self.view, layer, v)))

    def _on_paint(self, event) -> None:
        """A finished stroke: turn its fresh voxels into a scribble prompt.

        A mouse stroke is committed after its voxels are written; a single programmatic
        ``paint`` announces itself before the write, so then the next ``labels_update`` does it.
        """
        self._stroke_pending = not self._consume_strokes()

    def _on_labels_update(self, event) -> None:
        if self._stroke_pending:
            self._stroke_pending = False
            self._consume_strokes()

    def _consume_strokes(self) -> bool:
        if self.view is None:
            return True
        layer = self.layers[Tool.SCRIBBLE]
        data = layer.data
        found = False
        for fresh, consumed, positive in ((1, 3, True), (2, 4, False)):
            where = np.nonzero(data == fresh)
            if where[0].size == 0:
                continue
            found = True
            self._emit(lambda w=where, p=positive: L.scribble_from_voxels(self.view, layer, w, p))
            data[where] = consumed
        if found:
            layer.refresh()
        return found

    def _emit(self, make_prompt: Callable[[], Prompt | None]) -> None:
        """Build a prompt on the GUI thread and emit it; a user mistake becomes a message."""
        try:
            prompt = make_prompt()
        except PromptError as exc:
            self.message.emit(str(exc), "warning")
            return
        if prompt is not None:
            self.prompt.emit(prompt)

    def _on_ndisplay(self, event) -> None:
        if self.tool is not None and self.viewer.dims.ndisplay == 3:
            self.message.emit("Prompts are drawn on 2-D slices: switch back to the 2-D view to draw.", "warning")
