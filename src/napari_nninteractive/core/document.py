"""Session files: everything needed to resume annotating an image, in one ``.npz`` with JSON inside.

A :class:`SessionDocument` holds a reference to the image (path if known, name, shape, dtype and a
content fingerprint, never the voxels), and the objects: label value, name, colour, visibility,
mask and prompt history. :func:`save_document` writes atomically (temporary file in the same
folder, flushed, then renamed over the old file: :mod:`.atomic`), so a crash or a full disk never leaves a
half-written session; :func:`load_document` checks what it reads and says what is wrong.

File layout (``numpy.savez_compressed``, readable without this package)::

    document.json        uint8 bytes of a UTF-8 JSON object (format, image, objects, ...)
    mask_<i>             bit-packed mask crop of object i (bbox and shape in the JSON)
    prompt_<i>_<j>       bit-packed crop of prompt j of object i (scribble, lasso, initial mask)

Points and boxes are plain JSON. Nothing here imports Qt or napari.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import replacing
from .geometry import PackedMask
from .prompts import Box, InitialMask, Lasso, Point, Prompt, Scribble

FORMAT = "napari-nninteractive session"
VERSION = 2  # 2: ``current`` is the index of the object in ``objects`` (1: its label value)


class SessionFileError(RuntimeError):
    """A session file that cannot be written or used; the message says why and what to do."""


@dataclass(frozen=True)
class ImageRef:
    """What identifies the image a session belongs to (the voxels are not stored)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    fingerprint: str
    path: str | None = None

    @classmethod
    def of(cls, image: np.ndarray, name: str = "image", path: str | Path | None = None) -> ImageRef:
        return cls(name, tuple(int(s) for s in np.shape(image)), str(image.dtype), fingerprint(image),
                   None if path is None else str(path))

    def mismatch(self, image: np.ndarray) -> str | None:
        """Why ``image`` is not this session's image, or ``None`` when it is."""
        if tuple(np.shape(image)) != self.shape:
            return f"the session was made on an image of shape {self.shape}, this one has {tuple(np.shape(image))}"
        if fingerprint(image) != self.fingerprint:
            return "the session was made on an image with different voxel values"
        return None


def fingerprint(image: np.ndarray, max_samples: int = 1 << 20) -> str:
    """A short hash of shape, dtype and an evenly strided sample of at most ``max_samples`` voxels.

    Reads only the sample, so it is cheap on large or lazily loaded images.
    """
    arr = image
    n = int(np.prod(np.shape(arr))) or 1
    step = max(1, int(np.ceil((n / max_samples) ** (1 / max(1, len(np.shape(arr)))))))
    sample = np.ascontiguousarray(np.asarray(arr[tuple(slice(None, None, step) for _ in np.shape(arr))]))
    h = hashlib.blake2b(digest_size=12)
    h.update(repr((tuple(np.shape(arr)), str(sample.dtype), step)).encode())
    h.update(sample.tobytes())
    return h.hexdigest()


@dataclass
class ObjectRecord:
    """One annotated object: its label value, name, display settings, mask and prompt history."""

    label: int
    name: str
    mask: np.ndarray  # full-size bool/0-1
    prompts: tuple[Prompt, ...] = ()
    color: tuple[float, float, float, float] | None = None
    visible: bool = True


@dataclass
class SessionDocument:
    """The whole resumable state: image reference, objects, and which object is being edited."""

    image: ImageRef
    objects: list[ObjectRecord] = field(default_factory=list)
    current: int | None = None  # index in ``objects`` of the object being edited
    settings: dict = field(default_factory=dict)  # free-form (output mode, engine, ...)


# ----------------------------------------------------------------------------- save


def _prompt_item(prompt: Prompt, key: str, arrays: dict) -> dict:
    if isinstance(prompt, Point):
        return {"type": "point", "positive": bool(prompt.positive), "coord": [float(c) for c in prompt.coord]}
    if isinstance(prompt, Box):
        return {"type": "bbox", "positive": bool(prompt.positive), "bbox": [[int(a), int(b)] for a, b in prompt.bbox]}
    arrays[key] = PackedMask.of_region(prompt.bbox, prompt.mask).bits
    item = {"type": prompt.kind.value, "positive": bool(prompt.positive), "array": key,
            "bbox": [[int(a), int(b)] for a, b in prompt.bbox]}
    if isinstance(prompt, InitialMask):
        item["refine"] = bool(prompt.refine)
    return item


