"""Session files: everything needed to resume annotating an image, in one ``.npz`` with JSON inside.

A :class:`SessionDocument` holds a reference to the image (path if known, name, shape, dtype and a
content fingerprint, never the voxels), and the objects: label value, name, colour, visibility,
mask, prompt history and how it was predicted (``rounds``, left out by older versions).
:func:`save_document` writes atomically (temporary file in the same
folder, flushed, then renamed over the old file: :mod:`.atomic`), so a crash or a full disk never leaves a
half-written session; :func:`load_document` checks what it reads and says what is wrong.

File layout (``numpy.savez_compressed``, readable without this package)::

    document.json        uint8 bytes of a UTF-8 JSON object (format, image, objects, ...)
    mask_<i>             bit-packed mask crop of object i (bbox and shape in the JSON)
    prompt_<i>_<j>       bit-packed crop of prompt j of object i (scribble, lasso, initial mask)

Prompt items are :mod:`.codec` items: points and boxes plain JSON, region prompts with
``"array"`` (the member holding their crop) and ``"bbox"``. Nothing here imports Qt or napari.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import numpy as np

from . import codec, jsonio
from .atomic import replacing
from .errors import MAX_JSON_BYTES, OutputError, UserError
from .geometry import BBox, PackedMask, bbox_shape, bbox_to_slices, nonzero_bbox
from .npyfile import member_header
from .prompts import Box, Point, Prompt
from .undo import Rounds, read_rounds

if TYPE_CHECKING:
    from numpy.lib.npyio import NpzFile

    from .session import Session

FORMAT = "napari-nninteractive session"
#: The file-name ending of session files (autosaves, and what the open dialog offers).
SUFFIX = ".nnisession.npz"
VERSION = 2  # 2: ``current`` is the index of the object in ``objects`` (1: its label value)


#: The most voxels a session's image may have, and the most its masks and prompt crops may take unpacked.
MAX_VOXELS = 2**36


class SessionFileError(UserError, RuntimeError):
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
        return cls(
            name,
            tuple(int(s) for s in np.shape(image)),
            str(image.dtype),
            fingerprint(image),
            None if path is None else str(path),
        )

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
    #: How ``prompts`` were predicted (:data:`.undo.Rounds`); ``None``: not known (a file of an older version).
    rounds: Rounds | None = None


@dataclass
class SessionDocument:
    """The whole resumable state: image reference, objects, and which object is being edited."""

    image: ImageRef
    objects: list[ObjectRecord] = field(default_factory=list)
    current: int | None = None  # index in ``objects`` of the object being edited
    settings: dict[str, Any] = field(default_factory=dict)  # free-form (output mode, engine, ...)


# ----------------------------------------------------------------------------- save


def _prompt_item(prompt: Prompt, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The JSON item of ``prompt`` (:func:`.codec.encode`); a region's crop goes to ``arrays[key]``."""

    def region(p: codec.RegionPrompt) -> dict[str, Any]:
        assert p.bbox is not None  # session prompts are validated, and validated() always sets the bbox
        arrays[key] = PackedMask.of_region(p.bbox, p.mask).bits
        return {"array": key, "bbox": codec.box_field(p.bbox)}

    return codec.encode(prompt, region)


