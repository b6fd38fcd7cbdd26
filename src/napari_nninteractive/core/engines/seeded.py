"""Weight-free engines: seeded watershed with an intensity model (default) and a random-walker baseline.

Both recompute the object from the full list of its prompts on every prediction, inside a region of
interest (ROI) around the prompts that grows when the object touches its border (the AutoZoom
idea). Nothing is trained or downloaded; results are deterministic, and the prompt list is the
whole state, so undo/redo are exact.

Seeds: positive points (a small ball), positive scribbles, and the central part of positive
boxes/lassos mark the object; negative prompts, and for a box or lasso the rest of its slice, mark
the background. An initial mask seeds the object with its (eroded) voxels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..geometry import BBox, bbox_shape, bbox_to_slices, clip_bbox, intersect_bbox, nonzero_bbox, union_bbox
from ..prompts import Box, InitialMask, Lasso, Point, Prompt, PromptKind, Scribble
from .base import Engine, RunControl, Update

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeededConfig:
    """Tuning of the weight-free engine (defaults chosen on the shared data, see the README)."""

    margin: float = 0.5  # ROI margin around the prompts, as a fraction of their extent per axis
    min_margin: int = 12
    max_growths: int = 3
    growth: float = 1.6
    smoothing: float = 1.0  # Gaussian sigma (voxels) before modelling intensities and gradients
    k_sigma: float = 2.5  # voxels farther than k robust sigmas from the object's intensity are background
    sigma_floor: float = 0.15  # robust sigma is at least this fraction of the ROI's 5-95 % intensity spread
    marker_gap: int = 2  # background markers keep this distance from the object's intensity range
    crop_watershed: bool = True  # flood only the box of unmarked voxels (same result, faster)
    point_radius: int = 4  # as nnInteractive's point ball; 2 measured worse (point-only AUC 0.47 vs 0.59)


def _slices(box: BBox):
    return bbox_to_slices(box)


class _SeededBase(Engine):
    """Shared prompt bookkeeping and the growing-ROI loop."""

    supported_kinds = frozenset(PromptKind)
    supports_3d_box = True
    n_image_channels = None

    def __init__(self, config: SeededConfig | None = None):
        self.config = config or SeededConfig()
        self._image: np.ndarray | None = None
        self._prompts: tuple[Prompt, ...] = ()
        self.forward_passes = 0

    # ------------------------------------------------------------------ state

    def set_image(self, image: np.ndarray) -> None:
        self._image = image
        self._prompts = ()
        finite = np.isfinite(image[0]) if image.dtype.kind == "f" else None
        if finite is not None and not finite.all():
            from ..encoding import ImageError

            raise ImageError("The image contains NaN or infinite voxels; replace them before segmenting.")

    def add_prompt(self, prompt: Prompt) -> None:
        self._prompts = (prompt,) if isinstance(prompt, InitialMask) else self._prompts + (prompt,)

    def clear_prompts(self) -> None:
        self._prompts = ()

    def get_state(self) -> object:
        return self._prompts

    def set_state(self, state: object) -> None:
        self._prompts = state

    def describe(self) -> str:
        return f"{self.name} (no weights needed)"

    # ------------------------------------------------------------------ ROI

    def _prompt_box(self) -> BBox:
        boxes = [p.bbox if not isinstance(p, Point) else tuple((c, c + 1) for c in p.coord) for p in self._prompts]
        return union_bbox(*boxes)

    def _roi(self, core: BBox, scale: float = 1.0) -> BBox:
        cfg, shape = self.config, self._image.shape[1:]
        roi = []
        for (lo, hi), n in zip(core, shape):
            m = max(cfg.min_margin, int(cfg.margin * (hi - lo))) * scale
            roi.append((int(lo - m), int(hi + m)))
        return clip_bbox(tuple(roi), shape)

    def predict(self, mask: np.ndarray, pending: Sequence[Prompt], control: RunControl) -> list[Update]:
        self.forward_passes = 0
        if not self._prompts:
            return []
        shape = mask.shape
        core = union_bbox(self._prompt_box(), nonzero_bbox(mask))
        scale = 1.0
        for attempt in range(self.config.max_growths + 1):
            control.check()
            roi = self._roi(core, scale)
            control.report("predict", attempt + 1, None, f"segmenting region {bbox_shape(roi)}")
            seg = self._segment(roi)
            self.forward_passes += 1
            touching = self._touches_open_border(seg, roi, shape)
            if not touching or roi == tuple((0, n) for n in shape):
                break
            core = union_bbox(core, _shift(nonzero_bbox(seg), roi))
            scale *= self.config.growth
        control.check()
        changed = union_bbox(roi, nonzero_bbox(mask))
        values = np.zeros(bbox_shape(changed), dtype=np.uint8)
        values[_slices(_rel(roi, changed))] = seg
        return [(changed, values)]

    @staticmethod
    def _touches_open_border(seg: np.ndarray, roi: BBox, shape) -> bool:
        for axis, ((lo, hi), n) in enumerate(zip(roi, shape)):
            for idx, at_edge in ((0, lo == 0), (-1, hi == n)):
                if not at_edge and np.take(seg, idx, axis=axis).any():
                    return True
        return False

    # ------------------------------------------------------------------ seeds

    def _seeds(self, roi: BBox) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fg, bg, core) seed masks in the ROI frame; ``core`` = voxels to learn intensities from."""
        shape = bbox_shape(roi)
        fg = np.zeros(shape, bool)
        bg = np.zeros(shape, bool)
        model = np.zeros(shape, bool)
        r = self.config.point_radius
        ball = _ball(r)
        for p in self._prompts:  # later prompts win where they conflict
            if isinstance(p, Point):
                region = np.zeros(shape, bool)
                box = tuple((c - r, c + r + 1) for c in p.coord)
                _paint(region, roi, box, ball)
                _assign(fg, bg, region, p.positive)
                if p.positive:
                    model |= region
            elif isinstance(p, (Box, Lasso)):
                inside = np.zeros(shape, bool)
                if isinstance(p, Box):
                    _paint(inside, roi, p.bbox, np.ones(bbox_shape(p.bbox), bool))
                else:
                    _paint(inside, roi, p.bbox, p.mask)
                if p.positive:
                    plane_axis = _flat_axis(p.bbox)
                    if plane_axis is not None:  # the rest of its slice, beyond a tolerance, is background
                        tolerant = np.zeros(shape, bool)
                        grown = tuple((lo, hi) if a == plane_axis else
                                      (lo - max(2, (hi - lo) // 10), hi + max(2, (hi - lo) // 10))
                                      for a, (lo, hi) in enumerate(p.bbox))
                        _paint(tolerant, roi, grown, np.ones(bbox_shape(grown), bool))
                        s = p.bbox[plane_axis][0] - roi[plane_axis][0]
                        if 0 <= s < shape[plane_axis]:
                            sl = [slice(None)] * 3
                            sl[plane_axis] = s
                            outside = np.zeros(shape, bool)
                            outside[tuple(sl)] = ~tolerant[tuple(sl)]
                            bg |= outside
                            fg &= ~outside
                    centre = _central(inside, p.bbox, roi)
                    model |= centre
                    fg |= centre & ~bg
                else:
                    _assign(fg, bg, inside, False)
            elif isinstance(p, (Scribble, InitialMask)):
                region = np.zeros(shape, bool)
                _paint(region, roi, p.bbox, p.mask)
                if isinstance(p, InitialMask):
                    eroded = ndimage.binary_erosion(region, iterations=1)
                    region = eroded if eroded.any() else region
                _assign(fg, bg, region, p.positive)
                if p.positive:
                    model |= region
        return fg, bg, model

    def _segment(self, roi: BBox) -> np.ndarray:
        raise NotImplementedError


class SeededWatershedEngine(_SeededBase):
    """The default weight-free engine: intensity model + marker-based watershed on the gradient."""

    name = "weight-free (seeded watershed)"

    def _segment(self, roi: BBox) -> np.ndarray:
        from skimage.segmentation import watershed

        cfg = self.config
        image = self._image[(slice(None),) + _slices(roi)].astype(np.float32)
        img = image.mean(axis=0) if image.shape[0] > 1 else image[0]
        if cfg.smoothing:
            img = ndimage.gaussian_filter(img, cfg.smoothing)
        fg, bg, model = self._seeds(roi)
        if not fg.any():
            return np.zeros(img.shape, np.uint8)
        values = img[model & ~bg] if (model & ~bg).any() else img[fg]
        med = float(np.median(values))
        mad = 1.4826 * float(np.median(np.abs(values - med)))
        spread = float(np.percentile(img, 95) - np.percentile(img, 5)) or 1.0
        sigma = max(mad, cfg.sigma_floor * spread)
        far = np.abs(img - med) > cfg.k_sigma * sigma
        if cfg.marker_gap:  # markers right at an edge would claim its voxels before the ridge decides
            far = ndimage.binary_erosion(far, iterations=cfg.marker_gap, border_value=1)
        markers = np.zeros(img.shape, np.int32)
        markers[far] = 1
        markers[bg] = 1
        markers[fg] = 2
        # only unmarked voxels can change: flood just their bounding box (plus the markers around it)
        free = nonzero_bbox(markers == 0) if cfg.crop_watershed else tuple((0, n) for n in img.shape)
        labels = markers
        if free is not None:
            box = clip_bbox(tuple((lo - 1, hi + 1) for lo, hi in free), img.shape)
            sub = _slices(box)
            gradient = ndimage.gaussian_gradient_magnitude(img, 1.0)  # on the whole region: exact values
            labels = markers.copy()
            labels[sub] = watershed(gradient[sub], markers[sub])
        seg = labels == 2
        seg = _keep_seeded(seg, fg)
        return ndimage.binary_fill_holes(seg).astype(np.uint8)


class RandomWalkerEngine(_SeededBase):
    """Baseline: scikit-image's random walker on the same ROI and seeds, ROI border as background."""

    name = "random walker (baseline)"

    def _segment(self, roi: BBox) -> np.ndarray:
        from skimage.segmentation import random_walker

        image = self._image[(slice(None),) + _slices(roi)].astype(np.float32)
        img = image.mean(axis=0) if image.shape[0] > 1 else image[0]
        fg, bg, _ = self._seeds(roi)
        if not fg.any():
            return np.zeros(img.shape, np.uint8)
        markers = np.zeros(img.shape, np.int32)
        border = np.ones(img.shape, bool)
        border[1:-1, 1:-1, 1:-1] = False  # the region's outer faces
        markers[border] = 1
        markers[bg] = 1
        markers[fg] = 2
        lo, hi = np.percentile(img, [1, 99])
        scaled = (img - lo) / max(hi - lo, 1e-6)
        labels = random_walker(scaled, markers, beta=130, mode="cg_j", tol=1e-3)
        return (labels == 2).astype(np.uint8)


# ----------------------------------------------------------------------------- helpers


def _shift(box: BBox | None, roi: BBox) -> BBox | None:
    return None if box is None else tuple((lo + r0, hi + r0) for (lo, hi), (r0, _) in zip(box, roi))


def _rel(box: BBox, frame: BBox) -> BBox:
    return tuple((lo - f0, hi - f0) for (lo, hi), (f0, _) in zip(box, frame))


def _ball(r: int) -> np.ndarray:
    g = np.arange(-r, r + 1)
    zz, yy, xx = np.meshgrid(g, g, g, indexing="ij")
    return zz**2 + yy**2 + xx**2 <= r * r


def _paint(target: np.ndarray, roi: BBox, box: BBox, values: np.ndarray) -> None:
    """OR ``values`` (shaped like ``box``, image frame) into ``target`` (ROI frame)."""
    common = intersect_bbox(box, roi)
    if any(hi <= lo for lo, hi in common):
        return
    target[_slices(_rel(common, roi))] |= values[_slices(_rel(common, box))].astype(bool)


def _assign(fg: np.ndarray, bg: np.ndarray, region: np.ndarray, positive: bool) -> None:
    if positive:
        fg |= region
        bg &= ~region
    else:
        bg |= region
        fg &= ~region


def _flat_axis(box: BBox) -> int | None:
    flat = [a for a, (lo, hi) in enumerate(box) if hi - lo == 1]
    return flat[0] if len(flat) == 1 else None


def _central(inside: np.ndarray, box: BBox, roi: BBox) -> np.ndarray:
    """The central half (per in-plane axis) of a box/lasso region: likely object voxels."""
    out = np.zeros_like(inside)
    shrunk = []
    for lo, hi in box:
        ext = hi - lo
        q = ext // 4 if ext > 3 else 0
        shrunk.append((lo + q, hi - q))
    _paint(out, roi, tuple(shrunk), np.ones(bbox_shape(tuple(shrunk)), bool))
    return out & inside


def _keep_seeded(seg: np.ndarray, fg: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(seg)
    if n <= 1:
        return seg
    keep = np.unique(labels[fg & seg])
    keep = keep[keep > 0]
    return np.isin(labels, keep)
