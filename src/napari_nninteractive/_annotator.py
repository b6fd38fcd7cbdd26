"""The napari side of the plugin: prompt layers, objects, output layers (no Qt widgets).

An :class:`Annotator` turns edits of its prompt layers into prompts for a
:class:`~napari_nninteractive._worker.SessionRunner` and writes the runner's outcomes into the
chosen Labels layer on the GUI thread. User mistakes become napari notifications, never
tracebacks.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from napari.layers import Labels, Points, Shapes
from napari.utils.colormaps import DirectLabelColormap
from napari.utils.notifications import show_info, show_warning

from . import _layers as L
from ._objects import hiding_colormap, object_mask
from ._worker import Action, Outcome, SessionRunner
from .core.geometry import PackedMask, nonzero_bbox
from .core.prompts import InitialMask, Prompt, PromptError

log = logging.getLogger(__name__)


class Tool(enum.Enum):
    """Prompt tools and their keys."""

    POINT = "P"
    BBOX = "B"
    SCRIBBLE = "S"
    LASSO = "L"


class OutputMode(enum.Enum):
    """Where objects go."""

    INSTANCE = "instance map (one label value per object)"
    SEMANTIC = "semantic map (class id)"
    SEPARATE = "separate layer per object"


_TOOL_MODES = {Tool.POINT: "add", Tool.BBOX: "add_rectangle", Tool.SCRIBBLE: "paint", Tool.LASSO: "add_polygon_lasso"}
# scribble layer values: fresh positive / negative stroke, consumed positive / negative
_SCRIBBLE_COLORS = {None: "transparent", 0: "transparent", 1: L.POSITIVE_COLOR, 2: L.NEGATIVE_COLOR,
                    3: L.POSITIVE_COLOR, 4: L.NEGATIVE_COLOR}


@dataclass
class ObjectTarget:
    """Where one object's mask is written, and how the object list shows it."""

    layer: Labels
    value: int
    name: str = ""
    visible: bool = True


