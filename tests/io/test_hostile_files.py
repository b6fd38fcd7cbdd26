"""Files from someone else: prompt files, session files and NIfTI volumes that are broken or hostile.

Every case must end in the package's user error (one line naming the file, the field and the
fix), must not allocate what the file merely declares, and must leave the input file as it was.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_nninteractive.core import document as D
from napari_nninteractive.core.document import (
    ImageRef,
    ObjectRecord,
    SessionDocument,
    SessionFileError,
    document_arrays,
    load_document,
    save_document,
)
from napari_nninteractive.core.errors import UserError
from napari_nninteractive.core.prompts import Box, InitialMask, Lasso, Point, Scribble
from napari_nninteractive.io.prompt_file import MAX_POLYGON_VERTICES, PromptFileError, load_prompt_file
from napari_nninteractive.io.volumes import VolumeIOError, read_volume, write_mask

SHAPE = (6, 8, 10)
HUGE_INT = int("9" * 400)


def _snapshot(folder: Path) -> dict:
    """Contents of the small files, size and modification time of all (sparse giants are not read)."""
    return {
        p: (p.stat().st_size, p.stat().st_mtime_ns, p.is_file() and p.stat().st_size < 1 << 20 and p.read_bytes())
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture
def untouched(tmp_path):
    """Checks after the test that no file under ``tmp_path`` made before the check changed."""
    taken = {}
    yield lambda: taken.update(_snapshot(tmp_path))
    assert {p: v for p, v in _snapshot(tmp_path).items() if p in taken} == taken


def _mask_reader(path: Path) -> np.ndarray:
    return np.asarray(read_volume(path).array) != 0


# ----------------------------------------------------------------------------- prompt files


def _prompts(tmp_path, text: str | bytes) -> Path:
    path = tmp_path / "prompts.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _load_prompts(path: Path):
    return load_prompt_file(path, SHAPE, _mask_reader)


@pytest.mark.parametrize(
    "text, message",
    [
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe garbage \x00\x01", "not"),
        ('{"interactions": [{"type": "point", "coord": [NaN, 1, 1]}]}', "NaN is not a number JSON allows"),
        ('{"interactions": [{"type": "point", "coord": [Infinity, 1, 1]}]}', "Infinity is not a number JSON allows"),
        ('{"interactions": [{"type": "point", "coord": [-Infinity, 1, 1]}]}', "-Infinity is not a number JSON allows"),
        ("[" * 100_000 + "]" * 100_000, "nests JSON deeper"),
        ('{"interactions": ' + "[" * 70 + "]" * 70 + "}", "nests JSON deeper"),
        ('{"interactions": [', "not valid JSON"),
        ("[1, 2]", 'must hold {"interactions": [...]}'),
        ('{"interactions": {}}', 'must hold {"interactions": [...]}'),
        ('{"interactions": [], "extra": 1}', "unknown top-level key(s) ['extra']"),
    ],
)
def test_prompt_file_that_is_not_usable_json(tmp_path, untouched, text, message):
    path = _prompts(tmp_path, text)
    untouched()
    with pytest.raises(PromptFileError) as err:
        _load_prompts(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_prompt_file_folder_missing_unreadable_or_too_large(tmp_path, untouched, monkeypatch):
    folder = tmp_path / "folder.json"
    folder.mkdir()
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate((512 << 20) + 1)  # sparse: refused from its size, never read
    readable = _prompts(tmp_path, '{"interactions": []}')
    untouched()
    with pytest.raises(PromptFileError, match="is a folder, not a JSON file"):
        _load_prompts(folder)
    with pytest.raises(PromptFileError, match="does not exist"):
        _load_prompts(tmp_path / "missing.json")
    with pytest.raises(PromptFileError, match="the 512 MiB a prompts JSON file may have"):
        _load_prompts(big)

    import builtins

    real_open = builtins.open

    def denied(file, *args, **kwargs):  # tests run as root, where chmod 000 does not stop reading
        if str(file) == str(readable):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    with monkeypatch.context() as m, pytest.raises(PromptFileError, match="cannot be read \\(Permission denied\\)"):
        m.setattr(builtins, "open", denied)
        _load_prompts(readable)


def _item_cases():
    point = {"type": "point"}
    yield {**point, "coord": None}, "'coord' must be a list of 3 numbers"
    yield {**point, "coord": [[1, 2, 3]]}, "'coord' must be a list of 3 numbers"
    yield {**point, "coord": [1, 2]}, "'coord' must be a list of 3 numbers"
    yield {**point, "coord": ["1", 2, 3]}, "'coord'[0] must be a number, not a string"
    yield {**point, "coord": [True, 2, 3]}, "'coord'[0] must be a number, not true or false"
    yield {**point, "coord": [1, None, 3]}, "'coord'[1] must be a number, not null"
    yield {**point, "coord": [1, [2], 3]}, "'coord'[1] must be a number, not a list"
    yield {**point, "coord": [1, 2, HUGE_INT]}, "'coord'[2] = 999"
    yield {**point, "coord": [1, 2, 1e400]}, "'coord'[2] must be finite"
    yield {**point, "coord": [1, 2, 300]}, "'coord' [1, 2, 300] lies outside the image"
    yield {**point}, "missing key 'coord'"
    yield {"type": "bbox", "bbox": [1, 2, 3]}, "'bbox'[0] must be a list of 2 numbers"
    yield {"type": "bbox", "bbox": [[1, 2], [1, 2]]}, "'bbox' must be a list of 3 [lo, hi] pairs"
    yield {"type": "bbox", "bbox": [[1, 2], [1, 2], [1, 2, 3]]}, "'bbox'[2] must be a list of 2 numbers"
    yield {"type": "bbox", "bbox": [[1, 2], [1, "x"], [1, 2]]}, "'bbox'[1][1] must be a number"
    yield {"type": "bbox", "bbox": [[1, 2], [1, 2], [False, 2]]}, "'bbox'[2][0] must be a number"
    yield {"type": "bbox", "bbox": None}, "'bbox' must be a list of 3 [lo, hi] pairs"
    yield {"type": "bbox", "bbox": [[1, 2], [1, 2], [0, HUGE_INT]]}, "out of range"
    yield {"type": "scribble", "voxels": []}, "'voxels' must be a list of 1 to 480 lists of 3 numbers"
    yield {"type": "scribble", "voxels": "1,2,3"}, "'voxels' must be a list of 1 to 480"
    yield {"type": "scribble", "voxels": [[1, 2, 3]] * 481}, "not 481 rows"
    yield {"type": "scribble", "voxels": [[1, 2, 3], [1, 2]]}, "'voxels'[1] must be a list of 3 numbers"
    yield {"type": "scribble", "voxels": [[1, 2, 3], None]}, "'voxels'[1] must be a list of 3 numbers"
    yield {"type": "scribble", "voxels": [[1, 2, 3], [1, 2, "3"]]}, "'voxels'[1][2] must be a number"
    yield {"type": "scribble", "voxels": [[1, True, 3]]}, "'voxels'[0][1] must be a number"
    yield {"type": "scribble", "voxels": [[1, 2, HUGE_INT]]}, "'voxels'[0][2] = 999"
    yield {"type": "scribble", "voxels": [[1, 2, 3], [1, 2, 1e400]]}, "'voxels'[1][2] must be finite"
    yield {"type": "scribble", "voxels": [[1, 2, [3]]]}, "'voxels'[0][2] must be a number, not a list"
    yield {"type": "lasso", "voxels": [[1, 1, 1], [1, 1, 99]]}, "voxel [1, 1, 99] lies outside the image"
    yield {"type": "lasso", "polygon": [[1, 1, 1], [1, 5, 5]]}, "'polygon' must be a list of 3 to"
    yield {"type": "lasso", "polygon": [[1, 0, 0]] * (MAX_POLYGON_VERTICES + 1)}, "'polygon' must be a list of 3 to"
    yield {"type": "lasso", "polygon": [[1, 0, 0], [1, 0, "5"], [1, 5, 5]]}, "'polygon'[1][2] must be a number"
    yield {"type": "lasso", "polygon": [[1, 0, 0], [1, 0, 5], [1, 5, 1e400]]}, "'polygon'[2][2] must be finite"
    yield {"type": "lasso", "polygon": [[1, 0, 0], [1, 0, 5], [2, 5, 5]]}, "one slice"
    yield {"type": "lasso", "polygon": [[1, 0, 0]] * 3, "voxels": [[1, 1, 1]]}, "either 'voxels' or 'polygon'"
    yield {"type": "mask", "path": 123}, "field 'path' must be a string, not an integer"
    yield {"type": "mask", "path": ""}, "'path' is empty"
    yield {"type": "mask", "path": "m.nii.gz", "refine": "yes"}, "field 'refine' must be true or false"
    yield {"type": "mask", "path": "garbage.nii.gz"}, "cannot be read as nifti"
    yield {"type": "mask", "path": "folder.nii.gz"}, "is a folder, not a volume file"
    yield {"type": "mask", "path": "absent.nii.gz"}, "absent.nii.gz does not exist"
    yield {"type": "mask", "path": "small.nii.gz"}, "has shape (2, 2, 2) but the image has shape (6, 8, 10)"
    yield {"type": "point", "coord": [1, 2, 3], "positive": "yes"}, "field 'positive' must be true or false"
    yield {"type": "point", "coord": [1, 2, 3], "run": 1}, "field 'run' must be true or false, not an integer"
    yield {"type": ["point"]}, "unknown type ['point']"
    yield {"type": None}, "unknown type None"
    yield {"coord": [1, 2, 3]}, "unknown type None"
    yield {"type": "point", "coord": [1, 2, 3], "colour": "red"}, "unknown key(s) ['colour']"
    yield [1, 2, 3], "each interaction must be a JSON object, not a list"


ITEM_CASES = list(_item_cases())


@pytest.mark.parametrize("item, message", ITEM_CASES, ids=[f"{i}-{m[:30]}" for i, (_, m) in enumerate(ITEM_CASES)])
def test_prompt_item_with_a_bad_field(tmp_path, untouched, item, message):
    (tmp_path / "garbage.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    (tmp_path / "folder.nii.gz").mkdir()
    nib.save(nib.Nifti1Image(np.ones((2, 2, 2), np.uint8), np.eye(4)), str(tmp_path / "small.nii.gz"))
    text = json.dumps({"interactions": [{"type": "point", "coord": [0, 0, 0]}, item]})
    path = _prompts(tmp_path, text.replace("Infinity", "1e400"))  # a literal JSON number that parses as inf
    untouched()
    with pytest.raises(PromptFileError) as err:
        _load_prompts(path)
    text = str(err.value)
    assert message in text and str(path) in text and "interaction 1" in text and "\n" not in text
    assert isinstance(err.value, UserError)


def test_valid_prompt_file_still_loads(tmp_path):
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.uint8), np.eye(4)), str(tmp_path / "m.nii.gz"))
    items = [
        {"type": "point", "coord": [1.4, 2, 3]},
        {"type": "bbox", "bbox": [[1, 2], [0, 5], [0, 5]]},
        {"type": "scribble", "voxels": [[1, 2, 3], [1, 2, 4]], "positive": False},
        {"type": "lasso", "polygon": [[2, 0, 0], [2, 0, 6], [2, 6, 6]], "run": False},
        {"type": "mask", "path": "m.nii.gz", "refine": True},
    ]
    out = _load_prompts(_prompts(tmp_path, json.dumps({"interactions": items})))
    assert [i.prompt.kind.value for i in out] == ["point", "bbox", "scribble", "lasso", "mask"]
    assert out[0].prompt.coord == (1.4, 2, 3) and out[2].prompt.mask.sum() == 2 and not out[3].run


# ----------------------------------------------------------------------------- session files


def _region(box):
    lo = [a for a, _ in box]
    crop = np.zeros([b - a for a, b in box], bool)
    crop.flat[::2] = True
    return crop, box, lo


def _doc(shape=SHAPE) -> SessionDocument:
    spatial = (1,) + shape if len(shape) == 2 else shape[-3:]
    mask = np.zeros(spatial, bool)
    mask[0, 1, 3] = mask[0, 2, 2] = mask[0, 3, 6] = True  # bbox ((0, 1), (1, 4), (2, 7)), not a block
    box = ((0, 1), (1, 4), (2, 6))
    crop = _region(box)[0]
    prompts = (
        Point((0.0, 2.0, 3.0)),
        Box(((0, 1), (1, 5), (2, 6))),
        Scribble(crop, box, False),
        Lasso(crop, box),
        InitialMask(crop, box, True, True),
    )
    image = ImageRef("scan", shape, "float32", "f" * 24, None)
    objects = [ObjectRecord(3, "liver", mask, prompts, (1.0, 0.0, 0.0, 1.0)), ObjectRecord(7, "empty", mask & False)]
    return SessionDocument(image, objects, 1, {"output": "instance"})


def _write(path: Path, arrays: dict, meta: dict | None = None, raw: dict | None = None) -> Path:
    """An archive of ``arrays`` (``meta`` replaces document.json; ``raw`` members are written byte for byte)."""
    arrays = dict(arrays)
    if meta is not None:
        text = json.dumps(meta).replace("Infinity", "1e400")  # a literal JSON number that parses as inf
        arrays["document.json"] = np.frombuffer(text.encode(), np.uint8)
    np.savez_compressed(path, **arrays)
    if raw:
        with zipfile.ZipFile(path, "a") as z:
            for name, data in raw.items():
                z.writestr(name + ".npy", data)
    return path


def _npy(shape, dtype="|u1", payload=b"") -> bytes:
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    text = repr(header).encode()
    text += b" " * (64 - (10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + payload


def _meta(doc=None) -> tuple[dict, dict]:
    arrays = document_arrays(doc or _doc())
    meta = json.loads(arrays.pop("document.json").tobytes())
    return arrays, meta


def _edit(fn):
    def make(tmp_path):
        arrays, meta = _meta()
        fn(meta, arrays)
        return _write(tmp_path / "s.npz", arrays, meta)

    return make


def _obj(**kw):
    return _edit(lambda m, a: m["objects"][0].update(kw))


def _img(**kw):
    return _edit(lambda m, a: m["image"].update(kw))


def _prompt(j, **kw):
    return _edit(lambda m, a: m["objects"][0]["prompts"][j].update(kw))


def _raw(name, data):
    def make(tmp_path):
        arrays, meta = _meta()
        arrays.pop(name, None)
        return _write(tmp_path / "s.npz", arrays, None if name == "document.json" else meta, {name: data})

    return make


def _bytes(data: bytes):
    def make(tmp_path):
        (tmp_path / "s.npz").write_bytes(data)
        return tmp_path / "s.npz"

    return make


def _damaged(cut):
    def make(tmp_path):
        path = save_document(_doc(), tmp_path / "s.npz")
        data = bytearray(path.read_bytes())
        if cut == "flip":  # corrupt the compressed stream of the first member
            for i in range(60, 90):
                data[i] ^= 0xA5
        else:
            data = data[:cut]
        path.write_bytes(bytes(data))
        return path

    return make


def _headers(flag: int = 0, method: int | None = None, compression: int = zipfile.ZIP_DEFLATED, flip: bool = False):
    """A saved session with every zip header's flags or compression method changed (or re-packed and flipped)."""

    def make(tmp_path):
        path = save_document(_doc(), tmp_path / "s.npz")
        with zipfile.ZipFile(path) as src:
            members = {n: src.read(n) for n in src.namelist()}
        with zipfile.ZipFile(path, "w", compression) as dst:
            for name, data in members.items():
                dst.writestr(name, data)
        data = bytearray(path.read_bytes())
        for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            i = data.find(sig)
            while i >= 0:
                data[i + off] |= flag
                if method is not None:
                    data[i + off + 2 : i + off + 4] = method.to_bytes(2, "little")
                i = data.find(sig, i + 4)
        if flip:
            for i in range(60, 80):
                data[i] ^= 0x5A
        path.write_bytes(bytes(data))
        return path

    return make


