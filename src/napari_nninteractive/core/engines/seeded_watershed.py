"""The default weight-free engine: an intensity model and a marker-based watershed on the gradient.

Built on :class:`.seeded._SeededBase` (prompts, seeds, the growing region, corrections and flood
rules, shared with the random-walker baseline in :mod:`.random_walker`); this module holds how one
region is solved: the intensity-model markers and the watershed (:func:`_flood`), coarse-to-fine
for large regions, and the coarse probe of a region that may grow.
"""

from __future__ import annotations

import math

import numpy as np

from ..geometry import BBox, bbox_shape, bbox_to_slices
from ..morphology import erode
from . import filters
from . import watershed as ws
from .seeded import SeededConfig, _SeededBase


class SeededWatershedEngine(_SeededBase):
    """The default weight-free engine: intensity model + marker-based watershed on the gradient.

    Regions larger than ``config.full_res_voxels`` are solved coarse-to-fine: the whole pipeline runs
    on a block-averaged copy of about ``config.coarse_voxels`` voxels (cubic blocks, thin axes kept
    finer, so a flat region's copy can hold more), then a watershed at full
    resolution re-decides only a band of about two coarse voxels around the coarse boundary (user
    seeds keep their full-resolution value).
    A coarse object that already reaches the region's open border, where the region will grow, is
    returned without the band. A region that may still grow and holds more than
    ``config.probe_voxels`` is first solved that coarse when it grew because the object reached the
    last one's border, or when it would be solved at full resolution (where the probe costs least
    against what it saves): an object that reaches its open border there makes it grow at once
    (a click on a liver grows its region three times before it fits; a lasso on a lung of
    *lungs-x16* once). A coarse block can reach the border where the finer object stops a voxel or
    two short of it, so the probe can make a region grow that would have held the object, and
    change the mask a little; no mask of the shared-data evaluation or of the liver changed.
    """

    name = "weight-free (seeded watershed)"
    last_factors: tuple[int, ...] = (1, 1, 1)  # block size of the last region solved (1 = full resolution)

    def _segment(self, roi: BBox, tighten: float = 1.0, provisional: bool = False, probe: bool = False) -> np.ndarray:
        cfg = self.config
        k_sigma = cfg.k_sigma * tighten
        shape = bbox_shape(roi)
        large = math.prod(shape) > cfg.full_res_voxels  # solved coarse-to-fine
        factors = ws.coarse_factors(shape, min(cfg.coarse_voxels, cfg.full_res_voxels)) if large else (1,) * len(shape)
        view = self._source_view(roi) if large else None
        img = view if view is not None else self._region_image(roi)
        fg, bg, model = self._seeds(roi, img)
        if not fg.any():
            return np.zeros(img.shape, np.uint8)
        quick = ws.coarse_factors(img.shape, cfg.probe_voxels)
        if provisional and (probe or factors == (1, 1, 1)) and max(quick) > max(factors):  # only a coarser look
            # a quick look at a coarser scale first: an object already reaching the open border makes the ROI grow
            rough = self._reaching(self._coarse(img, fg, bg, model, quick, k_sigma), quick, roi)
            if rough is not None:
                self.last_factors = quick
                return rough
        self.last_factors = factors
        if factors == (1, 1, 1):
            return _flood(img, fg, bg, model, cfg, cfg.smoothing, cfg.marker_gap, k_sigma)
        coarse = self._coarse(img, fg, bg, model, factors, k_sigma)
        if provisional:
            rough = self._reaching(coarse, factors, roi)
            if rough is not None:
                return rough
        return ws.refine_band(img, coarse, factors, fg, bg, cfg.smoothing)

    def _source_view(self, roi: BBox) -> np.ndarray | None:
        """The ROI of a one-channel in-memory image, as a read-only view, where reading it gives a float32 copy's masks.

        A coarse-to-fine solve reads the region only through block means, the band and the clicks'
        balls, each converted to float32 as it is read, which skips the float32 copy of the whole
        region (:meth:`_region_image`): for a click on a liver that grew to the whole 35 M-voxel CT,
        140 MB of fresh memory and its copy. Taken for booleans and integers of up to 16 bits (their
        block sums are exact in any order) and for native float32 in C order (summed in the copy's
        order); float16 (which scipy's filters refuse), wider types and other layouts get the copy.
        """
        image = self._require_image()
        if not isinstance(image, np.ndarray) or image.shape[0] != 1:
            return None
        dtype = image.dtype
        exact = dtype.kind in "biu" and dtype.itemsize <= 2
        if not exact and not (dtype == np.dtype(np.float32) and image.flags.c_contiguous):
            return None
        view: np.ndarray = image[(0,) + bbox_to_slices(roi)].view()
        view.flags.writeable = False  # the user's image: a write by mistake raises instead of changing it
        return view

    def _coarse(
        self, img: np.ndarray, fg: np.ndarray, bg: np.ndarray, model: np.ndarray, factors: tuple[int, ...], k: float
    ) -> np.ndarray:
        """The object solved on ``img`` block-averaged by ``factors`` (coarse voxels; ``k``: the model's k_sigma)."""
        cfg, f = self.config, max(factors)
        bg_c = ws.block_majority(bg, fg, factors)
        return _flood(
            ws.block_mean(img, factors),
            ws.block_any(fg, factors) & ~bg_c,
            bg_c,
            ws.block_any(model, factors),
            cfg,
            cfg.smoothing / f if cfg.smoothing / f >= 0.5 else 0.0,
            max(1, round(cfg.marker_gap / f)),
            k,
        )

    def _reaching(self, coarse: np.ndarray, factors: tuple[int, ...], roi: BBox) -> np.ndarray | None:
        """The coarse object at full resolution, cut as the caller will, when it reaches ``roi``'s open border
        (the ROI grows, so it need not be finer); else ``None``."""
        rough = self._cut(ws.upsample(coarse, factors, bbox_shape(roi)), roi)
        return rough if self._touches_open_border(rough, roi, self._require_image().shape[1:]) else None


def _flood(
    img: np.ndarray,
    fg: np.ndarray,
    bg: np.ndarray,
    model: np.ndarray,
    cfg: SeededConfig,
    smoothing: float,
    marker_gap: int,
    k_sigma: float,
) -> np.ndarray:
    """Intensity-model markers + seeded watershed on the gradient of one region; uint8 object mask.

    Voxels farther than ``k_sigma`` robust sigmas from the object's intensity are background markers.
    """
    if not fg.any():
        return np.zeros(img.shape, np.uint8)
    if smoothing:
        img = filters.gaussian_filter(img, smoothing)
    values = img[model & ~bg] if (model & ~bg).any() else img[fg]
    med = float(np.median(values))
    mad = 1.4826 * float(np.median(np.abs(values - med)))
    spread = float(np.subtract(*np.percentile(img, [95, 5]))) or 1.0
    sigma = max(mad, cfg.sigma_floor * spread)
    far = np.abs(img - med) > k_sigma * sigma
    if marker_gap:  # markers right at an edge would claim its voxels before the ridge decides
        far = erode(far, marker_gap, border_value=True)
    markers = np.zeros(img.shape, np.int32)
    markers[far] = 1
    markers[bg] = 1
    markers[fg] = 2
    ws.flood_unmarked(img, markers, crop=cfg.crop_watershed)
    return ws.clean(markers == 2, fg)


__all__ = ["SeededWatershedEngine"]
