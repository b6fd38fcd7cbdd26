"""One prompt codec (core.codec) and one file-format table (io.formats), and the files they keep readable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_nninteractive.core import codec
from napari_nninteractive.core.document import (
    SUFFIX,
    ImageRef,
    SessionFileError,
    autosave_path,
    document_arrays,
    load_document,
)
from napari_nninteractive.core.errors import UserError
from napari_nninteractive.core.prompts import Box, InitialMask, Lasso, Point, PromptError, Scribble
from napari_nninteractive.eval.report import write_prompt_log
from napari_nninteractive.eval.runner import ObjectRun
from napari_nninteractive.io import export, formats, prompt_file, volumes
from napari_nninteractive.io.prompt_file import PromptFileError, interaction_to_json, load_prompt_file

SHAPE = (4, 5, 6)
CROP = np.array([[[1, 0, 1], [0, 1, 0]]], bool)  # on bbox ((1, 2), (1, 3), (2, 5))
CROP_BOX = ((1, 2), (1, 3), (2, 5))
PROMPTS = [
    Point((1.0, 2.5, 3.0)),
    Point((0, 0, 0), False),
    Box(((1, 2), (0, 5), (1, 6)), False),
    Scribble(CROP, CROP_BOX, False),
    Lasso(CROP, CROP_BOX),
    InitialMask(CROP, CROP_BOX, True, True),
]


def _same(a, b) -> bool:
    if type(a) is not type(b) or a.positive != b.positive:
        return False
    if isinstance(a, Point):
        return tuple(a.coord) == tuple(b.coord)
    if isinstance(a, Box):
        return tuple(map(tuple, a.bbox)) == tuple(map(tuple, b.bbox))
    return (
        a.bbox == b.bbox and np.array_equal(a.mask, b.mask) and getattr(a, "refine", None) == getattr(b, "refine", None)
    )


# ----------------------------------------------------------------------------- codec


def _array_region() -> tuple:
    """A region form of a caller's own: the crop kept beside the JSON under a key (as session files do)."""
    arrays = {}

    def encode(p):
        arrays["a"] = p.mask
        return {"array": "a", "bbox": codec.box_field(p.bbox)}

    def decode(head, item, where):
        return head.make(arrays[item["array"]], codec.bbox_of(item, SHAPE, where, PromptFileError, stored=True))

    return encode, decode


@pytest.mark.parametrize("stored", [False, True])
@pytest.mark.parametrize("prompt", PROMPTS, ids=lambda p: type(p).__name__)
def test_every_prompt_type_round_trips_through_the_codec(prompt, stored):
    forms = [_array_region()] if isinstance(prompt, InitialMask) else [(None, None), _array_region()]
    for encode_region, decode_region in forms:
        item = json.loads(json.dumps(codec.encode(prompt, encode_region)))
        assert item["type"] == codec.type_name(prompt) and codec.TYPES[item["type"]] is type(prompt)
        back = codec.decode(item, SHAPE, "x", PromptFileError, stored=stored, region=decode_region)
        assert _same(back, prompt), (item, back)


def test_the_type_table_is_the_one_the_prompt_file_documents():
    assert sorted(codec.TYPES) == ["bbox", "lasso", "mask", "point", "scribble"]
    for name in codec.TYPES:  # the --help text of nninteractive-segment
        assert f'"{name}"' in prompt_file.__doc__
    assert set(codec.FIELDS) == set(codec.TYPES)
    with pytest.raises(TypeError, match="not a prompt type"):
        codec.type_name("point")


def test_encoding_is_the_one_files_have_always_had():
    assert codec.encode(PROMPTS[0]) == {"type": "point", "positive": True, "coord": [1.0, 2.5, 3.0]}
    assert codec.encode(PROMPTS[2]) == {"type": "bbox", "positive": False, "bbox": [[1, 2], [0, 5], [1, 6]]}
    assert codec.encode(PROMPTS[3]) == {
        "type": "scribble",
        "positive": False,
        "voxels": [[1, 1, 2], [1, 1, 4], [1, 2, 3]],
    }
    assert interaction_to_json(PROMPTS[4], run=False)["run"] is False
    with pytest.raises(ValueError, match="no voxel-list form"):
        codec.encode(PROMPTS[5])
    with pytest.raises(ValueError, match="mask_path"):
        interaction_to_json(PROMPTS[5])