def document_arrays(doc: SessionDocument) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` (``document.json`` included)."""
    arrays: dict[str, np.ndarray] = {}
    objects = []
    for i, obj in enumerate(doc.objects):
        packed = PackedMask.of(obj.mask)
        arrays[f"mask_{i}"] = packed.bits
        objects.append({
            "label": int(obj.label), "name": str(obj.name), "visible": bool(obj.visible),
            "color": None if obj.color is None else [float(c) for c in obj.color],
            "mask_shape": [int(s) for s in np.shape(obj.mask)], "mask_bbox": None if packed.bbox is None else [list(b) for b in packed.bbox],
            "prompts": [_prompt_item(p, f"prompt_{i}_{j}", arrays) for j, p in enumerate(obj.prompts)],
        })
    meta = {"format": FORMAT, "version": VERSION,
            "image": {"name": doc.image.name, "shape": list(doc.image.shape), "dtype": doc.image.dtype,
                      "fingerprint": doc.image.fingerprint, "path": doc.image.path},
            "current": doc.current, "settings": doc.settings, "objects": objects}
    arrays["document.json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return arrays


def save_document(doc: SessionDocument, path: str | Path, _writer=None) -> Path:
    """Write ``doc`` to ``path`` atomically; the previous file survives any failure.

    Raises :class:`SessionFileError` (e.g. disk full, no permission) with the reason; the
    temporary file is removed (see :func:`.atomic.replacing`). ``_writer(file, arrays)`` replaces ``np.savez_compressed`` in tests.
    """
    path = Path(path)
    arrays = document_arrays(doc)
    writer = _writer or (lambda f, a: np.savez_compressed(f, **a))
    writing = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:
            writing = True
            with open(tmp, "wb") as f:
                writer(f, arrays)
                f.flush()
                os.fsync(f.fileno())
    except OSError as exc:
        if not writing:
            raise SessionFileError(f"Cannot write the session to {path.parent}: {exc.strerror or exc}. "
                                   f"Choose another folder.") from None
        raise SessionFileError(f"Saving the session to {path} failed ({exc.strerror or exc}); the previous "
                               f"save is unchanged. Free disk space or choose another folder.") from None
    return path


# ----------------------------------------------------------------------------- load


def _prompt_from_item(item: dict, data, where: str) -> Prompt:
    kind = item.get("type")
    positive = bool(item.get("positive", True))
    if kind == "point":
        return Point(tuple(item["coord"]), positive)
    if kind == "bbox":
        return Box(tuple(tuple(b) for b in item["bbox"]), positive)
    cls = {"scribble": Scribble, "lasso": Lasso, "mask": InitialMask}.get(kind)
    if cls is None:
        raise SessionFileError(f"{where}: unknown prompt type {kind!r}.")
    box = tuple(tuple(int(v) for v in b) for b in item["bbox"])
    crop = PackedMask(box, data[item["array"]]).crop()
    if cls is InitialMask:
        return InitialMask(crop, box, True, bool(item.get("refine", False)))
    return cls(crop, box, positive)


def load_document(path: str | Path) -> SessionDocument:
    """Read a session file; :class:`SessionFileError` says what is wrong with it."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["document.json"]).decode())
            if meta.get("format") != FORMAT:
                raise SessionFileError(f"{path} is not a napari-nninteractive session file.")
            if int(meta.get("version", 0)) > VERSION:
                raise SessionFileError(f"{path} was written by a newer napari-nninteractive (format "
                                       f"{meta['version']}); update the plugin to open it.")
            im = meta["image"]
            image = ImageRef(im["name"], tuple(im["shape"]), im["dtype"], im["fingerprint"], im.get("path"))
            objects = []
            for i, o in enumerate(meta["objects"]):
                box = None if o["mask_bbox"] is None else tuple(tuple(b) for b in o["mask_bbox"])
                prompts = tuple(_prompt_from_item(p, data, f"object {o['label']} prompt {j}")
                                for j, p in enumerate(o["prompts"]))
                objects.append(ObjectRecord(int(o["label"]), o["name"], PackedMask(box, data[f"mask_{i}"]).unpack(o["mask_shape"]),
                                            prompts, None if o["color"] is None else tuple(o["color"]), bool(o["visible"])))
            current = meta.get("current")
            if int(meta.get("version", 0)) < 2 and current is not None:  # version 1 named it by label value
                current = next((i for i, o in enumerate(objects) if o.label == current), None)
            return SessionDocument(image, objects, current, meta.get("settings") or {})
    except SessionFileError:
        raise
    except FileNotFoundError:
        raise SessionFileError(f"{path} does not exist.") from None
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise SessionFileError(f"{path} is not a readable session file ({type(exc).__name__}: {exc}); it may be "
                               f"damaged or not a session file.") from None


# ----------------------------------------------------------------------------- autosave


def safe_name(name: str) -> str:
    """``name`` usable as a file name on every system (in-memory layers have arbitrary names)."""
    return (re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image")[:60]


def autosave_path(ref: ImageRef, root: str | Path) -> Path:
    """Where the autosave of the image ``ref`` lives under ``root`` (one file per image)."""
    return Path(root) / f"{safe_name(ref.name)}-{ref.fingerprint[:16]}.nnisession.npz"


def capture_object(session, label: int, name: str, color=None, visible: bool = True) -> ObjectRecord:
    """The session's current object as a record (mask copied, prompt history kept)."""
    return ObjectRecord(int(label), name, session.mask.astype(bool), tuple(session.prompt_history), color, visible)


__all__ = ["ImageRef", "ObjectRecord", "SessionDocument", "SessionFileError", "save_document", "load_document",
           "autosave_path", "capture_object", "fingerprint", "safe_name"]
