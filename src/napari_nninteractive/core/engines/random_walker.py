"""Baseline weight-free engine: scikit-image's random walker on the seeded engine's region and seeds."""

from __future__ import annotations

import warnings

import numpy as np

from ..geometry import BBox
from .seeded import _SeededBase


class RandomWalkerEngine(_SeededBase):
    """Baseline: scikit-image's random walker on the same ROI and seeds, ROI border as background."""

    name = "random walker (baseline)"
    tightens = False  # no intensity model to tighten: a flood falls back to the seeds at once

    def _segment(self, roi: BBox, tighten: float = 1.0, provisional: bool = False, probe: bool = False) -> np.ndarray:
        from skimage.segmentation import random_walker

        img = self._region_image(roi)
        fg, bg, _ = self._seeds(roi, img)
        if not fg.any():
            return np.zeros(img.shape, np.uint8)
        markers = np.zeros(img.shape, np.int32)
        border = np.ones(img.shape, bool)
        border[1:-1, 1:-1, 1:-1] = False  # the region's outer faces
        markers[border] = 1
        markers[bg] = 1
        markers[fg] = 2
        lo, hi = np.percentile(img, [1, 99])
        scaled = (img - lo) / (max(hi - lo, 1e-6 * max(abs(lo), abs(hi))) or 1.0)  # unit-free
        with warnings.catch_warnings():  # the solver's tolerance note is not something a user can act on
            warnings.filterwarnings("ignore", message="The probability range is outside", category=UserWarning)
            labels = random_walker(scaled, markers, beta=130, mode="cg_j", tol=1e-3)
        seg: np.ndarray = (labels == 2).astype(np.uint8)
        return seg