SESSION_CASES = {
    "encrypted-member": (_headers(flag=1), "is encrypted"),
    "unknown-compression": (_headers(method=99), "compression method is not supported"),
    "corrupted-lzma": (_headers(compression=zipfile.ZIP_LZMA, flip=True), "damaged or truncated (LZMAError"),
    "corrupted-bzip2": (_headers(compression=zipfile.ZIP_BZIP2, flip=True), "damaged or truncated"),
    "truncated-half": (_damaged(900), "damaged or truncated"),
    "truncated-end": (_damaged(-10), "damaged or truncated"),
    "truncated-tiny": (_damaged(30), "damaged or truncated"),
    "corrupted-stream": (_damaged("flip"), "damaged or truncated"),
    "not-a-zip": (_bytes(b"\x00\x01 not an archive"), "not an .npz archive"),
    "npy-renamed": (_bytes(_npy((1 << 40,), "<f8")), "not an .npz archive"),
    "empty-file": (_bytes(b""), "not an .npz archive"),
    "no-document": (lambda p: _write(p / "s.npz", {"a": np.zeros(3)}), "no document.json"),
    "json-garbage": (_raw("document.json", _npy((4,), payload=b"\x80\x81{[")), "not UTF-8"),
    "json-nan": (_raw("document.json", _npy((5,), payload=b"[NaN]")), "NaN is not a number JSON allows"),
    "json-deep": (_raw("document.json", _npy((20000,), payload=b"[" * 10000 + b"]" * 10000)), "nests JSON deeper"),
    "json-huge-header": (_raw("document.json", _npy((1 << 40,), payload=b"{}")), "at most 268435456 bytes"),
    "json-float-array": (_raw("document.json", _npy((2,), "<f8", b"\x00" * 16)), "float64"),
    "json-list": (_edit(lambda m, a: m.clear()), "not a napari-nninteractive session file"),
    "format": (_edit(lambda m, a: m.update(format="other")), "not a napari-nninteractive session file"),
    "version-newer": (_edit(lambda m, a: m.update(version=99)), "newer napari-nninteractive (format 99)"),
    "version-string": (_edit(lambda m, a: m.update(version="2")), "'version' must be an integer"),
    "version-bool": (_edit(lambda m, a: m.update(version=True)), "'version' must be an integer"),
    "image-missing": (_edit(lambda m, a: m.pop("image")), "missing field 'image'"),
    "shape-string": (_img(shape="6,8,10"), "field 'shape' must be a list"),
    "shape-zero": (_img(shape=[0, 8, 10]), "'shape'[0] = 0 is out of range"),
    "shape-float": (_img(shape=[6.0, 8, 10]), "'shape'[0] must be an integer"),
    "shape-909TiB": (_img(shape=[100_000] * 3), "has more than 2**36 voxels"),
    "shape-5-axes": (_img(shape=[1, 2, 6, 8, 10]), "must have 2 to 4 axes"),
    "shape-1-axis": (_img(shape=[10]), "must have 2 to 4 axes"),
    "image-name": (_img(name=5), "field 'name' must be a string"),
    "image-path": (_img(path=["a"]), "field 'path' must be a string or null"),
    "objects-dict": (_edit(lambda m, a: m.update(objects={})), "field 'objects' must be a list"),
    "object-list": (_edit(lambda m, a: m["objects"].__setitem__(0, [1])), "object 0 must be a JSON object"),
    "name": (_obj(name=None), "object 0: field 'name' must be a string, not null"),
    "visible": (_obj(visible="yes"), "field 'visible' must be true or false"),
    "color-3": (_obj(color=[1, 0, 0]), "'color' must be a list of 4 numbers"),
    "color-string": (_obj(color="red"), "field 'color' must be a list or null"),
    "color-range": (_obj(color=[2, 0, 0, 1]), "'color'[0] = 2 is out of range"),
    "label-negative": (_obj(label=-1), "'label' = -1 is out of range"),
    "label-2**32": (_obj(label=2**32), "'label' = 4294967296 is out of range"),
    "label-float": (_obj(label=1.5), "field 'label' must be an integer"),
    "label-bool": (_obj(label=True), "field 'label' must be an integer, not true or false"),
    "mask-shape-other": (_obj(mask_shape=[6, 8, 11]), "'mask_shape' [6, 8, 11] is not the image's [6, 8, 10]"),
    "mask-shape-909TiB": (_obj(mask_shape=[100_000] * 3), "is not the image's [6, 8, 10]"),
    "mask-bbox-outside": (
        _obj(mask_bbox=[[0, 1], [1, 4], [2, 11]]),
        "'mask_bbox' = [[0, 1], [1, 4], [2, 11]] is empty or not inside",
    ),
    "mask-bbox-empty": (_obj(mask_bbox=[[0, 1], [4, 4], [2, 7]]), "is empty or not inside"),
    "mask-bbox-float": (_obj(mask_bbox=[[0, 1], [1, 4], [2, 7.5]]), "'mask_bbox'[2][1] must be an integer"),
    "mask-bbox-disagrees": (_obj(mask_bbox=[[0, 1], [1, 4], [2, 6]]), "array 'mask_0' has more voxels than its bbox"),
    "mask-bbox-not-tight": (_obj(mask_bbox=[[0, 1], [1, 6], [2, 5]]), "is not the bbox of the stored mask"),
    "mask-bbox-larger": (_obj(mask_bbox=[[0, 6], [0, 8], [0, 10]]), "not the 60 bytes"),
    "mask-missing": (_edit(lambda m, a: a.pop("mask_0")), "the archive has no array 'mask_0'"),
    "mask-float": (_edit(lambda m, a: a.update(mask_0=a["mask_0"].astype(float))), "float64"),
    "mask-2d": (_edit(lambda m, a: a.update(mask_0=a["mask_0"].reshape(1, -1))), "holds (1, 2) uint8"),
    "mask-huge-header": (_raw("mask_0", _npy((1 << 40,), payload=b"\x00" * 2)), "holds (1099511627776,) uint8"),
    "mask-lying-header": (_raw("mask_0", _npy((2,), payload=b"\x00" * 4000)), "4128 bytes stored"),
    "prompts-null": (_obj(prompts=None), "field 'prompts' must be a list, not null"),
    "rounds-string": (_obj(rounds="all"), "'rounds' is not valid: each prediction round must be a pair"),
    "rounds-zero": (_obj(rounds=[[0, True]]), "'rounds' is not valid: each prediction round must be a pair"),
    "rounds-bool-count": (_obj(rounds=[[True, True]]), "'rounds' is not valid: each prediction round must be a pair"),
    "rounds-fused-int": (_obj(rounds=[[1, 1]]), "'rounds' is not valid: each prediction round must be a pair"),
    "rounds-too-many": (_obj(rounds=[[3, False], [3, True]]), "count 6 prompts, but the history holds 5"),
    "prompt-string": (_obj(prompts=["point"]), "object 0 prompt 0 must be a JSON object"),
    "prompt-type": (_prompt(0, type="circle"), "unknown prompt type 'circle'"),
    "prompt-type-list": (_prompt(0, type=["point"]), "field 'type' must be a string"),
    "point-outside": (_prompt(0, coord=[0, 2, 10]), "'coord' [0, 2, 10] is not inside (6, 8, 10)"),
    "point-infinite": (_prompt(0, coord=[0, 2, 1e400]), "'coord'[2] must be finite"),
    "point-positive": (_prompt(0, positive=1), "field 'positive' must be true or false"),
    "box-outside": (_prompt(1, bbox=[[0, 1], [1, 5], [2, 60]]), "prompt 1: 'bbox' = [[0, 1], [1, 5], [2, 60]]"),
    "box-pairs": (_prompt(1, bbox=[[0, 1], [1, 5]]), "'bbox' must be a list of 3 [lo, hi] pairs"),
    "scribble-array": (_prompt(2, array=None), "field 'array' must be a string"),
    "scribble-no-array": (_prompt(2, array="nope"), "the archive has no array 'nope'"),
    "scribble-bbox-disagrees": (_prompt(2, bbox=[[0, 6], [0, 8], [0, 10]]), "not the 60 bytes"),
    "scribble-huge-header": (_raw("prompt_0_2", _npy((1 << 40,))), "prompt 2: array 'prompt_0_2' holds"),
    "mask-prompt-refine": (_prompt(4, refine="yes"), "field 'refine' must be true or false"),
    "current-outside": (_edit(lambda m, a: m.update(current=2)), "'current' = 2 is not the index"),
    "current-string": (_edit(lambda m, a: m.update(current="1")), "field 'current' must be an integer or null"),
    "settings-list": (_edit(lambda m, a: m.update(settings=[1])), "field 'settings' must be an object or null"),
}


