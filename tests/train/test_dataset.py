"""Loading nnU-Net raw datasets for training, their checks, and the object table."""

from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pytest

from napari_nninteractive.core.errors import UserError
from napari_nninteractive.train.dataset import DatasetError, ObjectTable, TrainingData, load_dataset

SHAPE = (6, 7, 8)
LABELS = {"background": 0, "liver": 1, "spleen": 2}


def _save(path, arr, affine=None):
    if path.name.endswith(".npy"):
        np.save(path, arr)
    else:
        nib.save(nib.Nifti1Image(arr, np.eye(4) if affine is None else affine), str(path))


def _labels(shape=SHAPE):
    lab = np.zeros(shape, np.uint8)
    lab[1:3, 1:3, 1:3] = 1
    lab[4:6, 4:6, 5:8] = 2
    return lab


def _write(root, cases=("case_a", "case_b"), n_channels=2, ending=".nii.gz", labels=None, split="Tr", meta=None):
    """An nnU-Net raw dataset in ``root`` with ``cases``: random images, two labelled blocks."""
    root.mkdir(exist_ok=True)
    description = {
        "channel_names": {str(c): f"ch{c}" for c in range(n_channels)},
        "labels": LABELS if labels is None else labels,
        "numTraining": len(cases),
        "file_ending": ending,
    }
    (root / "dataset.json").write_text(json.dumps(meta if meta is not None else description))
    (root / f"images{split}").mkdir(exist_ok=True)
    (root / f"labels{split}").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for case in cases:
        for c in range(n_channels):
            _save(root / f"images{split}" / f"{case}_{c:04d}{ending}", rng.normal(size=SHAPE).astype(np.float32))
        _save(root / f"labels{split}" / f"{case}{ending}", _labels())
    return root


def test_good_two_channel_dataset_loads(tmp_path):
    data = load_dataset(_write(tmp_path / "Dataset001_Toy"))
    assert isinstance(data, TrainingData)
    assert data.name == "Dataset001_Toy"
    assert [c.name for c in data.cases] == ["case_a", "case_b"]
    assert data.n_channels == 2 and data.channel_names == {"0": "ch0", "1": "ch1"}
    assert data.label_names == {1: "liver", 2: "spleen"}
    assert data.file_ending == ".nii.gz"
    case = data.cases[0]
    assert case.image.shape == (2, *SHAPE) and case.image.dtype == np.float32
    assert case.labels.shape == SHAPE and case.labels.dtype == np.uint8
    np.testing.assert_array_equal(case.labels, _labels())
    assert len(load_dataset(tmp_path / "Dataset001_Toy", max_cases=1).cases) == 1


def test_v1_style_labels_and_test_split(tmp_path):
    root = _write(tmp_path / "ds", labels={"0": "background", "1": "liver", "2": "spleen"})
    _write(root, cases=("t1",), labels={"0": "background", "1": "liver", "2": "spleen"}, split="Ts")
    assert load_dataset(root).label_names == {1: "liver", 2: "spleen"}
    test = load_dataset(root, split="test")
    assert [c.name for c in test.cases] == ["t1"]
    with pytest.raises(DatasetError, match="imagesTs"):
        load_dataset(_write(tmp_path / "other"), split="test")


def test_npy_dataset_and_wider_label_values(tmp_path):
    root = _write(tmp_path / "npy", ending=".npy", n_channels=1, labels={"background": 0, "a": 1, "b": 2, "c": 300})
    lab = _labels().astype(np.int64)
    lab[lab == 2] = 300
    np.save(root / "labelsTr" / "case_a.npy", lab)
    data = load_dataset(root)
    assert data.cases[0].image.shape == (1, *SHAPE)
    assert data.cases[0].labels.dtype == np.uint16 and int(data.cases[0].labels.max()) == 300
    assert data.cases[1].labels.dtype == np.uint8


