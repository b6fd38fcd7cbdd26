"""Overlapping objects in a label map export: later objects win, and every loss is reported."""

import numpy as np

from napari_nninteractive.io.export import OverlapLoss, describe_losses, label_map, label_map_with_losses


def _masks():
    a = np.zeros((4, 6, 6), bool)
    a[1:3, 1:3, 1:3] = True  # 8 voxels, all inside b
    b = np.zeros_like(a)
    b[:, :4, :4] = True  # 64 voxels, 8 of them inside c
    c = np.zeros_like(a)
    c[2:4, 2:4, 2:4] = True  # 8 voxels
    return [a, b, c]


def test_an_object_covered_whole_is_reported_not_dropped_silently():
    labels, losses = label_map_with_losses(_masks(), [1, 1, 1], "instance")
    assert not (labels == 1).any() and (labels == 3).sum() == 8  # later objects win
    assert (labels == 2).sum() == 64 - 8  # b keeps a's voxels (a is earlier) and loses c's
    assert losses == (OverlapLoss(0, 8, 8), OverlapLoss(1, 8, 64))
    text = describe_losses(losses, ["liver", "kidney", "tumour"])
    assert "'liver' is not in it at all (all 8 voxels" in text and "'kidney' lost 8 of 64 voxels" in text
    assert "tumour" not in text
    assert np.array_equal(label_map(_masks(), [1, 1, 1]), labels)


def test_same_class_overlaps_lose_nothing_and_no_overlap_says_nothing():
    _labels, losses = label_map_with_losses(_masks(), [5, 5, 5], "semantic")
    assert losses == () and describe_losses(losses, ["x", "y", "z"]) == ""
    _labels, losses = label_map_with_losses(_masks(), [5, 5, 7], "semantic")
    assert [(x.index, x.lost) for x in losses] == [(0, 1), (1, 8)]  # only voxels that show another value
