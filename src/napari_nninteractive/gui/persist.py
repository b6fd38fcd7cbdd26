"""Session files for the widget: build a document from the layers, restore one, autosave in the background.

No Qt widgets here. Masks of the objects are read from their output layers (the user may have
edited them by hand); prompt histories come from the session through the worker's outcomes.
The GUI thread only gathers references (:func:`object_sources`); comparing the layers with each
label value, bit-packing and compressing run on a napari thread worker (:func:`save_worker`).
A save requested while one runs follows it with the newest state.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..core.document import (
    SUFFIX,
    ImageRef,
    ObjectRecord,
    SessionDocument,
    SessionFileError,
    autosave_path,
    load_document,
    save_document,
)
from ..core.geometry import PackedMask, bbox_to_slices
from ..core.undo import Rounds
from . import layers as L
from .annotator import Annotator
from .objects import ObjectTarget, object_mask

log = logging.getLogger(__name__)


def image_ref(annotator: Annotator) -> ImageRef:
    """The reference of the annotated image (fingerprints the voxels: compute it once per image)."""
    view = annotator.view
    source = getattr(getattr(view.layer, "source", None), "path", None)
    return ImageRef.of(view.volume, view.layer.name, source)


@dataclass(frozen=True)
class _Source:
    """Where one object's mask is, plus what the document says about it (cheap to gather)."""

    data: np.ndarray  # the output layer's array (not copied)
    label: int
    name: str
    color: tuple[float, ...] | None
    visible: bool
    prompts: tuple
    rounds: Rounds | None
    keep_empty: bool
    own: PackedMask | None = None  # the object's finished voxels, when its label value is shared
    others: tuple[PackedMask, ...] = ()  # the other finished objects' voxels of a shared value


@dataclass(frozen=True)
class DocumentSources:
    """Everything a document needs, gathered on the GUI thread without touching voxels."""

    ref: ImageRef
    objects: tuple[_Source, ...]
    squeeze2d: bool
    settings: dict

    def build(self) -> SessionDocument:
        """The document (any thread; compares each layer with its label value)."""
        records, current = [], None
        for src in self.objects:
            mask = object_mask(src.data, src.label, self.squeeze2d, src.own, src.others)
            if src.keep_empty:
                current = len(records)
            if src.keep_empty or mask.any():
                records.append(ObjectRecord(src.label, src.name, mask, src.prompts, src.color, src.visible, src.rounds))
        return SessionDocument(self.ref, records, current, self.settings)


def object_sources(annotator: Annotator, ref: ImageRef) -> DocumentSources:
    """Gather the annotation's objects (GUI thread, no per-voxel work)."""
    objects = []
    for object_id, target in annotator.table.objects():
        own, others = annotator.table.ownership(object_id)
        objects.append(
            _Source(
                target.layer.data,
                target.value,
                target.name,
                annotator.table.object_color(object_id),  # as shown when visible
                target.visible and bool(target.layer.visible),
                annotator.histories.get(object_id, ()),
                annotator.rounds.get(object_id),
                object_id == annotator.object_id,
                own,
                others,
            )
        )
    return DocumentSources(
        ref,
        tuple(objects),
        annotator.view.squeeze2d,
        {"mode": annotator.mode.value, "class_id": int(annotator.class_id)},
    )


def _file_worker(write: Callable[[], object]):
    """A worker (not started) running ``write``; returns ``(its result, None)``, or ``(None, message)`` for a user
    error."""
    from napari.qt.threading import create_worker

    from .worker import user_errors

    def work():
        try:
            return write(), None
        except user_errors() as exc:
            return None, str(exc)
        except MemoryError:
            return None, "Out of memory while writing; close other programs and try again."

    return create_worker(work, _start_thread=False)


def save_worker(sources: DocumentSources, path: str | Path):
    """A worker (not started) that builds the document and saves it; returns ``(path, error message)``."""
    return _file_worker(lambda: save_document(sources.build(), path))


def restore_into(annotator: Annotator, doc: SessionDocument) -> str | None:
    """Write ``doc``'s objects into output layers and make its current object editable again.

    Returns a message for the user when ``doc`` does not belong to the annotated image.
    """
    view = annotator.view
    problem = doc.image.mismatch(view.volume)
    if problem:
        return f"This session belongs to another image ({problem}); open '{doc.image.name}' and try again."
    annotator.table.forget()
    current_id = None
    for object_id, record in enumerate(doc.objects):
        layer = annotator.output_layer(object_id)
        annotator.table.add(
            object_id,
            ObjectTarget(layer, record.label, record.name or f"object {object_id + 1}"),
            record.prompts,
            record.rounds,
        )
        if object_id == doc.current:
            current_id = object_id
            continue  # written by the session's restore outcome
        own = PackedMask.of(record.mask)
        if own.bbox is not None:
            annotator.own[object_id] = own
            region = record.mask[bbox_to_slices(own.bbox)].astype(np.uint8)
            L.write_object(layer, view, own.bbox, region, record.label, annotator.overwrite)
    for object_id, record in enumerate(doc.objects):
        if not record.visible:
            annotator.table.set_visible(object_id, False)
    if current_id is None:  # the last session ended on a fresh, empty object
        annotator.make_current(len(doc.objects))
    else:
        record = doc.objects[current_id]
        annotator.make_current(current_id, record.mask, record.prompts, record.rounds)
    return None


