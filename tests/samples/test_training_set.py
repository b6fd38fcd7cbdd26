"""Synthetic training sets: deterministic crowded objects, one label per object, nnU-Net raw layout."""

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from napari_nninteractive.core.errors import OutputError
from napari_nninteractive.samples.training_set import make_case, write_training_set

SMALL = (40, 40, 40)


@pytest.mark.parametrize("domain", ["base", "shifted"])
def test_make_case_is_deterministic_with_one_nonempty_label_per_object(domain):
    image, labels = make_case(domain=domain, seed=3)
    assert image.shape == labels.shape == (64, 64, 64)
    assert image.dtype == np.float32 and labels.dtype == np.uint8
    again_image, again_labels = make_case(domain=domain, seed=3)
    assert np.array_equal(image, again_image) and np.array_equal(labels, again_labels)
    other_image, other_labels = make_case(domain=domain, seed=4)
    assert not np.array_equal(image, other_image) and not np.array_equal(labels, other_labels)
    n = int(labels.max())
    assert 4 <= n <= 8
    assert sorted(np.unique(labels).tolist()) == list(range(n + 1))  # consecutive 1..n, none empty
    for value in range(1, n + 1):
        obj = labels == value
        assert obj.sum() >= 30
        assert ndimage.label(obj)[1] == 1  # each label value is one object
    # crowded: at least one pair of objects touches (face-adjacent voxels with different labels)
    touching = (labels[1:] != labels[:-1]) & (labels[1:] > 0) & (labels[:-1] > 0)
    assert touching.any()


def test_shifted_domain_inverts_contrast_and_changes_shapes():
    base_img, base_lab = make_case(SMALL, "base", seed=1)
    shift_img, shift_lab = make_case(SMALL, "shifted", seed=1)
    assert base_img[base_lab > 0].mean() > base_img[base_lab == 0].mean() + 0.4
    assert shift_img[shift_lab > 0].mean() < shift_img[shift_lab == 0].mean() - 0.4
    assert not np.array_equal(base_lab > 0, shift_lab > 0)


def test_unknown_domain_is_refused():
    with pytest.raises(ValueError, match="domain"):
        make_case(SMALL, "ct")


def test_write_training_set_writes_an_nnunet_raw_dataset(tmp_path):
    out = write_training_set(tmp_path / "ds", n_train=3, n_test=2, shape=SMALL, seed=2)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "synthetic"}
    assert meta["numTraining"] == 3 and meta["file_ending"] == ".nii.gz" and meta["name"]
    names = sorted(p.name for p in (out / "imagesTr").iterdir())
    assert names == ["case_000_0000.nii.gz", "case_001_0000.nii.gz", "case_002_0000.nii.gz"]
    assert sorted(p.name for p in (out / "labelsTs").iterdir()) == ["case_000.nii.gz", "case_001.nii.gz"]
    assert len(list((out / "imagesTs").iterdir())) == 2 and len(list((out / "labelsTr").iterdir())) == 3
    maxima = []
    for split in ("Tr", "Ts"):
        for lab_path in (out / f"labels{split}").iterdir():
            lab_img = nib.load(str(lab_path))
            img = nib.load(str(out / f"images{split}" / lab_path.name.replace(".nii.gz", "_0000.nii.gz")))
            assert np.array_equal(lab_img.affine, np.eye(4)) and np.array_equal(img.affine, np.eye(4))
            lab = np.asarray(lab_img.dataobj)
            assert lab.shape == img.shape == SMALL
            maxima.append(int(lab.max()))
    expected = {"background": 0, **{f"object_{v}": v for v in range(1, max(maxima) + 1)}}
    assert meta["labels"] == expected
    # test cases are not copies of training cases
    train0 = np.asarray(nib.load(str(out / "imagesTr" / "case_000_0000.nii.gz")).dataobj)
    test0 = np.asarray(nib.load(str(out / "imagesTs" / "case_000_0000.nii.gz")).dataobj)
    assert not np.array_equal(train0, test0)
    assert np.array_equal(train0, make_case(SMALL, "base", seed=200000)[0])


def test_npy_ending_and_replacing_an_earlier_dataset(tmp_path):
    folder = tmp_path / "ds"
    write_training_set(folder, n_train=2, n_test=1, shape=SMALL, domain="shifted")
    write_training_set(folder, n_train=1, n_test=1, shape=SMALL, domain="shifted", file_ending=".npy")
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["file_ending"] == ".npy" and meta["numTraining"] == 1
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == ["case_000_0000.npy"]
    image = np.load(folder / "imagesTr" / "case_000_0000.npy")
    labels = np.load(folder / "labelsTr" / "case_000.npy")
    expected_image, expected_labels = make_case(SMALL, "shifted", seed=0)
    assert np.array_equal(image, expected_image) and np.array_equal(labels, expected_labels)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_a_folder_with_other_contents_is_not_replaced(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="other contents"):
        write_training_set(folder, n_train=1, n_test=0, shape=SMALL)
    assert (folder / "notes.txt").read_text() == "keep me"