@pytest.mark.parametrize(
    "item, stored, message",
    [
        ([1], False, "x must be a JSON object, not a list"),
        (
            {"type": "circle"},
            False,
            "x: unknown type 'circle'; use one of ['bbox', 'lasso', 'mask', 'point', 'scribble']",
        ),
        ({"type": "circle"}, True, "x: unknown prompt type 'circle'; use one of"),
        ({"type": 3}, True, "x: field 'type' must be a string"),
        ({"type": "point"}, False, "x (point): missing key 'coord'"),
        ({"type": "point", "coord": [1, 2, 9]}, False, "x (point): 'coord' [1, 2, 9] lies outside the image"),
        ({"type": "point", "coord": [1, 2, 9]}, True, "x: 'coord' [1, 2, 9] is not inside (4, 5, 6)"),
        ({"type": "point", "coord": [1, 2, 3], "positive": 1}, False, "field 'positive' must be true or false"),
        ({"type": "bbox", "bbox": [[0, 1], [0, 1]]}, False, "x (bbox): 'bbox' must be a list of 3 [lo, hi] pairs"),
        ({"type": "bbox", "bbox": [[0, 1], [0, 1], [2, 2]]}, True, "x: 'bbox' = [[0, 1], [0, 1], [2, 2]] is empty"),
        ({"type": "bbox", "bbox": [[0, 1], [0, 1], [0, 1.5]]}, True, "'bbox'[2][1] must be an integer"),
        ({"type": "scribble", "voxels": [[0, 0, 6]]}, False, "x (scribble): voxel [0, 0, 6] lies outside the image"),
        ({"type": "lasso", "voxels": [[0, 0]]}, False, "x (lasso): 'voxels'[0] must be a list of 3 numbers"),
        ({"type": "mask", "voxels": [[0, 0, 0]]}, False, "x (mask): mask items are not accepted here"),
        ({"type": "mask", "refine": "yes"}, False, "x (mask): field 'refine' must be true or false"),
        ({"type": "mask", "positive": False}, False, "x (mask): a mask item is the object itself, always positive"),
    ],
)
def test_decode_names_the_item_and_the_field(item, stored, message):
    with pytest.raises(SessionFileError) as err:
        codec.decode(item, SHAPE, "x", SessionFileError, stored=stored)
    assert message in str(err.value) and isinstance(err.value, UserError)


def test_decode_refuses_unknown_keys_only_when_asked():
    item = {"type": "point", "coord": [1, 2, 3], "colour": "red"}
    assert codec.decode(item, SHAPE, "x", PromptFileError) == Point((1, 2, 3))
    with pytest.raises(
        PromptFileError,
        match=r"x \(point\): unknown key\(s\) \['colour'\]; allowed: \['coord', "
        r"'positive', 'run', 'type'\]",
    ):
        codec.decode(item, SHAPE, "x", PromptFileError, extra_keys={"point": {"run"}})


# ----------------------------------------------------------------------------- files written before


OLD_PROMPT_FILE = """{"interactions": [
 {"type": "point", "positive": true, "coord": [1, 2, 3]},
 {"type": "bbox", "positive": true, "bbox": [[1, 2], [0, 5], [1, 6]], "run": false},
 {"type": "scribble", "positive": false, "voxels": [[1, 1, 2], [1, 1, 4], [1, 2, 3]]},
 {"type": "lasso", "polygon": [[2, 0, 0], [2, 0, 4], [2, 4, 4]]},
 {"type": "lasso", "voxels": [[1, 1, 2], [1, 1, 4], [1, 2, 3]]},
 {"type": "mask", "path": "init.npy", "refine": true}
]}"""


def test_an_old_prompt_file_still_loads(tmp_path):
    (tmp_path / "p.json").write_text(OLD_PROMPT_FILE)
    init = np.zeros(SHAPE, bool)
    init[1:3, 1:3, 1:3] = True
    np.save(tmp_path / "init.npy", init)
    out = load_prompt_file(tmp_path / "p.json", SHAPE, lambda p: np.load(p) != 0)
    assert [type(i.prompt) for i in out] == [Point, Box, Scribble, Lasso, Lasso, InitialMask]
    assert [i.run for i in out] == [True, False, True, True, True, True]
    assert _same(out[2].prompt, PROMPTS[3]) and _same(out[4].prompt, PROMPTS[4])
    assert out[3].prompt.mask.sum() > 3 and out[5].prompt.refine and np.array_equal(out[5].prompt.mask, init)


def test_a_prompt_log_replays_as_a_prompt_file(tmp_path):
    run = ObjectRun("img", 3, "random", "seeded", prompts=PROMPTS[:5])
    path = write_prompt_log(run, tmp_path / "log.json")
    back = load_prompt_file(path, SHAPE)
    assert all(_same(i.prompt, p) for i, p in zip(back, PROMPTS[:5])) and len(back) == 5


def _packed(crop: np.ndarray) -> np.ndarray:
    return np.packbits(crop.astype(bool))


