"""The prompt layers of one image: tools, polarity and keys; each edit becomes a prompt (no Qt widgets).

:class:`PromptLayers` owns the four layers (points, boxes, scribbles, lassos) drawn over the
annotated image. A finished edit is converted into a core prompt in voxel coordinates and emitted
as :attr:`PromptLayers.prompt`; keys that act on the object (reset, next, undo, redo) are emitted
as :attr:`PromptLayers.command`. User mistakes are emitted as :attr:`PromptLayers.message`.

The keys work while the image, a prompt layer or an output layer (:attr:`PromptLayers.outputs`) is
active, and are unbound from the image and the outputs when the annotation stops. Sent markers
(points, boxes, lassos) are locked: moving or deleting one puts it back with a message, since the
prompt is already part of the object (Undo and Reset take prompts back). Handlers of napari's
layer events never raise: a shape napari dropped (a lasso of two clicks) is a message.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

import numpy as np
from napari.layers import Labels, Points, Shapes
from napari.utils.colormaps import DirectLabelColormap
from psygnal import Signal

from ..core.prompts import Prompt, PromptError
from . import layers as L
from .layer_controls import trim_controls
from .marker_history import Drawn, MarkerHistory

log = logging.getLogger(__name__)


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
#: Said when a sent marker is moved or deleted (it is put back).
LOCKED = (
    "Sent prompts are locked: moving or deleting a marker would not change the mask. "
    "Undo (Ctrl+Z) takes back the last prompt, Reset object (R) all of them."
)
#: Said when napari drops a lasso with fewer than three points (two quick clicks).
LASSO_TOO_SMALL = (
    "Lasso ignored: it needs at least three points. Hold the button and drag around the object, "
    "or click, move around the object and click again."
)
NO_MASK = "No mask to show or hide yet: draw a prompt first."


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
        #: The output Labels layers (current object's first): keys work on them too; V shows/hides them.
        self.outputs: Callable[[], list] = list
        self.positive = True
        self._stroke_pending = False
        #: Why a prompt drawn now is refused (``None``: it is sent); the annotator checks the time point.
        self.refuse_prompt: Callable[[], str | None] = lambda: None
        self._sent: dict[Tool, tuple] = {}  # per marker layer: (data, colours, shape types) of sent prompts
        self.history = MarkerHistory()  # the sent markers, which follow Undo and Redo
        self._bound: list = []  # layers other than ours that carry our keys
        viewer.dims.events.ndisplay.connect(self._on_ndisplay)
        viewer.layers.selection.events.active.connect(self._on_active)

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
        self._sent = {}
        for layer in self.layers.values():
            self.viewer.add_layer(layer)
            trim_controls(layer)
            self._bind_keys(layer)
        self._bind_keys(view.layer)
        if view.layer not in self._bound:
            self._bound.append(view.layer)
        self.viewer.layers.selection.active = view.layer
        self.set_polarity(self.positive)

    def remove(self) -> None:
        """Remove the prompt layers (never the image); the tool returns to none."""
        self.tool = None
        for layer in list(self.layers.values()):
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        for layer in self._bound:  # napari's own keys come back on the image and the outputs
            for key in _key_names():
                layer.bind_key(key, None)
        self._bound = []
        self.layers = {}
        self._sent = {}
        self.view = None

    def clear(self) -> None:
        """Empty every prompt layer (the prompts stay with the session)."""
        self.history.clear()
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
                self._sent.pop(tool, None)

    def active_layer(self):
        """The layer that should stay selected: the active tool's, else the image."""
        if self.tool is not None and self.tool in self.layers:
            return self.layers[self.tool]
        return self.view.layer if self.view is not None else None

    # ------------------------------------------------------------------ keys, tools, polarity

    def _bind_keys(self, layer) -> None:
        """Shortcuts on our layers, the image and the outputs only, so napari's global keys keep working."""
        bindings: dict[str, Callable] = {tool.value: (lambda _, t=tool: self.toggle_tool(t)) for tool in Tool}
        bindings["T"] = lambda _: self.toggle_polarity()
        bindings["V"] = lambda _: self.toggle_mask()
        for key, command in COMMAND_KEYS.items():
            bindings[key] = lambda _, c=command: self.command.emit(c)
        for key, func in bindings.items():
            layer.bind_key(key, func, overwrite=True)

    def _on_active(self, event=None) -> None:
        """An output layer made active while annotating gets our keys (P must not switch it to painting)."""
        layer = self.viewer.layers.selection.active
        if self.view is None or layer is None or layer in self._bound or layer in self.layers.values():
            return
        if any(layer is out for out in self.outputs()):
            self._bind_keys(layer)
            self._bound.append(layer)

    def toggle_mask(self) -> None:
        """V: show or hide the mask (the output layers)."""
        outs = [layer for layer in self.outputs() if layer in self.viewer.layers]
        if not outs:
            self.message.emit(NO_MASK, "info")
            return
        visible = not outs[0].visible
        for layer in outs:
            layer.visible = visible

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
            for tool in (Tool.POINT, Tool.BBOX, Tool.LASSO):  # a selected marker would take the new colour
                self.layers[tool].selected_data = set()
            self.layers[Tool.POINT].current_face_color = color
            self.layers[Tool.BBOX].current_edge_color = color
            self.layers[Tool.LASSO].current_edge_color = color
            self.layers[Tool.SCRIBBLE].selected_label = 1 if self.positive else 2
        self.changed.emit()

    # ------------------------------------------------------------------ layer events -> prompts

    def _on_points(self, event) -> None:
        self._on_markers(event, Tool.POINT, lambda layer, c: L.point_from_coords(self.view, layer, c, self.positive))

    def _on_boxes(self, event) -> None:
        self._on_markers(
            event, Tool.BBOX, lambda layer, v: L.box_from_vertices(L.world_to_voxel(self.view, layer, v), self.positive)
        )

    def _on_lassos(self, event) -> None:
        self._on_markers(
            event,
            Tool.LASSO,
            lambda layer, v: L.lasso_from_vertices(
                L.world_to_voxel(self.view, layer, v), self.view.shape, self.positive
            ),
        )

    def _on_markers(self, event, tool: Tool, make) -> None:
        """A data event of a marker layer; never raises into napari's drawing code.

        New markers (past the sent ones) become prompts; one that makes no prompt is taken off the layer.
        A sent marker moved or deleted is put back.
        """
        action = getattr(event, "action", None)
        layer = self.layers.get(tool)
        if self.view is None or layer is None or action not in ("added", "changed", "removed"):
            return
        try:
            sent = self._sent.get(tool) or _snapshot(tool, layer, 0)
            n_sent = len(sent[0])
            if action != "added":
                if not _same_data(layer.data, sent[0]):
                    self._restore(tool, sent)
                    self.message.emit(LOCKED, "info")
                return
            if len(layer.data) <= n_sent:  # napari dropped the shape (a lasso of fewer than three points)
                if tool is Tool.LASSO:
                    self.message.emit(LASSO_TOO_SMALL, "info")
                return
            keep = [i for i in range(n_sent, len(layer.data)) if self._emit(lambda i=i: make(layer, layer.data[i]))]
            self.history.add([Drawn(tool, _marker(layer, i)) for i in keep])
            now = _snapshot(tool, layer, n_sent, keep)
            if len(keep) < len(layer.data) - n_sent:
                self._restore(tool, now)  # only markers of sent prompts stay
            self._sent[tool] = now
        except Exception as exc:  # a bug of ours must not break napari's drawing state
            log.exception("prompt layer event failed")
            self.message.emit(f"Could not use that {tool.name.lower()}: {exc}", "warning")

    def _restore(self, tool: Tool, sent: tuple) -> None:
        layer = self.layers[tool]
        data, colors, types = sent
        with layer.events.data.blocker():
            layer.selected_data = set()
            if tool is Tool.POINT:
                layer.data = np.array(data).reshape(-1, layer.ndim)  # a copy: napari moves points in place
                if len(data):
                    layer.face_color = colors
            else:
                layer.data = []
                if data:
                    layer.add([np.array(v) for v in data], shape_type=list(types), edge_color=colors)
        layer.refresh()

    def follow_history(self, length: int, can_redo: bool) -> None:
        """The session is idle with ``length`` prompts in the current object's history: show the markers of
        those prompts only (Undo hides the newest, Redo shows them again; see :mod:`.marker_history`)."""
        changed = self.history.follow(length, can_redo)
        if not changed or self.view is None:
            return
        for tool in {d.tool for d, _ in changed} - {Tool.SCRIBBLE}:
            self._sent[tool] = _assemble(tool, self.history.shown_markers(tool))
            self._restore(tool, self._sent[tool])
        strokes = [(d.marker, show) for d, show in changed if d.tool is Tool.SCRIBBLE]
        if strokes:
            layer = self.layers[Tool.SCRIBBLE]
            for (where, value), show in strokes:
                layer.data[where] = np.where(
                    layer.data[where] == (0 if show else value), value if show else 0, layer.data[where]
                )
            layer.refresh()

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
            if self._emit(lambda w=where, p=positive: L.scribble_from_voxels(self.view, layer, w, p)):
                self.history.add([Drawn(Tool.SCRIBBLE, (where, consumed))])
            data[where] = consumed
        if found:
            layer.refresh()
        return found

    def _emit(self, make_prompt: Callable[[], Prompt | None]) -> bool:
        """Build a prompt on the GUI thread and emit it; a user mistake becomes a message. Whether one was sent."""
        refusal = self.refuse_prompt()
        if refusal:
            self.message.emit(refusal, "warning")
            return False
        try:
            prompt = make_prompt()
        except PromptError as exc:
            self.message.emit(str(exc), "warning")
            return False
        if prompt is not None:
            self.prompt.emit(prompt)
        return prompt is not None

    def _on_ndisplay(self, event) -> None:
        if self.tool is not None and self.viewer.dims.ndisplay == 3:
            self.message.emit("Prompts are drawn on 2-D slices: switch back to the 2-D view to draw.", "warning")