def _break(kind, root):
    """Damage case_b of a good dataset in one way; returns words its message must contain."""
    img, lab = root / "imagesTr", root / "labelsTr"
    vol = np.zeros(SHAPE, np.float32)
    if kind == "missing label":
        (lab / "case_b.nii.gz").unlink()
        return ["no label file"]
    if kind == "missing channel":
        (img / "case_b_0001.nii.gz").unlink()
        return ["case_b_0001.nii.gz"]
    if kind == "label without image":
        _save(lab / "case_c.nii.gz", _labels())
        return ["no image imagesTr/case_c_0000.nii.gz"]
    if kind == "channel shapes":
        _save(img / "case_b_0001.nii.gz", np.zeros((6, 7, 9), np.float32))
        return ["different shapes"]
    if kind == "label shape":
        _save(lab / "case_b.nii.gz", np.zeros((6, 7, 9), np.uint8))
        return ["shape"]
    if kind == "affine":
        _save(lab / "case_b.nii.gz", _labels(), affine=np.diag([2.0, 1, 1, 1]))
        return ["affines"]
    if kind == "float labels":
        _save(lab / "case_b.nii.gz", _labels().astype(np.float32) * 0.5)
        return ["non-integer"]
    if kind == "complex labels":
        _save(lab / "case_b.nii.gz", _labels().astype(np.complex64))
        return ["data type complex64"]
    if kind == "complex image":
        _save(img / "case_b_0000.nii.gz", vol.astype(np.complex64))
        return ["data type complex64"]
    if kind == "negative labels":
        neg = _labels().astype(np.int16)
        neg[0, 0, 0] = -1
        _save(lab / "case_b.nii.gz", neg)
        return ["negative"]
    if kind == "undeclared value":
        bad = _labels()
        bad[0, 0, 0] = 7
        _save(lab / "case_b.nii.gz", bad)
        return ["[7]", "does not declare"]
    if kind == "nan image":
        vol[1, 1, 1] = np.nan
        _save(img / "case_b_0000.nii.gz", vol)
        return ["NaN"]
    if kind == "4-D image":
        _save(img / "case_b_0000.nii.gz", np.zeros((*SHAPE, 2), np.float32))
        return ["3-D volume"]
    if kind == "unreadable":
        (img / "case_b_0000.nii.gz").write_bytes(b"not a nifti file at all")
        return ["cannot read case_b_0000.nii.gz"]
    raise AssertionError(kind)


KINDS = [
    "missing label",
    "missing channel",
    "label without image",
    "channel shapes",
    "label shape",
    "affine",
    "float labels",
    "complex labels",
    "complex image",
    "negative labels",
    "undeclared value",
    "nan image",
    "4-D image",
    "unreadable",
]


@pytest.mark.parametrize("kind", KINDS)
def test_each_bad_case_is_named(tmp_path, kind):
    root = _write(tmp_path / "ds")
    words = _break(kind, root)
    with pytest.raises(DatasetError) as info:
        load_dataset(root)
    msg = str(info.value)
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)
    assert ("case case_c:" if kind == "label without image" else "case case_b:") in msg
    assert "case_a" not in msg
    for word in words:
        assert word in msg


def test_non_numeric_npy_image(tmp_path):
    root = _write(tmp_path / "ds", ending=".npy", n_channels=1)
    np.save(root / "imagesTr" / "case_a_0000.npy", np.full(SHAPE, "x"))
    with pytest.raises(DatasetError, match=r"case case_a: case_a_0000.npy has data type <U1"):
        load_dataset(root)


def test_all_bad_cases_in_one_error(tmp_path):
    root = _write(tmp_path / "ds", cases=("case_a", "case_b", "case_d"))
    _break("missing label", root)
    (root / "imagesTr" / "case_a_0001.nii.gz").unlink()
    with pytest.raises(DatasetError) as info:
        load_dataset(root)
    msg = str(info.value)
    assert "2 problem(s)" in msg and "case case_a:" in msg and "case case_b:" in msg and "case_d" not in msg

    many = _write(tmp_path / "many", cases=("case_a",))
    for i in range(25):
        _save(many / "labelsTr" / f"orphan{i:02d}.nii.gz", _labels((2, 2, 2)))
    with pytest.raises(DatasetError) as info:
        load_dataset(many)
    lines = str(info.value).splitlines()
    assert "25 problem(s)" in lines[0] and len(lines) == 22 and lines[-1].strip() == "... and 5 more"


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        (None, "does not exist"),
        ("{not json", "not valid JSON"),
        ({"labels": LABELS, "file_ending": ".nii.gz"}, "lacks channel_names"),
        ({"channel_names": {"0": "CT"}, "file_ending": ".nii.gz"}, "lacks labels"),
        ({"channel_names": {"0": "CT"}, "labels": LABELS}, "lacks file_ending"),
        (
            {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": [1, 2]}, "file_ending": ".nii.gz"},
            "region",
        ),
        ({"channel_names": {"0": "CT"}, "labels": LABELS, "file_ending": ".jpg"}, "file_ending '.jpg'"),
        ({"channel_names": {"0": "CT"}, "labels": {"background": 0, "x": "y"}, "file_ending": ".nii.gz"}, "integer"),
    ],
)
def test_bad_dataset_json(tmp_path, meta, words):
    root = _write(tmp_path / "ds", n_channels=1)
    if meta is None:
        (root / "dataset.json").unlink()
    else:
        (root / "dataset.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    with pytest.raises(DatasetError, match="dataset.json") as info:
        load_dataset(root)
    assert words in str(info.value)


def test_num_training_mismatch_warns(tmp_path, caplog):
    root = _write(tmp_path / "ds", cases=("case_a",))
    meta = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**meta, "numTraining": 3}))
    with caplog.at_level(logging.WARNING, logger="napari_nninteractive.train.dataset"):
        assert len(load_dataset(root).cases) == 1
    assert "numTraining=3" in caplog.text


