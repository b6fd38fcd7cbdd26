"""Session files for the widget: build a document from the layers, restore one, autosave in the background.

No Qt widgets here. Masks of the objects are read from their output layers (the user may have
edited them by hand); prompt histories come from the session through the worker's outcomes.
Writing (bit-packing and compressing) runs on a napari thread worker, one save at a time; a save
requested meanwhile runs after it with the newest state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._annotator import Annotator, ObjectTarget, OutputMode
from ._worker import Action
from .core.document import (
    ImageRef,
    ObjectRecord,
    SessionDocument,
    SessionFileError,
    autosave_path,
    load_document,
    save_document,
)

log = logging.getLogger(__name__)


def image_ref(annotator: Annotator) -> ImageRef:
    view = annotator.view
    source = getattr(getattr(view.layer, "source", None), "path", None)
    return ImageRef.of(view.volume, view.layer.name, source)


def document_of(annotator: Annotator) -> SessionDocument:
    """The annotation in the viewer as a document (GUI thread)."""
    view = annotator.view
    objects = []
    for object_id, target in sorted(annotator.targets.items()):
        if target.layer not in annotator.viewer.layers:
            continue
        mask = np.asarray(target.layer.data) == target.value
        if view.squeeze2d:
            mask = mask[None]
        if not mask.any() and object_id != annotator.object_id:
            continue
        color = tuple(float(c) for c in np.ravel(target.layer.get_color(target.value))[:4]) \
            if target.layer.get_color(target.value) is not None else None
        name = target.layer.name if annotator.mode is OutputMode.SEPARATE else f"object {object_id + 1}"
        objects.append(ObjectRecord(target.value, name, mask, annotator.histories.get(object_id, ()), color,
                                    bool(target.layer.visible)))
    current = annotator.targets[annotator.object_id].value if annotator.object_id in annotator.targets else None
    return SessionDocument(image_ref(annotator), objects, current,
                           {"mode": annotator.mode.value, "class_id": int(annotator.class_id)})


def restore_into(annotator: Annotator, doc: SessionDocument) -> str | None:
    """Write ``doc``'s objects into output layers and make its current object editable again.

    Returns a message for the user when ``doc`` does not belong to the annotated image.
    """
    view = annotator.view
    problem = doc.image.mismatch(view.volume)
    if problem:
        return f"This session belongs to another image ({problem}); open '{doc.image.name}' and try again."
    annotator.targets, annotator.histories = {}, {}
    current_id = None
    for object_id, record in enumerate(doc.objects):
        layer = annotator._output_layer(object_id)
        annotator.targets[object_id] = ObjectTarget(layer, record.label)
        annotator.histories[object_id] = record.prompts
        if record.label == doc.current:
            current_id = object_id
            continue  # written by the session's restore outcome
        data = np.asarray(layer.data)
        mask = record.mask[0] if view.squeeze2d else record.mask
        data[mask & ((data == 0) | annotator.overwrite)] = record.label
        layer.visible = record.visible
        layer.refresh()
    if current_id is None:  # the last session ended on a fresh, empty object
        current_id = len(doc.objects)
        annotator.object_id = current_id
        annotator.runner.submit(Action("next", tag=current_id))
    else:
        annotator.object_id = current_id
        record = doc.objects[current_id]
        annotator.runner.submit(Action("restore", tag=current_id, payload=(record.mask, record.prompts)))
    annotator._clear_prompt_layers()
    annotator.on_state()
    return None


class Autosaver:
    """Saves the annotation to one file per image after every finished interaction, off the GUI thread."""

    def __init__(self, annotator: Annotator, folder: Path, on_error: Callable[[str], None]):
        self.annotator = annotator
        self.folder = Path(folder)
        self.on_error = on_error
        self.worker = None
        self._again = False
        self.saves = 0
        self.last_error: str | None = None

    def path(self) -> Path:
        return autosave_path(image_ref(self.annotator), self.folder)

    def request(self) -> None:
        """Save soon: now if no save runs, else right after the running one."""
        if self.annotator.view is None:
            return
        if self.worker is not None:
            self._again = True
            return
        from napari.qt.threading import create_worker

        doc, path = document_of(self.annotator), self.path()

        def work():
            try:
                save_document(doc, path)
                return None
            except SessionFileError as exc:
                return f"Autosave failed: {exc}"

        self.worker = create_worker(work, _start_thread=False)
        self.worker.returned.connect(self._saved)
        self.worker.start()

    def _saved(self, error: str | None) -> None:
        self.worker = None
        self.saves += 1
        if error and error != self.last_error:
            self.on_error(error)  # reported once per distinct problem, not after every click
        self.last_error = error
        if self._again:
            self._again = False
            self.request()

    @property
    def busy(self) -> bool:
        return self.worker is not None


def find_autosave(annotator: Annotator, folder: Path) -> SessionDocument | None:
    """The autosave of the annotated image, if one exists and can be read."""
    path = autosave_path(image_ref(annotator), folder)
    if not path.is_file():
        return None
    try:
        doc = load_document(path)
    except SessionFileError as exc:
        log.warning("ignoring unreadable autosave: %s", exc)
        return None
    return doc if doc.image.mismatch(annotator.view.volume) is None and doc.objects else None