def _key_names() -> list[str]:
    return [tool.value for tool in Tool] + ["T", "V", *COMMAND_KEYS]


def _snapshot(tool: Tool, layer, start: int, keep: list[int] | None = None) -> tuple:
    """(data, colours, shape types) of a marker layer's first ``start`` markers plus those in ``keep``."""
    return _assemble(tool, [_marker(layer, i) for i in [*range(start), *(keep or [])]])


def _marker(layer, i: int) -> tuple:
    """What redraws marker ``i`` of a marker layer: (coordinates, colour) or (vertices, colour, shape type)."""
    if isinstance(layer, Points):
        return np.array(layer.data[i]), np.array(layer.face_color[i])
    return np.array(layer.data[i]), np.array(layer.edge_color[i]), layer.shape_type[i]


def _assemble(tool: Tool, markers: list[tuple]) -> tuple:
    """(data, colours, shape types) of ``markers`` (from :func:`_marker`), as :meth:`PromptLayers._restore` takes
    them."""
    if tool is Tool.POINT:
        return np.array([m[0] for m in markers]), np.array([m[1] for m in markers]), None
    return [m[0] for m in markers], np.array([m[1] for m in markers]), [m[2] for m in markers]


def _same_data(data, sent) -> bool:
    if len(data) != len(sent):
        return False
    return all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(data, sent))