#: document.json of a session file as version 2 wrote it, key for key.
OLD_SESSION = {
    "format": "napari-nninteractive session",
    "version": 2,
    "image": {"name": "scan", "shape": [4, 5, 6], "dtype": "float32", "fingerprint": "f" * 24, "path": None},
    "current": 0,
    "settings": {"output": "instance"},
    "objects": [
        {
            "label": 3,
            "name": "liver",
            "visible": True,
            "color": [1.0, 0.0, 0.0, 1.0],
            "mask_shape": [4, 5, 6],
            "mask_bbox": [[1, 2], [1, 3], [2, 5]],
            "prompts": [
                {"type": "point", "positive": True, "coord": [1.0, 2.0, 3.0]},
                {"type": "bbox", "positive": False, "bbox": [[1, 2], [0, 5], [1, 6]]},
                {"type": "scribble", "positive": False, "array": "prompt_0_2", "bbox": [[1, 2], [1, 3], [2, 5]]},
                {"type": "lasso", "positive": True, "array": "prompt_0_3", "bbox": [[1, 2], [1, 3], [2, 5]]},
                {
                    "type": "mask",
                    "positive": True,
                    "array": "prompt_0_4",
                    "bbox": [[1, 2], [1, 3], [2, 5]],
                    "refine": True,
                },
            ],
        }
    ],
}


def test_an_old_session_file_still_loads_and_saves_byte_for_byte(tmp_path):
    arrays = {"mask_0": _packed(CROP), **{f"prompt_0_{j}": _packed(CROP) for j in (2, 3, 4)}}
    text = json.dumps(OLD_SESSION)
    path = tmp_path / f"old{SUFFIX}"
    np.savez_compressed(path, **arrays, **{"document.json": np.frombuffer(text.encode(), np.uint8)})
    doc = load_document(path)
    prompts = doc.objects[0].prompts
    assert [type(p) for p in prompts] == [Point, Box, Scribble, Lasso, InitialMask]
    assert all(_same(a, b) for a, b in zip(prompts[1:], PROMPTS[2:]))
    assert prompts[0] == Point((1.0, 2.0, 3.0)) and doc.objects[0].mask.sum() == CROP.sum()
    again = document_arrays(doc)
    assert again.pop("document.json").tobytes().decode() == text
    assert again.keys() == arrays.keys() and all(np.array_equal(again[k], arrays[k]) for k in arrays)


def test_session_suffix_is_the_autosave_suffix(tmp_path):
    ref = ImageRef("a b", (2, 3, 4), "uint8", "0" * 24)
    assert autosave_path(ref, tmp_path).name.endswith(SUFFIX)


# ----------------------------------------------------------------------------- format table


def test_the_table_is_consistent():
    names = [f.name for f in formats.FORMATS]
    all_suffixes = formats.suffixes()
    assert len(set(names)) == len(names) and len(set(all_suffixes)) == len(all_suffixes)
    assert all(s.startswith(".") and s == s.lower() for s in all_suffixes)
    assert all(f.description and f.suffix == f.suffixes[0] for f in formats.FORMATS)
    assert formats.by_name("tiff").suffixes == (".tif", ".tiff")
    with pytest.raises(KeyError, match="unknown format 'jpeg'"):
        formats.by_name("jpeg")


@pytest.mark.parametrize(
    "path, use, expected",
    [
        ("ct.NII.GZ", None, ("nifti", ".nii.gz")),
        ("ct.nii", "read_volume", ("nifti", ".nii")),
        ("seg.SEG.NRRD", "write_mask", ("nrrd", ".seg.nrrd")),  # the longest suffix wins
        ("labels.zarr/", "write_label_map", ("zarr", ".zarr")),
        ("labels.zarr", "read_volume", None),
        ("m.npy", "write_label_map", None),
        ("x.jpg", None, None),
    ],
)
def test_which_format_a_name_is(path, use, expected):
    found = formats.match(path, use)
    assert (None if found is None else (found[0].name, found[1])) == expected


def test_an_unknown_suffix_names_the_accepted_ones(tmp_path):
    with pytest.raises(volumes.VolumeIOError) as err:
        volumes.read_volume(tmp_path / "x.jpg")
    assert "unknown file type" in str(err.value)
    assert all(s in str(err.value) for s in formats.suffixes("read_volume"))
    with pytest.raises(volumes.VolumeIOError, match="unknown file type; use one of .nii.gz, .nii, .nrrd"):
        volumes.write_mask(tmp_path / "m.zarr", np.zeros(SHAPE))
    with pytest.raises(
        volumes.VolumeIOError, match="end the name with one of .nii.gz, .nii, .tif, .tiff, .zarr, .npz."
    ):
        export.format_of("labels.png")
    assert not list(tmp_path.iterdir())