def document_arrays(doc: SessionDocument) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` (``document.json`` included)."""
    arrays: dict[str, np.ndarray] = {}
    objects = []
    for i, obj in enumerate(doc.objects):
        packed = PackedMask.of(obj.mask)
        arrays[f"mask_{i}"] = packed.bits
        objects.append(
            {
                "label": int(obj.label),
                "name": str(obj.name),
                "visible": bool(obj.visible),
                "color": None if obj.color is None else [float(c) for c in obj.color],
                "mask_shape": [int(s) for s in np.shape(obj.mask)],
                "mask_bbox": None if packed.bbox is None else [list(b) for b in packed.bbox],
                "prompts": [_prompt_item(p, f"prompt_{i}_{j}", arrays) for j, p in enumerate(obj.prompts)],
            }
        )
        if obj.rounds is not None:  # not known for objects of files from older versions: left out, as there
            objects[-1]["rounds"] = [[int(n), bool(f)] for n, f in obj.rounds]
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "image": {
            "name": doc.image.name,
            "shape": list(doc.image.shape),
            "dtype": doc.image.dtype,
            "fingerprint": doc.image.fingerprint,
            "path": doc.image.path,
        },
        "current": doc.current,
        "settings": doc.settings,
        "objects": objects,
    }
    arrays["document.json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return arrays


def save_document(
    doc: SessionDocument, path: str | Path, _writer: Callable[[IO[bytes], dict[str, np.ndarray]], None] | None = None
) -> Path:
    """Write ``doc`` to ``path`` atomically; the previous file survives any failure.

    Raises :class:`SessionFileError` (e.g. disk full, no permission, ``path`` is a folder or the
    image file itself) with the reason; the temporary file is removed (see
    :func:`.atomic.replacing`). ``_writer(file, arrays)`` replaces ``np.savez_compressed`` in tests.
    """
    path = Path(path)
    arrays = document_arrays(doc)
    # numpy's stub types **kwds and the keyword allow_pickle: bool together, so a dict of arrays cannot be
    # unpacked without this; the keys are member names (mask_0, document.json), never allow_pickle
    writer = _writer or (lambda f, a: np.savez_compressed(f, **a))  # type: ignore[arg-type]
    try:
        with (
            replacing(path, inputs=[doc.image.path], make_parents=True, what="session file") as tmp,
            open(tmp, "wb") as f,
        ):
            writer(f, arrays)
    except OutputError as exc:
        raise SessionFileError(f"Cannot write the session: {exc}") from None
    return path


# ----------------------------------------------------------------------------- load


def _spatial(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The session-frame (z, y, x) shape of masks on an image of ``shape`` (2-D: one slice; 4-D: channels first)."""
    return (1,) + shape if len(shape) == 2 else shape[-3:]


def _bits(data: NpzFile, key: str, size: int | None, where: str, most: int = 0) -> np.ndarray:
    """The member ``key`` of the archive, refused unless its ``.npy`` header says 1-D uint8 of ``size`` bytes.

    ``size=None`` accepts up to ``most`` bytes. The header is read from the zip before numpy
    allocates anything, and the member's stored size must agree with it.
    """
    head = member_header(data, key)
    if head is None:
        raise SessionFileError(f"{where}: the archive has no array {key!r} (or it is not an array).")
    shape, dtype, header, stored = head
    n = shape[0] if len(shape) == 1 else -1
    if dtype != np.uint8 or not (n == size if size is not None else 0 <= n <= most) or stored != header + n:
        want = f"{size} bytes" if size is not None else f"at most {most} bytes"
        raise SessionFileError(
            f"{where}: array {key!r} holds {shape} {dtype} ({stored} bytes stored), not "
            f"the {want} (1-D uint8) its description needs."
        )
    return data[key]


def _packed(data: NpzFile, key: str, box: BBox | None, where: str) -> PackedMask:
    """The bit-packed crop over ``box`` (``None``: empty) stored as member ``key``.

    Its length must be the box's, and the padding bits after the box's voxels zero (as
    ``np.packbits`` leaves them): a box that disagrees with the stored bits is refused.
    """
    count = 0 if box is None else math.prod(bbox_shape(box))
    bits = _bits(data, key, -(-count // 8), where)
    if count % 8 and int(bits[-1]) & (0xFF >> (count % 8)):
        assert box is not None  # count > 0
        raise SessionFileError(f"{where}: array {key!r} has more voxels than its bbox {[list(b) for b in box]}.")
    return PackedMask(box, bits)


def _prompt_from_item(item: Any, shape: tuple[int, ...], where: str) -> tuple[int, Callable[[NpzFile], Prompt]]:
    """Check one prompt item against the spatial ``shape`` (:func:`.codec.decode`, stored items).

    Returns the voxels its crop will take and a function reading the prompt from the archive.
    """

    def region(head: codec.Region, item: dict[str, Any], where: str) -> tuple[int, Callable[[NpzFile], Prompt]]:
        box = codec.bbox_of(item, shape, where, SessionFileError, stored=True)
        key = jsonio.get(item, "array", str, where, SessionFileError)
        return math.prod(bbox_shape(box)), lambda data: head.make(_packed(data, key, box, where).crop(), box)

    # a point, a box, or what ``region`` returned
    decoded: Point | Box | tuple[int, Callable[[NpzFile], Prompt]] = codec.decode(
        item, shape, where, SessionFileError, stored=True, region=region
    )
    if isinstance(decoded, (Point, Box)):
        return 0, lambda data: decoded
    return decoded


def _object_from_item(
    o: Any, i: int, shape: tuple[int, ...], where: str
) -> tuple[int, Callable[[NpzFile], ObjectRecord]]:
    """Check object ``i`` of the document; returns the voxels it will take and a function reading it."""
    if not isinstance(o, dict):
        raise SessionFileError(f"{where} must be a JSON object, not {jsonio.type_name(o)}.")
    label = cast(
        int,
        jsonio.as_number(
            jsonio.get(o, "label", int, where, SessionFileError),
            f"{where}: 'label'",
            SessionFileError,
            integer=True,
            lo=0,
            hi=2**32 - 1,
        ),
    )  # integer=True: an int
    name = jsonio.get(o, "name", str, where, SessionFileError)
    visible = jsonio.get(o, "visible", bool, where, SessionFileError)
    color = jsonio.get(o, "color", (list, type(None)), where, SessionFileError)
    if color is not None:
        color = tuple(jsonio.as_numbers(color, 4, f"{where}: 'color'", SessionFileError, lo=0, hi=1))
    mask_shape = tuple(jsonio.get(o, "mask_shape", list, where, SessionFileError))
    if mask_shape != shape:
        raise SessionFileError(f"{where}: 'mask_shape' {list(mask_shape)} is not the image's {list(shape)}.")
    box = jsonio.get(o, "mask_bbox", (list, type(None)), where, SessionFileError)
    box = None if box is None else codec.inside_box(box, shape, f"{where}: 'mask_bbox'", SessionFileError)
    prompts = [
        _prompt_from_item(p, shape, f"{where} prompt {j}")
        for j, p in enumerate(jsonio.get(o, "prompts", list, where, SessionFileError))
    ]
    rounds = o.get("rounds")  # absent in files of older versions; read_rounds checks what it holds
    if rounds is not None:
        try:
            rounds = read_rounds(rounds, len(prompts))
        except ValueError as exc:
            raise SessionFileError(f"{where}: 'rounds' is not valid: {exc}.") from None

    def read(data: NpzFile) -> ObjectRecord:
        mask = np.zeros(shape, bool)
        if box is not None:  # the stored crop is the mask's tight bbox (PackedMask.of)
            crop = _packed(data, f"mask_{i}", box, where).crop()
            if nonzero_bbox(crop) != tuple((0, hi - lo) for lo, hi in box):
                raise SessionFileError(
                    f"{where}: 'mask_bbox' {[list(b) for b in box]} is not the bbox of the stored mask."
                )
            mask[bbox_to_slices(box)] = crop
        else:
            _packed(data, f"mask_{i}", None, where)
        return ObjectRecord(label, name, mask, tuple(make(data) for _, make in prompts), color, visible, rounds)

    return math.prod(shape) + sum(v for v, _ in prompts), read


def _image_ref(meta: dict[str, Any], where: str) -> ImageRef:
    im = jsonio.get(meta, "image", dict, where, SessionFileError)
    where = f"{where} image"
    shape = jsonio.get(im, "shape", list, where, SessionFileError)
    if not 2 <= len(shape) <= 4:
        raise SessionFileError(f"{where}: 'shape' {shape} must have 2 to 4 axes.")
    shape = tuple(jsonio.as_numbers(shape, None, f"{where}: 'shape'", SessionFileError, True, 1, 2**31))
    if math.prod(shape) > MAX_VOXELS:
        raise SessionFileError(f"{where}: 'shape' {list(shape)} has more than 2**{MAX_VOXELS.bit_length() - 1} voxels.")
    text = {k: jsonio.get(im, k, str, where, SessionFileError) for k in ("name", "dtype", "fingerprint")}
    return ImageRef(
        text["name"],
        shape,
        text["dtype"],
        text["fingerprint"],
        jsonio.get(im, "path", (str, type(None)), where, SessionFileError, None),
    )


try:
    from lzma import LZMAError

    _LZMA_ERRORS: tuple[type[Exception], ...] = (LZMAError,)
except ImportError:  # Python built without lzma: zipfile cannot open such members either (zlib.error is caught anyway)
    _LZMA_ERRORS = ()

#: What reading a truncated, corrupted, encrypted or oddly compressed archive raises.
_ARCHIVE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    EOFError,
    ValueError,
    zipfile.BadZipFile,
    zlib.error,
    *_LZMA_ERRORS,
    NotImplementedError,  # compression method zipfile does not know
    RuntimeError,
)  # encrypted member


@contextmanager
def _hint() -> Iterator[None]:
    """Adds what to do to a :class:`SessionFileError` about the file's contents."""
    try:
        yield
    except SessionFileError as exc:
        raise SessionFileError(
            f"{exc} The session file is damaged or was changed by hand; open an earlier save or the autosave."
        ) from None


def _document(data: NpzFile, path: Path) -> SessionDocument:
    """The document of the open archive ``data``: the JSON is checked whole before any array is read."""
    where = str(path)
    if "document.json" not in data.files:
        raise SessionFileError(
            f"{path} is not a readable session file (it has no document.json); pick a "
            f"{SUFFIX} file saved by napari-nninteractive."
        )
    with _hint():
        raw = _bits(data, "document.json", None, where, MAX_JSON_BYTES["session"])
        meta = jsonio.loads(raw.tobytes(), f"{path} (document.json)", SessionFileError)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SessionFileError(f"{path} is not a napari-nninteractive session file.")
    version = meta.get("version", 0)
    if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
        raise SessionFileError(
            f"{path} was written by a newer napari-nninteractive (format {version}); update the plugin to open it."
        )
    with _hint():
        jsonio.as_number(version, f"{where}: 'version'", SessionFileError, integer=True, lo=0, hi=VERSION)
        image = _image_ref(meta, where)
        shape = _spatial(image.shape)
        items = jsonio.get(meta, "objects", list, where, SessionFileError)
        objects = [_object_from_item(o, i, shape, f"{where}: object {i}") for i, o in enumerate(items)]
        total = sum(v for v, _ in objects)
        if total > MAX_VOXELS:
            raise SessionFileError(
                f"{where}: its masks and prompts would take {total / 2**30:.0f} GiB to load, "
                f"more than the {MAX_VOXELS >> 30} GiB this plugin loads."
            )
        current = jsonio.get(meta, "current", (int, type(None)), where, SessionFileError, None)
        if version >= 2 and current is not None and not 0 <= current < len(objects):
            raise SessionFileError(
                f"{where}: 'current' = {current} is not the index of one of its {len(objects)} objects."
            )
        settings = jsonio.get(meta, "settings", (dict, type(None)), where, SessionFileError, None) or {}
        records = [read(data) for _, read in objects]
    if version < 2 and current is not None:  # version 1 named it by label value
        current = next((i for i, o in enumerate(records) if o.label == current), None)
    return SessionDocument(image, records, current, settings)


def load_document(path: str | Path) -> SessionDocument:
    """Read a session file; :class:`SessionFileError` says what is wrong with it.

    Nothing is allocated before it is checked: ``document.json`` is read within
    :data:`~.errors.MAX_JSON_BYTES` and every field's type and range checked; each array's
    ``.npy`` header must promise exactly the bytes the description needs, every shape must be
    the image's, and the total unpacked size at most :data:`MAX_VOXELS` voxels. A truncated or
    corrupted archive is reported as damaged.
    """
    path = Path(path)
    if path.is_dir():
        raise SessionFileError(f"{path} is a folder, not a session file; pick the .npz file inside it.")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise SessionFileError(f"{path} does not exist.") from None
    except OSError as exc:
        raise SessionFileError(f"{path} cannot be read ({exc.strerror or exc}); check that you may read it.") from None
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise SessionFileError(
            f"{path} is not a readable session file (not an .npz archive); pick a "
            f"{SUFFIX} file saved by napari-nninteractive."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            return _document(data, path)
    except SessionFileError:
        raise
    except _ARCHIVE_ERRORS as exc:
        raise SessionFileError(
            f"{path} is not a readable session file: it is damaged or truncated "
            f"({type(exc).__name__}: {exc}). Open an earlier save or the autosave."
        ) from None
    except MemoryError:
        raise SessionFileError(
            f"{path} declares masks too large for the free memory; it is not a session of an "
            "image that fits here. Open it on a machine with more memory, or an earlier save."
        ) from None


# ----------------------------------------------------------------------------- autosave


def safe_name(name: str) -> str:
    """``name`` usable as a file name on every system (in-memory layers have arbitrary names)."""
    return (re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image")[:60]


def autosave_path(ref: ImageRef, root: str | Path) -> Path:
    """Where the autosave of the image ``ref`` lives under ``root`` (one file per image)."""
    return Path(root) / f"{safe_name(ref.name)}-{ref.fingerprint[:16]}{SUFFIX}"


def capture_object(
    session: Session,
    label: int,
    name: str,
    color: tuple[float, float, float, float] | None = None,
    visible: bool = True,
) -> ObjectRecord:
    """The session's current object as a record (mask copied, prompt history and its rounds kept)."""
    return ObjectRecord(
        int(label),
        name,
        session.mask.astype(bool),
        tuple(session.prompt_history),
        color,
        visible,
        session.prediction_rounds,
    )


__all__ = [
    "SUFFIX",
    "ImageRef",
    "ObjectRecord",
    "SessionDocument",
    "SessionFileError",
    "autosave_path",
    "capture_object",
    "fingerprint",
    "load_document",
    "safe_name",
    "save_document",
]