def test_empty_case_skipped_and_all_empty_raises(tmp_path, caplog):
    root = _write(tmp_path / "ds")
    _save(root / "labelsTr" / "case_a.nii.gz", np.zeros(SHAPE, np.uint8))
    with caplog.at_level(logging.WARNING, logger="napari_nninteractive.train.dataset"):
        data = load_dataset(root)
    assert [c.name for c in data.cases] == ["case_b"]
    assert "case case_a" in caplog.text and "all zero" in caplog.text
    _save(root / "labelsTr" / "case_b.nii.gz", np.zeros(SHAPE, np.uint8))
    with pytest.raises(DatasetError, match="every case"):
        load_dataset(root)


def _blobs_dataset(tmp_path):
    """One case: two blobs of label 1 (27 voxels each), one of label 2 (27), a 2-voxel speck of 1."""
    lab = np.zeros((12, 12, 12), np.uint8)
    lab[0:3, 0:3, 0:3] = 1
    lab[8:11, 8:11, 8:11] = 1
    lab[0:3, 0:3, 3:6] = 2  # touches the first blob of 1
    lab[6, 0, 11] = lab[6, 1, 11] = 1
    root = tmp_path / "blobs"
    root.mkdir()
    meta = {"channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": 1, "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(meta))
    (root / "imagesTr").mkdir()
    (root / "labelsTr").mkdir()
    _save(root / "imagesTr" / "c_0000.nii.gz", lab.astype(np.float32))
    _save(root / "labelsTr" / "c.nii.gz", lab)
    return load_dataset(root), lab


def test_labels_versus_instances(tmp_path):
    data, lab = _blobs_dataset(tmp_path)
    labels = ObjectTable(data, "labels")
    assert len(labels.refs) == 2 and [r.values for r in labels.refs] == [(1,), (2,)]
    assert labels.refs[0].size == 56 and labels.refs[0].instance is None
    np.testing.assert_array_equal(labels.mask(labels.refs[0]), lab == 1)
    inst = ObjectTable(data, "instances")
    assert len(inst.refs) == 3
    assert sorted((r.values[0], r.size) for r in inst.refs) == [(1, 27), (1, 27), (2, 27)]
    first = next(r for r in inst.refs if r.values == (1,) and r.bbox[0] == (0, 3))
    assert first.bbox == ((0, 3), (0, 3), (0, 3))
    expected = np.zeros_like(lab, bool)
    expected[0:3, 0:3, 0:3] = True
    np.testing.assert_array_equal(inst.mask(first), expected)
    assert sum(int(inst.mask(r).sum()) for r in inst.refs) == 81


def test_min_size(tmp_path):
    data, _ = _blobs_dataset(tmp_path)
    assert len(ObjectTable(data, "instances", min_size=1).refs) == 4
    with pytest.raises(DatasetError, match="no case has an object of at least 28"):
        ObjectTable(data, "instances", min_size=28)
    assert [r.values for r in ObjectTable(data, "labels", min_size=30).refs] == [(1,)]
    with pytest.raises(ValueError, match="objects must be"):
        ObjectTable(data, "regions")


def test_sample_is_deterministic_and_matches_objects(tmp_path):
    data, _ = _blobs_dataset(tmp_path)
    table = ObjectTable(data, "instances")
    masks = [table.mask(r) for r in table.refs]
    draws = [table.sample(np.random.default_rng(7)) for _ in range(2)]
    assert draws[0][0] == draws[1][0] == 0
    np.testing.assert_array_equal(draws[0][1], draws[1][1])
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(30):
        case, target = table.sample(rng)
        assert case == 0 and target.dtype == bool
        seen.add(next(i for i, m in enumerate(masks) if np.array_equal(m, target)))
    assert seen == {0, 1, 2}


def test_merge_gives_unions_of_touching_objects(tmp_path):
    data, _ = _blobs_dataset(tmp_path)
    table = ObjectTable(data, "instances")
    masks = {(r.values[0], r.bbox[0][0]): table.mask(r) for r in table.refs}
    a, far, b = masks[(1, 0)], masks[(1, 8)], masks[(2, 0)]
    allowed = [a | b, far | a, far | b, far | a | b]
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(40):
        _, target = table.sample(rng, merge_probability=1.0)
        matches = [i for i, m in enumerate(allowed) if np.array_equal(m, target)]
        assert matches, "a merged target is a union of an object with others of its case"
        seen.add(matches[0])
    assert 0 in seen and len(seen) >= 2
    same = [ObjectTable(data, "instances").sample(np.random.default_rng(5), 1.0)[1] for _ in range(2)]
    np.testing.assert_array_equal(*same)