def test_volume_and_export_lists_come_from_the_table():
    assert export.FORMATS == {"nifti": ".nii.gz", "tiff": ".tif", "zarr": ".zarr", "npz": ".npz"}
    assert formats.suffixes("read_volume") == volumes.SUFFIXES
    assert (
        formats.dialog_filter("write_label_map", "Label map") == "Label map (*.nii.gz *.nii *.tif *.tiff *.zarr *.npz)"
    )
    assert export.canonical_suffix("A.TIFF") == ".tiff" and volumes.file_format("a.Tif") == "tiff"
    assert export.default_path("layer", "/d/ct_042.seg.nrrd", "zarr") == Path("/d/ct_042_instance.zarr")
    assert formats.strip_suffix("ct.nii.gz") == "ct" and formats.strip_suffix("notes.txt") == "notes.txt"


@pytest.mark.parametrize("fmt", formats.formats("write_mask"), ids=lambda f: f.name)
def test_every_mask_format_writes_what_reads_back(tmp_path, fmt):
    mask = np.zeros((6, 8, 10), np.uint8)  # tifffile takes a first axis of 3 or 4 for colour
    mask[1, 2:4, 3] = 1
    for suffix in fmt.suffixes:
        path = volumes.write_mask(tmp_path / f"m{suffix}", mask)
        assert fmt.can_read_volume and np.array_equal(np.asarray(volumes.read_volume(path).array), mask)


@pytest.mark.parametrize("fmt", formats.formats("write_mask"), ids=lambda f: f.name)
def test_the_same_mask_gives_the_same_bytes_on_every_run(tmp_path, fmt, monkeypatch):
    import datetime

    import nrrd.writer

    class Clock(datetime.datetime):  # pynrrd writes the time into its header: every call a day later
        calls = 0

        @classmethod
        def utcnow(cls):
            cls.calls += 1
            return datetime.datetime(2026, 1, cls.calls)

    monkeypatch.setattr(nrrd.writer, "datetime", Clock)
    mask = np.zeros((6, 8, 10), np.uint8)
    mask[1, 2:4, 3] = 1
    for suffix in fmt.suffixes:
        first = volumes.write_mask(tmp_path / f"a{suffix}", mask).read_bytes()
        assert volumes.write_mask(tmp_path / f"b{suffix}", mask).read_bytes() == first


@pytest.mark.parametrize("fmt", formats.formats("write_label_map"), ids=lambda f: f.name)
def test_every_label_map_format_writes(tmp_path, fmt):
    labels = np.arange(480, dtype=np.uint8).reshape(6, 8, 10) % 3
    for suffix in fmt.suffixes:
        assert export.write_label_map(tmp_path / f"l{suffix}", labels).exists()


def test_a_polygon_that_cannot_be_filled_is_a_prompt_file_error(tmp_path):
    (tmp_path / "p.json").write_text(
        json.dumps({"interactions": [{"type": "lasso", "polygon": [[1, 0, 0.4], [1, 3, 0.4], [1, 3, 0.6]]}]})
    )
    with pytest.raises(PromptFileError, match=r"interaction 0 \(lasso\): .*encloses no voxel") as err:
        load_prompt_file(tmp_path / "p.json", SHAPE)
    assert not isinstance(err.value, PromptError)


def test_an_rgb_tiff_is_read_as_its_luminance_and_a_grey_stack_of_three_columns_as_a_volume(tmp_path):
    import tifffile

    rgb = np.zeros((40, 50, 3), np.uint8)
    rgb[10:30, 10:30] = (200, 120, 40)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    got = volumes.read_volume(tmp_path / "rgb.tif")
    assert got.array.shape == (40, 50) and got.meta["note"] == "RGB image: segmenting its luminance"
    assert np.isclose(got.array[20, 20], 0.299 * 200 + 0.587 * 120 + 0.114 * 40) and got.array[0, 0] == 0
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    assert np.array_equal(volumes.read_volume(tmp_path / "planar.tif").array, got.array)  # colour planes first
    tifffile.imwrite(tmp_path / "rgb_stack.tif", np.stack([rgb] * 4), photometric="rgb")
    stack = volumes.read_volume(tmp_path / "rgb_stack.tif")
    assert stack.array.shape == (4, 40, 50) and np.array_equal(stack.array[2], got.array)  # a 3-D colour stack
    grey = np.zeros((5, 40, 3), np.uint16)  # a volume whose last axis happens to be 3: grey, kept as it is
    tifffile.imwrite(tmp_path / "grey.tif", grey, photometric="minisblack")
    assert volumes.read_volume(tmp_path / "grey.tif").array.shape == (5, 40, 3)
    mask = np.zeros((6, 20, 3), np.uint8)  # our own masks are written grey: they read back as written
    mask[2:4, 5:10, 1] = 1
    assert np.array_equal(volumes.read_volume(volumes.write_mask(tmp_path / "m.tif", mask)).array, mask)
