"""The coordinator of one annotation in a viewer: prompt layers -> session -> output layers (no Qt widgets).

An :class:`Annotator` connects four parts with one job each, through signals:

- :class:`~.prompt_layers.PromptLayers` turns layer edits into prompts (``prompt`` signal) and keys
  into commands;
- :class:`~.worker.SessionRunner` runs each action on the session off the GUI thread and hands
  back an :class:`~.worker.Outcome` holding the session's :class:`~..core.api.Change`;
- :class:`~.output.OutputWriter` writes the change's region into the object's Labels layer;
- :class:`~.objects.ObjectTable` keeps the objects (layer, value, history, visibility).

User mistakes become napari notifications (``notify``), never tracebacks. The session may be local
or remote (:class:`~..core.api.SegmentationSession`); tools whose prompt kind its
:attr:`Annotator.capabilities` lack are refused (:meth:`Annotator.tool_refusal`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from napari.layers import Labels
from napari.utils.notifications import show_info, show_warning
from psygnal import Signal
from qtpy.QtCore import QTimer

from ..core.api import Capabilities, SegmentationSession
from ..core.geometry import PackedMask, bbox_to_slices, nonzero_bbox
from ..core.prompts import InitialMask, Prompt, PromptKind
from ..core.undo import Rounds
from . import layers as L
from .objects import ObjectTable, ObjectTarget
from .output import OutputMode, OutputWriter
from .prompt_layers import NOT_READY, PromptLayers, Tool
from .worker import Action, Outcome, SessionRunner

log = logging.getLogger(__name__)

__all__ = ["TOOL_KINDS", "Annotator", "ObjectTarget", "OutputMode", "Tool"]

#: The prompt kind each tool draws.
TOOL_KINDS = {
    Tool.POINT: PromptKind.POINT,
    Tool.BBOX: PromptKind.BBOX,
    Tool.SCRIBBLE: PromptKind.SCRIBBLE,
    Tool.LASSO: PromptKind.LASSO,
}
_KIND_WORDS = {
    PromptKind.POINT: "point",
    PromptKind.BBOX: "box",
    PromptKind.SCRIBBLE: "scribble",
    PromptKind.LASSO: "lasso",
    PromptKind.MASK: "initial mask",
}


def _delegate(part: str, name: str, doc: str) -> property:
    return property(
        lambda self: getattr(getattr(self, part), name),
        lambda self, value: setattr(getattr(self, part), name, value),
        doc=doc,
    )


class Annotator:
    """Interactive segmentation of one image layer in a viewer.

    Parameters
    ----------
    viewer
        The napari viewer.
    notify
        Called with ``(message, level)`` for user-facing messages (napari notifications by default).
    """

    #: Something the dock shows changed (tool, polarity, objects, undo availability, ...).
    state_changed = Signal()
    #: An action finished without error (not a resync): its :class:`~.worker.Outcome`.
    finished = Signal(object)
    #: ``(text, error)``: what an action's outcome says (a notice of the session, an error, a cancel) for the
    #: dock's status line; also notified.
    status = Signal(str, bool)

    tool = _delegate("prompts", "tool", "The active prompt tool, or None (pan/zoom).")
    positive = _delegate("prompts", "positive", "Polarity of the next prompt.")
    prompt_layers = _delegate("prompts", "layers", "The prompt layers by tool.")
    mode = _delegate("output", "mode", "Where objects go (an :class:`OutputMode`).")
    class_id = _delegate("output", "class_id", "Label value of objects in a semantic map.")
    overwrite = _delegate("output", "overwrite", "On overlap with other objects: overwrite them or keep them.")
    output_choice = _delegate("output", "choice", "The chosen output Labels layer, or None for a new one.")
    targets = _delegate("table", "targets", "Object id -> :class:`ObjectTarget`.")
    histories = _delegate("table", "histories", "Object id -> its prompt history.")
    rounds = _delegate("table", "rounds", "Object id -> how its prompt history was predicted.")
    own = _delegate("table", "own", "Object id -> its finished voxels (shared label values only).")

    def __init__(self, viewer, notify: Callable[[str, str], None] | None = None):
        self.viewer = viewer
        self.notify = notify or (lambda msg, level="info": (show_warning if level == "warning" else show_info)(msg))
        self.view: L.ImageView | None = None
        self.runner: SessionRunner | None = None
        self.autorun = True
        self.object_id = 0
        self.last_outcome: Outcome | None = None
        self._outcome_said = False  # the status line shows an outcome's message (a cancel, an error, a notice)
        self.table = ObjectTable(viewer)
        self.prompts = PromptLayers(viewer)
        self.output = OutputWriter(viewer, self.table)
        self._bound: str | None = None  # what the objects in the table belong to (L.binding)
        self._set_aside: dict[str, tuple] = {}  # binding -> (its table's content, its current object id)
        self._shown_elsewhere = False  # the slider shows another time point than the session's
        # level "status": the status line only (frequent news); else a notification. notify may be replaced later.
        say = lambda text, level: self.status.emit(text, False) if level == "status" else self.notify(text, level)  # noqa: E731
        for part in (self.prompts, self.output):
            part.message.connect(say)
        self.prompts.refuse = self.tool_refusal
        self.prompts.refuse_prompt = self.time_refusal
        self.prompts.prompt.connect(self.submit_prompt)
        self.prompts.command.connect(lambda command: getattr(self, {"next": "next_object"}.get(command, command))())
        self.prompts.outputs = self.output_layers  # the plugin's keys and V (show/hide) work on them too
        self.prompts.changed.connect(self.state_changed.emit)
        self.table.changed.connect(self.state_changed.emit)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        viewer.dims.events.current_step.connect(self._on_step)

    # ------------------------------------------------------------------ lifecycle

    @property
    def ready(self) -> bool:
        return self.runner is not None

    def attach(self, view: L.ImageView, session: SegmentationSession) -> None:
        """Start annotating ``view`` with a loaded ``session`` (image already set)."""
        self.detach()
        same = self._bound == L.binding(view)
        self.view = view
        self.runner = SessionRunner(session, self._on_outcome, self._on_idle)
        self.last_outcome = None
        self._outcome_said = False
        self._shown_elsewhere = False
        binding = L.binding(view)
        if same:  # the same image (and time point) again: its objects stay, the new session starts a new one
            self._finish_current()
        else:  # another image: its objects go to its own output layer; the old ones stay in theirs
            if self._bound is not None:  # kept for when that image is initialized again
                self._set_aside[self._bound] = (self.table.set_aside(), self.object_id)
            kept = self._set_aside.pop(binding, None)
            if kept is None:
                self.object_id = 0
                self.table.forget()
            else:  # an image annotated earlier: its objects are back in the list, its current one finished
                self.table.take_back(kept[0])
                self.object_id = kept[1]
                self._finish_current()
        self._bound = binding
        self.prompts.create(view)
        if view.note:
            self.notify(view.note, "info")

    def _finish_current(self) -> None:
        """Keep the current object as a finished one (its voxels stay in its layer) and move on to a new id."""
        if self.object_id not in self.targets:
            return
        mask = self.object_mask(self.object_id)
        box = nonzero_bbox(mask)
        if box is not None:
            self.own[self.object_id] = PackedMask.of_region(box, mask[bbox_to_slices(box)])
        self.object_id = self.table.free_id(self.object_id)
        self.table.changed.emit()

    def detach(self) -> None:
        """Stop: cancel work, close the session (off the GUI thread: a remote one releases its lease), remove
        the prompt layers (never the image or output layers)."""
        if self.runner is not None:
            self.runner.close()
        self.runner = None
        self.prompts.remove()
        self.view = None

    @property
    def capabilities(self) -> Capabilities | None:
        """What the attached session can do, or ``None`` before one is attached."""
        return self.runner.session.capabilities if self.runner is not None else None

    def time_refusal(self) -> str | None:
        """Why prompts drawn now are refused: the slider shows another time point than the session's (else ``None``)."""
        view = self.view
        if view is None or not view.lead:
            return None
        shown = L.data_step(view.layer, self.viewer.dims.point)[: len(view.lead)]
        if shown == view.lead:
            return None
        return (
            f"This session segments {L.lead_words(view.lead)} of '{view.layer.name}', but {L.lead_words(shown)} is "
            f"shown: prompts drawn here are ignored. Move the slider back, or press Initialize to segment "
            f"{L.lead_words(shown)}."
        )

    def _on_step(self, _event=None) -> None:
        """Say in the status line when the slider leaves (or comes back to) the session's time point."""
        refusal = self.time_refusal()
        if self.view is not None and bool(refusal) != self._shown_elsewhere:
            self._shown_elsewhere = bool(refusal)
            back = f"Back at {L.lead_words(self.view.lead)}: prompts segment it again."
            self.status.emit(refusal or back, bool(refusal))

    def kind_refusal(self, kind: PromptKind) -> str | None:
        """Why the attached session takes no ``kind`` prompts, or ``None`` when it does (or none is attached)."""
        caps = self.capabilities
        if caps is None or kind in caps.supported_kinds:
            return None
        remote = getattr(self.runner.session, "server_url", None) is not None
        who = "The server's model" if remote else f"The {caps.name} engine"
        takes = ", ".join(_KIND_WORDS[k] for k in PromptKind if k in caps.supported_kinds) or "none"
        return f"{who} does not take {_KIND_WORDS[kind]} prompts (it takes: {takes})."

    def tool_refusal(self, tool: Tool) -> str | None:
        """Why ``tool`` is off for the attached session, or ``None`` when it can be used."""
        return self.kind_refusal(TOOL_KINDS[tool])

    # ------------------------------------------------------------------ tools (see PromptLayers)

    def toggle_tool(self, tool: Tool) -> None:
        self.prompts.toggle_tool(tool)

    def set_tool(self, tool: Tool | None) -> None:
        self.prompts.set_tool(tool)

    def toggle_polarity(self) -> None:
        self.prompts.toggle_polarity()

    def set_polarity(self, positive: bool) -> None:
        self.prompts.set_polarity(positive)

    def clear_prompt_layers(self) -> None:
        self.prompts.clear()

    # ------------------------------------------------------------------ actions on the current object

    def submit_prompt(self, prompt: Prompt) -> None:
        """Queue a prompt (predicted at once with auto-run, else on Run); refused when drawn at another time point."""
        refusal = self.time_refusal()
        if refusal:
            self.notify(refusal, "warning")
            self.status.emit(refusal, True)
            return
        self._submit(Action("prompt", prompt, run=self.autorun))

    def _submit(self, action: Action) -> None:
        if not self.ready:
            self.notify(NOT_READY, "warning")
            return
        deleted = self.output.layer_gone(self.object_id)
        if deleted:  # re-created first, so the whole object is written into it (a sync) before this action's change
            self._target(self.object_id)
        self.runner.submit(Action(action.kind, action.prompt, action.run, tag=self.object_id))
        if not deleted:  # a new object's layer is made while the engine runs: it takes napari ~0.1 s
            self._target(self.object_id)
        self.state_changed.emit()

    def run(self) -> None:
        self._submit(Action("predict"))

    def undo(self) -> None:
        self._submit(Action("undo"))

    def redo(self) -> None:
        self._submit(Action("redo"))

    def reset_object(self) -> None:
        self._submit(Action("reset"))
        self.prompts.clear()

    def cancel(self) -> None:
        if self.runner is not None:
            self.runner.cancel()

    def init_with_mask(self, layer: Labels, value: int, refine: bool) -> None:
        """Seed the current object with the voxels of ``layer`` equal to ``value``."""
        if not self.ready:
            self.notify(NOT_READY, "warning")
            return
        refusal = self.kind_refusal(PromptKind.MASK)
        if refusal:
            self.notify(refusal, "warning")
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

    # ------------------------------------------------------------------ objects

    def next_object(self) -> None:
        """Keep the current object in its layer and start the next one."""
        if not self.ready:
            return
        self.runner.submit(Action("next", tag=self.object_id))  # no layer or value for an object never drawn
        self.object_id = self.table.free_id(self.object_id)
        self.prompts.clear()
        self.state_changed.emit()

    def _idle_for(self, what: str) -> bool:
        if not self.ready:
            self.notify(NOT_READY, "warning")
            return False
        if self.runner.busy:
            self.notify(f"Wait for the running prediction to finish (or Cancel it), then {what}.", "warning")
            return False
        return True

    def select_object(self, object_id: int) -> None:
        """Make an earlier object the current one: the next prompts refine it, with its own history."""
        if object_id == self.object_id or not self._idle_for("pick the object"):
            return
        if object_id not in dict(self.table.objects()):
            self.notify("That object no longer exists (its layer was deleted).", "warning")
            return
        state = self.last_outcome.state if self.last_outcome is not None else None
        if state is not None and state.pending:
            self.notify(
                f"The current object has {state.pending} queued prompt(s): press Run (or Undo them) before "
                "picking another object.",
                "warning",
            )
            return
        mask = self.object_mask(object_id)
        self.runner.submit(Action("next", tag=self.object_id))  # the worker hands back the current object's voxels
        self.own.pop(object_id, None)
        self.make_current(object_id, mask, self.histories.get(object_id, ()), self.rounds.get(object_id))

    def make_current(
        self,
        object_id: int,
        mask: np.ndarray | None = None,
        prompts: tuple[Prompt, ...] = (),
        rounds: Rounds | None = None,
    ) -> None:
        """Continue object ``object_id``: the session takes its ``mask`` and prompt history back, with how
        that history was predicted (``rounds``; ``None``: not known) so that Undo replays it exactly
        (``mask=None``: it starts empty). The previous current object is left as it is."""
        self.object_id = object_id
        if mask is None:
            self.runner.submit(Action("next", tag=object_id))
        else:
            self.runner.submit(Action("restore", tag=object_id, payload=(mask, tuple(prompts), rounds)))
        self.prompts.clear()
        self.state_changed.emit()

    def delete_object(self, object_id: int) -> None:
        """Erase an object's voxels from its layer and forget it (other objects stay as they are)."""
        if object_id not in self.targets or not self._idle_for("delete the object"):
            return
        target = self.targets[object_id]
        if target.layer in self.viewer.layers:
            self.output.erase(target, self.view, self.object_mask(object_id))
        self.table.remove(object_id)
        self.output.remove_if_unused(target.layer)
        if object_id == self.object_id:
            self.runner.submit(Action("next", tag=object_id))
            self.object_id = self.table.free_id(self.object_id)
            self.prompts.clear()
        self.state_changed.emit()

    def object_mask(self, object_id: int) -> np.ndarray:
        """The object's voxels (session frame, boolean), read from its layer."""
        return self.table.object_mask(object_id, self.view.squeeze2d)

    def output_layer(self, object_id: int) -> Labels:
        """The layer a new object ``object_id`` would be written into (created if needed)."""
        return self.output.layer_for(object_id, self.view, self.prompts.active_layer())

    # ------------------------------------------------------------------ outcomes (GUI thread)

    def _target(self, object_id: int) -> ObjectTarget:
        target, recreated = self.output.target(object_id, self.view, self.prompts.active_layer())
        if recreated and object_id == self.object_id and self.runner is not None:
            self.runner.submit(Action("sync", tag=object_id))  # re-write the whole current object
        return target

    def _on_outcome(self, outcome: Outcome) -> None:
        """Show messages, write the changed region of the object into its layer."""
        self.last_outcome = outcome
        if outcome.tag in self.table.deleted:  # late news of a deleted object
            self.state_changed.emit()
            return
        change = outcome.change
        if outcome.message:
            self.notify(outcome.message, "info" if outcome.kind == "cancelled" else "warning")
            self.status.emit(outcome.message, outcome.kind == "error")
            self._outcome_said = True
        elif self._outcome_said and self.ready and _predicted(outcome):
            self._outcome_said = False  # a prediction ran without a word: what the last outcome said is over
            self.status.emit("", False)
        if change is not None:
            told = change if outcome.kind != "sync" else outcome.state
            self.histories[outcome.tag], self.rounds[outcome.tag] = told.history, told.rounds
        if outcome.kind == "next":  # a finished object: already in its layer; keep its own voxels
            if change.bbox is not None:
                self.own[outcome.tag] = PackedMask.of_region(change.bbox, change.values)
        elif change is not None and change.bbox is not None and self.view is not None and self._image_present():
            self.output.write(self._target(outcome.tag), self.view, change, whole=outcome.kind == "sync")
        if change is not None and outcome.kind != "sync":
            self.finished.emit(outcome)
        self.state_changed.emit()

    def output_layers(self) -> list[Labels]:
        """The layers holding the objects (the current object's first), and the chosen output layer."""
        layers: list[Labels] = []
        current = self.targets.get(self.object_id)
        for target in ([current] if current is not None else []) + list(self.targets.values()):
            if all(target.layer is not layer for layer in layers):
                layers.append(target.layer)
        choice = self.output_choice
        if choice is not None and all(choice is not layer for layer in layers):
            layers.append(choice)
        return layers

    def _on_idle(self) -> None:
        """Every action ran: the markers on screen follow the current object's prompt history (Undo, Redo)."""
        state = self.last_outcome.state if self.last_outcome is not None else None
        if state is not None and self.last_outcome.tag == self.object_id:
            self.prompts.follow_history(len(state.history), state.can_redo)
        self.state_changed.emit()

    def _image_present(self) -> bool:
        """The attached image is still in the viewer (it may be gone before :meth:`_layer_gone` ran)."""
        return self.view is not None and self.view.layer in self.viewer.layers

    def _on_layer_removed(self, event) -> None:
        # Never react inside napari's removal event: a notification (or a layer change) shown while the viewer
        # is still redrawing the output layers crashes Qt. React once the event is over.
        QTimer.singleShot(0, lambda layer=event.value: self._layer_gone(layer))

    def _layer_gone(self, layer) -> None:
        if layer in self.viewer.layers:  # it came back meanwhile
            return
        self._set_aside = {k: v for k, v in self._set_aside.items() if not L.bound_to(k, layer)}
        if self.view is not None and layer is self.view.layer:
            self.detach()
            self.notify(
                "The image layer was removed; annotation stopped. Pick an image and Initialize again.", "warning"
            )
            self.state_changed.emit()
        elif layer is self.output.choice:
            self.output.choice = None
            self.state_changed.emit()
        elif any(t.layer is layer for t in self.targets.values()):  # objects of that layer leave the list
            self.state_changed.emit()


def _predicted(outcome: Outcome) -> bool:
    """Whether the action ran a prediction that left nothing queued (not only queued a prompt, not an undo)."""
    return outcome.kind in ("prompt", "mask", "predict") and outcome.change is not None and not outcome.change.pending