@pytest.mark.parametrize("case", list(SESSION_CASES))
def test_hostile_session_file(tmp_path, untouched, case):
    make, message = SESSION_CASES[case]
    path = make(tmp_path)
    untouched()
    tracemalloc.start()
    try:
        with pytest.raises(SessionFileError) as err:
            load_document(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text and isinstance(err.value, UserError)
    assert peak < 32 << 20, f"{peak / 2**20:.0f} MiB allocated"


def test_session_folder_and_declared_size_beyond_the_budget(tmp_path, untouched, monkeypatch):
    folder = tmp_path / "s.nnisession.npz"
    folder.mkdir()
    path = save_document(_doc(), tmp_path / "ok.npz")
    untouched()
    with pytest.raises(SessionFileError, match="is a folder, not a session file"):
        load_document(folder)
    monkeypatch.setattr(D, "MAX_VOXELS", 2 * 480)  # the two masks fit, their prompts' crops do not
    with pytest.raises(SessionFileError, match="would take 0 GiB to load"):
        load_document(path)


def test_session_unreadable(tmp_path, untouched, monkeypatch):
    path = save_document(_doc(), tmp_path / "s.npz")
    untouched()
    real_open = open

    def denied(file, *args, **kw):
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kw)

    with monkeypatch.context() as m, pytest.raises(SessionFileError, match="cannot be read \\(Permission denied\\)"):
        m.setattr("builtins.open", denied)
        load_document(path)