class Annotator:
    """Interactive segmentation of one image layer in a viewer.

    Parameters
    ----------
    viewer
        The napari viewer.
    notify
        Called with ``(message, level)`` for user-facing messages (napari notifications by default).
    """

    def __init__(self, viewer, notify: Callable[[str, str], None] | None = None):
        self.viewer = viewer
        self.notify = notify or (lambda msg, level="info": (show_warning if level == "warning" else show_info)(msg))
        self.view: L.ImageView | None = None
        self.runner: SessionRunner | None = None
        self.prompt_layers: dict[Tool, object] = {}
        self.tool: Tool | None = None
        self.positive = True
        self.autorun = True
        self.mode = OutputMode.INSTANCE
        self.class_id = 1
        self._overwrite = False
        self._resync = False  # next write compares the whole region (the overlap rule changed)
        self.output_choice: Labels | None = None  # None: a new layer
        self.targets: dict[int, ObjectTarget] = {}
        self.histories: dict[int, tuple[Prompt, ...]] = {}  # prompt history per object (session files)
        self.own: dict[int, PackedMask] = {}  # finished objects' own voxels (see _objects)
        self._deleted: set[int] = set()  # objects whose late outcomes are dropped
        self._colormaps: dict[int, object] = {}  # id(layer) -> its colormap before objects were hidden
        self.object_id = 0
        self.on_finished: Callable[[Outcome], None] = lambda outcome: None  # after a successful action
        self.on_state: Callable[[], None] = lambda: None  # GUI refresh hook
        self.last_outcome: Outcome | None = None
        viewer.layers.events.removed.connect(self._on_layer_removed)
        viewer.dims.events.ndisplay.connect(self._on_ndisplay)

    @property
    def overwrite(self) -> bool:
        """On overlap with other objects: overwrite them (True) or keep them (False)."""
        return self._overwrite

    @overwrite.setter
    def overwrite(self, value: bool) -> None:
        if bool(value) != self._overwrite:
            self._resync = True
        self._overwrite = bool(value)

    # ------------------------------------------------------------------ lifecycle

    @property
    def ready(self) -> bool:
        return self.runner is not None

    def attach(self, view: L.ImageView, session) -> None:
        """Start annotating ``view`` with a loaded ``session`` (image already set)."""
        self.detach()
        self.view = view
        self.runner = SessionRunner(session, self._on_outcome, self.on_state)
        self.object_id = 0
        self.forget_objects()
        self._make_prompt_layers()
        if view.note:
            self.notify(view.note, "info")

    def detach(self) -> None:
        """Stop: cancel work, remove the prompt layers (never the image or output layers)."""
        if self.runner is not None:
            self.runner.cancel()
        self.runner = None
        self.tool = None
        for layer in list(self.prompt_layers.values()):
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.prompt_layers = {}
        self.view = None

    def _make_prompt_layers(self) -> None:
        v = self.view
        kw = L.copy_transform(v.layer)
        nd = v.layer.ndim
        pts = Points(ndim=nd, name=L.PROMPT_LAYER_PREFIX + "points", size=6, border_width=0, face_color=L.POSITIVE_COLOR, **kw)
        boxes = Shapes(ndim=nd, name=L.PROMPT_LAYER_PREFIX + "boxes", edge_width=1.5, face_color="transparent",
                       edge_color=L.POSITIVE_COLOR, **kw)
        lassos = Shapes(ndim=nd, name=L.PROMPT_LAYER_PREFIX + "lassos", edge_width=1.5, face_color="transparent",
                        edge_color=L.POSITIVE_COLOR, **kw)
        shape = v.layer.data[0].shape if v.layer.multiscale else v.layer.data.shape
        shape = shape[:-1] if v.layer.rgb else shape
        scribbles = Labels(np.zeros(shape, np.uint8), name=L.PROMPT_LAYER_PREFIX + "scribbles", opacity=0.9,
                           colormap=DirectLabelColormap(color_dict=_SCRIBBLE_COLORS), **kw)
        scribbles.n_edit_dimensions = 2
        scribbles.brush_size = 2
        scribbles.selected_label = 1
        pts.events.data.connect(self._on_points)
        boxes.events.data.connect(self._on_boxes)
        lassos.events.data.connect(self._on_lassos)
        scribbles.events.paint.connect(self._on_paint)
        scribbles.events.labels_update.connect(self._on_labels_update)
        self.prompt_layers = {Tool.POINT: pts, Tool.BBOX: boxes, Tool.SCRIBBLE: scribbles, Tool.LASSO: lassos}
        for layer in self.prompt_layers.values():
            self.viewer.add_layer(layer)
            self._bind_keys(layer)
        self._bind_keys(v.layer)
        self.viewer.layers.selection.active = v.layer

    # ------------------------------------------------------------------ keys

    def _bind_keys(self, layer) -> None:
        """Shortcuts on our layers only, so napari's global keys keep working."""
        bindings = {"P": lambda _: self.toggle_tool(Tool.POINT), "B": lambda _: self.toggle_tool(Tool.BBOX),
                    "S": lambda _: self.toggle_tool(Tool.SCRIBBLE), "L": lambda _: self.toggle_tool(Tool.LASSO),
                    "T": lambda _: self.toggle_polarity(), "R": lambda _: self.reset_object(),
                    "M": lambda _: self.next_object(), "Control-Z": lambda _: self.undo(),
                    "Control-Shift-Z": lambda _: self.redo()}
        for key, func in bindings.items():
            layer.bind_key(key, func, overwrite=True)

    # ------------------------------------------------------------------ tools

    def toggle_tool(self, tool: Tool) -> None:
        """Activate ``tool``; pressing the active tool again returns to pan/zoom."""
        if not self.ready:
            self.notify("Initialize first (pick an image layer and press Initialize).", "warning")
            return
        if self.tool is tool:
            self.set_tool(None)
        else:
            self.set_tool(tool)

    def set_tool(self, tool: Tool | None) -> None:
        if self.tool is not None and self.tool in self.prompt_layers:
            self.prompt_layers[self.tool].mode = "pan_zoom"
        self.tool = tool
        if tool is not None:
            layer = self._prompt_layer(tool)
            self.viewer.layers.selection.active = layer
            layer.mode = _TOOL_MODES[tool]
            if self.viewer.dims.ndisplay == 3:
                self.notify("Prompts are drawn on 2-D slices: switch to the 2-D view (the 2D/3D button) to draw.", "warning")
        self.on_state()

    def _prompt_layer(self, tool: Tool):
        layer = self.prompt_layers.get(tool)
        if layer is None or layer not in self.viewer.layers:
            self.notify("A prompt layer was deleted; recreating the prompt layers.", "warning")
            for other in list(self.prompt_layers.values()):
                if other in self.viewer.layers:
                    self.viewer.layers.remove(other)
            self._make_prompt_layers()
            layer = self.prompt_layers[tool]
        return layer

    def toggle_polarity(self) -> None:
        self.set_polarity(not self.positive)

    def set_polarity(self, positive: bool) -> None:
        self.positive = bool(positive)
        color = L.polarity_color(self.positive)
        if self.prompt_layers:
            self.prompt_layers[Tool.POINT].current_face_color = color
            self.prompt_layers[Tool.BBOX].current_edge_color = color
            self.prompt_layers[Tool.LASSO].current_edge_color = color
            self.prompt_layers[Tool.SCRIBBLE].selected_label = 1 if self.positive else 2
        self.on_state()

    # ------------------------------------------------------------------ prompt layer events

    def _on_points(self, event) -> None:
        if getattr(event, "action", None) != "added" or not self.ready:
            return
        layer = self.prompt_layers[Tool.POINT]
        for i in event.data_indices:
            self._guarded(lambda i=i: L.point_from_coords(self.view, layer, layer.data[i], self.positive))

    def _on_boxes(self, event) -> None:
        self._on_shape(event, Tool.BBOX, lambda vox: L.box_from_vertices(vox, self.positive))

    def _on_lassos(self, event) -> None:
        self._on_shape(event, Tool.LASSO, lambda vox: L.lasso_from_vertices(vox, self.view.shape, self.positive))

    def _on_shape(self, event, tool, make) -> None:
        if getattr(event, "action", None) != "added" or not self.ready:
            return
        layer = self.prompt_layers[tool]
        for i in event.data_indices:
            verts = layer.data[i]
            self._guarded(lambda v=verts: make(L.world_to_voxel(self.view, layer, v)))

    def _on_paint(self, event) -> None:
        """A finished stroke: turn its fresh voxels into a scribble prompt.

        A mouse stroke is committed after its voxels are written; a single programmatic
        ``paint`` announces itself before the write, so then the next ``labels_update`` does it.
        """
        self._stroke_pending = not self._consume_strokes()

    def _on_labels_update(self, event) -> None:
        if getattr(self, "_stroke_pending", False):
            self._stroke_pending = False
            self._consume_strokes()

    def _consume_strokes(self) -> bool:
        if not self.ready:
            return True
        layer = self.prompt_layers[Tool.SCRIBBLE]
        data = layer.data
        found = False
        for fresh, consumed, positive in ((1, 3, True), (2, 4, False)):
            where = np.nonzero(data == fresh)
            if where[0].size == 0:
                continue
            found = True
            self._guarded(lambda w=where, p=positive: L.scribble_from_voxels(self.view, layer, w, p))
            data[where] = consumed
        if found:
            layer.refresh()
        return found

    def _guarded(self, make_prompt: Callable[[], Prompt | None]) -> None:
        """Build a prompt on the GUI thread; a user mistake becomes a message."""
        try:
            prompt = make_prompt()
        except PromptError as exc:
            self.notify(str(exc), "warning")
            return
        if prompt is not None:
            self.submit_prompt(prompt)

    # ------------------------------------------------------------------ actions

    def submit_prompt(self, prompt: Prompt) -> None:
        """Queue a prompt (predicted at once with auto-run, else on Run)."""
        self._submit(Action("prompt", prompt, run=self.autorun))

    def _submit(self, action: Action) -> None:
        if not self.ready:
            self.notify("Initialize first (pick an image layer and press Initialize).", "warning")
            return
        self._target(self.object_id)
        self.runner.submit(Action(action.kind, action.prompt, action.run, tag=self.object_id))
        self.on_state()

    def run(self) -> None:
        self._submit(Action("predict"))

    def undo(self) -> None:
        self._submit(Action("undo"))

    def redo(self) -> None:
        self._submit(Action("redo"))

    def reset_object(self) -> None:
        self._submit(Action("reset"))
        self._clear_prompt_layers()

    def cancel(self) -> None:
        if self.runner is not None:
            self.runner.cancel()

    def next_object(self) -> None:
        """Keep the current object in its layer and start the next one."""
        if not self.ready:
            return
        self.runner.submit(Action("next", tag=self.object_id))  # no layer or value for an object never drawn
        self.object_id = self._free_id()
        self._clear_prompt_layers()
        self.on_state()

    def _free_id(self) -> int:
        return max([self.object_id, *self.targets, *self._deleted]) + 1

    # ------------------------------------------------------------------ object list

    def forget_objects(self) -> None:
        """Drop every object record (the labels stay in their layers; hidden labels are shown again)."""
        for target in self.targets.values():
            cmap = self._colormaps.pop(id(target.layer), None)
            if cmap is not None and target.layer in self.viewer.layers:
                target.layer.colormap = cmap
        self.targets, self.histories, self.own, self._deleted, self._colormaps = {}, {}, {}, set(), {}

    def objects(self) -> list[tuple[int, ObjectTarget]]:
        """``(object id, target)`` of the objects that have a layer, in creation order."""
        return [(i, t) for i, t in sorted(self.targets.items()) if t.layer in self.viewer.layers]

    def ownership(self, object_id: int) -> tuple[PackedMask | None, tuple[PackedMask, ...]]:
        """``(own, others)`` for :func:`._objects.object_mask`: set only when other objects share the value."""
        target = self.targets[object_id]
        sharing = [i for i, t in self.targets.items() if i != object_id and t.layer is target.layer and t.value == target.value]
        own = self.own.get(object_id) if sharing else None
        return own, tuple(self.own[i] for i in sharing if i in self.own) if sharing and own is None else ()

    def object_mask(self, object_id: int) -> np.ndarray:
        """The object's voxels (session frame, boolean), read from its layer."""
        target = self.targets[object_id]
        return object_mask(target.layer.data, target.value, self.view.squeeze2d, *self.ownership(object_id))

    def object_color(self, object_id: int) -> tuple[float, ...]:
        """The object's RGBA colour in its layer (as shown when visible)."""
        target = self.targets[object_id]
        cmap = self._colormaps.get(id(target.layer), target.layer.colormap)
        return tuple(round(float(c), 3) for c in np.ravel(cmap.map(np.array([target.value])))[:4])

    def _idle_for(self, what: str) -> bool:
        if not self.ready:
            self.notify("Initialize first (pick an image layer and press Initialize).", "warning")
            return False
        if self.runner.busy:
            self.notify(f"Wait for the running prediction to finish (or Cancel it), then {what}.", "warning")
            return False
        return True

    def select_object(self, object_id: int) -> None:
        """Make an earlier object the current one: the next prompts refine it, with its own history."""
        if object_id == self.object_id or not self._idle_for("pick the object"):
            return
        if object_id not in dict(self.objects()):
            self.notify("That object no longer exists (its layer was deleted).", "warning")
            return
        pending = self.last_outcome.pending if self.last_outcome is not None else 0
        if pending:
            self.notify(f"The current object has {pending} queued prompt(s): press Run (or Undo them) before "
                        "picking another object.", "warning")
            return
        mask = self.object_mask(object_id)
        self.runner.submit(Action("next", tag=self.object_id))  # the worker hands back the current object's voxels
        self.own.pop(object_id, None)
        self.object_id = object_id
        self.runner.submit(Action("restore", tag=object_id, payload=(mask, self.histories.get(object_id, ()))))
        self._clear_prompt_layers()
        self.on_state()

    def delete_object(self, object_id: int) -> None:
        """Erase an object's voxels from its layer and forget it (other objects stay as they are)."""
        if object_id not in self.targets or not self._idle_for("delete the object"):
            return
        target = self.targets[object_id]
        if target.layer in self.viewer.layers:
            mask = self.object_mask(object_id)
            box = nonzero_bbox(mask)
            if box is not None:  # write "no voxel" over the object's bbox: only its own voxels change
                empty = np.zeros(tuple(hi - lo for lo, hi in box), np.uint8)
                L.write_object(target.layer, self.view, box, empty, target.value, False,
                               np.nonzero(mask[tuple(slice(lo, hi) for lo, hi in box)]))
        del self.targets[object_id]
        self.histories.pop(object_id, None)
        self.own.pop(object_id, None)
        self._deleted.add(object_id)
        if self.mode is OutputMode.SEPARATE and target.layer in self.viewer.layers and not any(
                t.layer is target.layer for t in self.targets.values()):
            self.viewer.layers.remove(target.layer)
        if object_id == self.object_id:
            self.runner.submit(Action("next", tag=object_id))
            self.object_id = self._free_id()
            self._clear_prompt_layers()
        self.on_state()

    def rename_object(self, object_id: int, name: str) -> None:
        if object_id in self.targets and name.strip():
            self.targets[object_id].name = name.strip()
            self.on_state()

    def set_object_visible(self, object_id: int, visible: bool) -> None:
        """Show or hide one object (its whole layer when it has one of its own)."""
        target = self.targets.get(object_id)
        if target is None:
            return
        target.visible = bool(visible)
        layer = target.layer
        mates = [t for t in self.targets.values() if t.layer is layer]
        if len(mates) == 1:
            layer.visible = target.visible
        else:
            hidden = {t.value for t in mates if not t.visible}
            key = id(layer)
            if hidden and key not in self._colormaps:
                self._colormaps[key] = layer.colormap
            if hidden:
                top = max(int(np.asarray(layer.data).max(initial=0)), *(t.value for t in mates))
                layer.colormap = hiding_colormap(self._colormaps[key], hidden, top)
            elif key in self._colormaps:
                layer.colormap = self._colormaps.pop(key)
        self.on_state()

    def init_with_mask(self, layer: Labels, value: int, refine: bool) -> None:
        """Seed the current object with the voxels of ``layer`` equal to ``value``."""
        if not self.ready:
            self.notify("Initialize first (pick an image layer and press Initialize).", "warning")
            return
        try:
            L.check_output_layer(self.view, layer)
        except L.LayerError as exc:
            self.notify(f"Cannot use '{layer.name}' as initial mask: {exc}", "warning")
            return
        mask = np.asarray(layer.data) == value
        if not mask.any():
            self.notify(f"The labels layer '{layer.name}' has no voxel with value {value}.", "warning")
            return
        self._submit(Action("mask", InitialMask(mask[None] if self.view.squeeze2d else mask, None, True, refine)))

    def _clear_prompt_layers(self) -> None:
        for tool, layer in self.prompt_layers.items():
            if layer not in self.viewer.layers:
                continue
            if tool is Tool.SCRIBBLE:
                layer.data[...] = 0
                layer.refresh()
            else:
                layer.selected_data = set()  # a stale selection would break the next colour change
                with layer.events.data.blocker():
                    layer.data = []

    # ------------------------------------------------------------------ output

    def _target(self, object_id: int) -> ObjectTarget:
        """The layer and value of an object (created on first use)."""
        target = self.targets.get(object_id)
        if target is not None and target.layer in self.viewer.layers:
            return target
        recreated = target is not None
        if recreated:
            self.notify(f"The output layer '{target.layer.name}' was deleted; writing the object into a new layer.", "warning")
        layer = self._output_layer(object_id)
        value = self._value_for(layer)
        target = ObjectTarget(layer, value, target.name if recreated else f"object {object_id + 1}")
        self.targets[object_id] = target
        if recreated and object_id == self.object_id and self.runner is not None:
            self.runner.submit(Action("sync", tag=object_id))  # re-write the whole current object
        return target

    def _output_layer(self, object_id: int) -> Labels:
        if self.mode is not OutputMode.SEPARATE and self.output_choice is not None and self.output_choice in self.viewer.layers:
            try:
                L.check_output_layer(self.view, self.output_choice)
                return self.output_choice
            except L.LayerError as exc:
                self.notify(f"{exc} Writing into a new layer instead.", "warning")
        name = f"nnInteractive object {object_id + 1}" if self.mode is OutputMode.SEPARATE else "nnInteractive objects"
        if self.mode is not OutputMode.SEPARATE:
            for layer in self.viewer.layers:
                if isinstance(layer, Labels) and layer.name == name and tuple(layer.data.shape) == L.output_shape(self.view):
                    return layer
        layer = L.new_output_layer(self.view, name)
        self.viewer.add_layer(layer)
        self.viewer.layers.selection.active = self.prompt_layers.get(self.tool, self.view.layer) if self.tool else self.view.layer
        return layer

    def _value_for(self, layer: Labels) -> int:
        if self.mode is OutputMode.SEMANTIC:
            return int(self.class_id)
        if self.mode is OutputMode.SEPARATE:
            return 1
        used = {t.value for t in self.targets.values() if t.layer is layer}
        top = int(np.asarray(layer.data).max(initial=0))
        return max([top] + list(used)) + 1

    def _on_outcome(self, outcome: Outcome) -> None:
        """GUI thread: show messages, write the changed region of the object into its layer."""
        self.last_outcome = outcome
        if outcome.tag in self._deleted:  # late news of a deleted object
            self.on_state()
            return
        failed = outcome.kind in ("cancelled", "error")
        if not failed:
            self.histories[outcome.tag] = outcome.history
        if outcome.message:
            self.notify(outcome.message, "info" if outcome.kind == "cancelled" else "warning")
        if outcome.kind == "next":  # a finished object: already in its layer; keep its own voxels
            if outcome.bbox is not None:
                self.own[outcome.tag] = PackedMask.of_region(outcome.bbox, outcome.values)
        elif not failed and outcome.bbox is not None and self.view is not None:
            target = self._target(outcome.tag)
            # sync, or a changed overlap rule: compare the whole region, not only the changed voxels
            changed = None if outcome.kind == "sync" or self._resync else outcome.changed
            self._resync = False
            try:
                L.write_object(target.layer, self.view, outcome.bbox, outcome.values, target.value, self.overwrite, changed)
            except L.LayerError as exc:
                self.notify(str(exc), "warning")
        if not failed and outcome.kind != "sync":
            self.on_finished(outcome)
        self.on_state()

    # ------------------------------------------------------------------ viewer events

    def _on_layer_removed(self, event) -> None:
        layer = event.value
        if self.view is not None and layer is self.view.layer:
            self.detach()
            self.notify("The image layer was removed; annotation stopped. Pick an image and Initialize again.", "warning")
            self.on_state()
        elif layer is self.output_choice:
            self.output_choice = None
            self.on_state()

    def _on_ndisplay(self, event) -> None:
        if self.tool is not None and self.viewer.dims.ndisplay == 3:
            self.notify("Prompts are drawn on 2-D slices: switch back to the 2-D view to draw.", "warning")