class Autosaver:
    """Saves the annotation to one file per image after every finished interaction, off the GUI thread."""

    def __init__(self, annotator: Annotator, ref: ImageRef, folder: Path, on_error: Callable[[str], None]):
        self.annotator = annotator
        self.ref = ref
        self._path = autosave_path(ref, folder)
        self.on_error = on_error
        self.worker = None
        self._again = False
        self.saves = 0
        self.last_error: str | None = None

    def path(self) -> Path:
        return self._path

    def request(self) -> None:
        """Save soon: now if no save runs, else right after the running one."""
        if self.annotator.view is None:
            return
        if self.worker is not None:
            self._again = True
            return
        self.worker = save_worker(object_sources(self.annotator, self.ref), self._path)
        self.worker.returned.connect(self._saved)
        self.worker.start()

    def _saved(self, result) -> None:
        self.worker = None
        self.saves += 1
        error = None if result[1] is None else f"Autosave failed: {result[1]}"
        if error and error != self.last_error:
            self.on_error(error)  # reported once per distinct problem, not after every click
        self.last_error = error
        if self._again:
            self._again = False
            self.request()

    @property
    def busy(self) -> bool:
        return self.worker is not None


#: How many earlier autosaves of one image are kept aside (bounds the disk they take).
KEEP = 3


@dataclass(frozen=True)
class Recovery:
    """An earlier autosave of the attached image, kept aside so that new work never replaces it."""

    path: Path
    objects: int
    saved: float  # when it was written (seconds since the epoch)
    #: The document as read (kept for the newest recovery only, so Restore does not read it again).
    document: SessionDocument | None = field(default=None, compare=False, repr=False)

    def label(self) -> str:
        """``3 objects, 12-04 05:40`` (for the Restore button)."""
        when = time.strftime("%m-%d %H:%M", time.localtime(self.saved))
        return f"{self.objects} object{'' if self.objects == 1 else 's'}, {when}"


def _kept_name(autosave: Path, saved: float) -> Path:
    """``<autosave stem>.recovered-<time><suffix>`` beside ``autosave``, a name no file has."""
    stem = autosave.name[: -len(SUFFIX)]
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(saved)) + f"-{int(saved * 1e6) % 1_000_000:06d}"
    for n in range(1000):
        path = autosave.with_name(f"{stem}.recovered-{stamp}{f'-{n}' if n else ''}{SUFFIX}")
        if not path.exists():
            return path
    raise FileExistsError(path)


def _recovery(path: Path, ref: ImageRef) -> Recovery | None:
    """``path`` as a recovery of image ``ref``, or ``None`` when it is unreadable, of another image or empty."""
    try:
        doc = load_document(path)
        saved = path.stat().st_mtime
    except (SessionFileError, OSError) as exc:
        log.warning("ignoring unreadable autosave: %s", exc)
        return None
    same = doc.image.fingerprint == ref.fingerprint and doc.image.shape == ref.shape
    return Recovery(path, len(doc.objects), saved, doc) if same and doc.objects else None


def keep_aside(ref: ImageRef, folder: Path, keep: int = KEEP) -> list[Recovery]:
    """Move the image's autosave aside (an atomic rename) and list its kept autosaves, newest first.

    Called when annotating the image starts, so the next autosave writes a new file instead of
    replacing what the last session left. At most ``keep`` are kept: the newest, and always the one
    with most objects; older ones (and unreadable ones) are deleted.
    """
    current = autosave_path(ref, folder)
    found = _recovery(current, ref) if current.is_file() else None
    if found is not None:
        aside = _kept_name(current, found.saved)
        try:
            os.replace(current, aside)
        except OSError as exc:  # cannot move it: offer it where it is (the next autosave replaces it)
            log.warning("cannot keep the autosave aside: %s", exc)
            return [found]
        found = replace(found, path=aside)
    stem = current.name[: -len(SUFFIX)]
    paths = sorted(folder.glob(f"{glob.escape(stem)}.recovered-*{SUFFIX}"), reverse=True)  # the name sorts by time
    others = (_recovery(p, ref) for p in paths if found is None or p != found.path)  # each file is read once
    kept = [r for r in ([found] if found is not None else []) + list(others) if r is not None]
    kept.sort(key=lambda r: r.saved, reverse=True)
    chosen = kept[:keep]
    richest = max(kept, key=lambda r: r.objects, default=None)
    if richest is not None and richest not in chosen and keep > 0:
        chosen[-1] = richest
    for path in set(paths) - {r.path for r in chosen}:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:  # not ours to delete after all: it only takes disk
            log.warning("cannot delete an old autosave: %s", exc)
    return [chosen[0]] + [replace(r, document=None) for r in chosen[1:]] if chosen else []


def export_worker(sources: DocumentSources, path: str | Path, kind: str, affine: np.ndarray | None):
    """A worker (not started) writing the objects as one label map.

    Returns ``((path, overlap note), None)``, or ``(None, error message)``; the note names the
    objects that lost voxels to later ones where objects overlap (``""`` when none did).
    """
    from ..io.export import describe_losses, label_map_with_losses, write_label_map

    def write() -> tuple[Path, str]:
        records = [r for r in sources.build().objects if r.mask.any()]
        masks = [r.mask[0] if sources.squeeze2d else r.mask for r in records]
        labels, losses = label_map_with_losses(masks, [r.label for r in records], kind)
        written = write_label_map(path, labels, affine, inputs=[sources.ref.path])
        return written, describe_losses(losses, [r.name for r in records])

    return _file_worker(write)