@pytest.mark.parametrize("shape", [SHAPE, (8, 10), (2,) + SHAPE])
def test_valid_sessions_load_as_before(tmp_path, shape):
    doc = _doc(shape)
    back = load_document(save_document(doc, tmp_path / "s.npz"))
    assert back.image == doc.image and back.current == 1 and back.settings == doc.settings
    for a, b in zip(doc.objects, back.objects):
        assert (a.label, a.name, a.color, a.visible) == (b.label, b.name, b.color, b.visible)
        assert np.array_equal(a.mask, b.mask) and len(a.prompts) == len(b.prompts)
    kinds = [type(p) for p in back.objects[0].prompts]
    assert kinds == [Point, Box, Scribble, Lasso, InitialMask] and back.objects[0].prompts[4].refine
    assert np.array_equal(back.objects[0].prompts[2].mask, doc.objects[0].prompts[2].mask)


def test_version_1_session_names_current_by_label(tmp_path):
    arrays, meta = _meta()
    meta.update(version=1, current=7)
    assert load_document(_write(tmp_path / "s.npz", arrays, meta)).current == 1
    del meta["version"]
    meta["current"] = 3
    assert load_document(_write(tmp_path / "s.npz", arrays, meta)).current == 0


# ----------------------------------------------------------------------------- NIfTI volumes


def _nifti(tmp_path, data, name="v.nii.gz") -> Path:
    affine = np.diag([0.5, 0.7, 2.0, 1.0])
    affine[:3, 3] = [10, -4, 3]
    nib.save(nib.Nifti1Image(data, affine), str(tmp_path / name))
    return tmp_path / name


def test_nifti_trailing_singleton_axes_are_dropped(tmp_path, untouched):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6, 1)
    path = _nifti(tmp_path, data)
    untouched()
    vol = read_volume(path)
    assert vol.array.shape == (4, 5, 6) and np.array_equal(vol.array, data[..., 0])
    out = write_mask(tmp_path / "out" / "m.nii.gz", vol.array > 50, vol)
    written = nib.load(str(out))
    assert written.shape == (4, 5, 6) and np.allclose(written.affine, vol.meta["affine"])
    assert np.array_equal(np.asarray(written.dataobj), (data[..., 0] > 50).astype(np.uint8))
    five = _nifti(tmp_path, data.reshape(4, 5, 6, 1, 1), "five.nii")
    assert read_volume(five).array.shape == (4, 5, 6)


def test_nifti_channels_come_first(tmp_path, untouched):
    data = np.random.default_rng(0).random((4, 5, 6, 2)).astype(np.float32)
    path = _nifti(tmp_path, data)
    vector = _nifti(tmp_path, data[..., None, :], "vector.nii.gz")  # (x, y, z, 1, c): NIfTI's vector layout
    untouched()
    for p in (path, vector):
        vol = read_volume(p)
        assert vol.array.shape == (2, 4, 5, 6) and np.array_equal(vol.array[1], data[..., 1])
    out = write_mask(tmp_path / "m.nii.gz", vol.array[0] > 0.5, vol)
    assert nib.load(str(out)).shape == (4, 5, 6) and np.allclose(nib.load(str(out)).affine, vol.meta["affine"])


def test_nifti_with_too_many_axes_or_a_lying_header(tmp_path, untouched):
    many = _nifti(tmp_path, np.zeros((4, 5, 6, 2, 3), np.uint8))
    small = _nifti(tmp_path, np.zeros((2, 2, 2), np.float32), "small.nii")
    raw = bytearray(small.read_bytes())
    raw[42:48] = np.array([30000, 30000, 30000], "<i2").tobytes()  # dim[1:4]: 100 TiB promised
    lying = tmp_path / "lying.nii"
    lying.write_bytes(bytes(raw))
    lying_gz = tmp_path / "lying.nii.gz"
    lying_gz.write_bytes(gzip.compress(bytes(raw)))
    folder = tmp_path / "folder.nii.gz"
    folder.mkdir()
    untouched()
    with pytest.raises(VolumeIOError, match=r"has axes \(4, 5, 6, 2, 3\); give a 3-D volume"):
        read_volume(many)
    for path in (lying, lying_gz):
        with pytest.raises(VolumeIOError, match="promises .* voxels .* truncated or damaged"):
            read_volume(path)
    with pytest.raises(VolumeIOError, match="is a folder, not a volume file"):
        read_volume(folder)
