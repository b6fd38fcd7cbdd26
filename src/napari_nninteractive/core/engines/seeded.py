"""What the weight-free engines share: prompts, seeds, the growing region, corrections and flood rules.

The default engine, a seeded watershed with an intensity model, is in :mod:`.seeded_watershed`; the
random-walker baseline in :mod:`.random_walker` solves each region its own way on the same base.

They compute the object from the full list of its prompts, inside a region of interest (ROI)
around the prompts that grows when the object touches its border (the AutoZoom idea). Nothing is
trained or downloaded; results are deterministic (the same interactions give the same masks), and
undo/redo are exact.

Seeds: positive points (a small ball, less the part beyond an edge inside it; a correction click's
ball, after a positive prompt, reaches no further from the click than that edge, and at least
``edge_reach``), positive scribbles, and the central part of positive boxes/lassos mark the
object; negative clicks and
scribbles and the central part of negative boxes/lassos mark the background, and what a negative
box or lasso covers on its slice is never object (:meth:`_SeededBase._cut`); a negative box or
lasso leaves earlier positive clicks alone, and a positive box or lasso overrides earlier negative
boxes and lassos inside it, not negative clicks. When the object's first positive prompt is a
2-D box or lasso, the rest of its slice and, on every slice, the voxels well outside its prism
are background (and the ROI stops ``min_margin`` beyond the prism). An initial mask seeds the
object with its (eroded) voxels.

No flood: a result that outgrows every ROI, fills half the image, reaches four of its faces (as
the background does), fills a quarter and reaches two faces from clicks and scribbles alone, or
multiplies a corrected object's size 30-fold is re-solved with a tighter intensity model, and
when that floods too the object is its positive seeds only (a click on background gives a small
object around the click). Either way the change carries a notice that says so.

Corrections act where they were placed (:func:`local_update`): of what the recomputation changes,
only the parts connected to the new prompts are kept; a positive correction only adds, a negative
one only removes. A large object (box over ``full_res_voxels``) is corrected in a window around
the new prompts that grows while the change reaches its border. No collapse: a correction that
would leave less than ``min_keep`` of the object changes only that first window, and when even
that collapses the object by cutting through its bulk (no edge there says where to cut, unlike a
neighbour joined by a neck) only the prompts' own voxels change, with a notice. A positive box or
lasso drawn as a correction adds only within its prism (``correction_prism``), as a first box
confines the object, and only what is still connected to it there."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from scipy import ndimage

from ..encoding import content_bbox
from ..geometry import (
    BBox,
    along,
    bbox_shape,
    bbox_to_slices,
    clip_bbox,
    intersect_bbox,
    nonzero_bbox,
    open_faces,
    relative_bbox,
    shift_bbox,
    union_bbox,
)
from ..lazy import ImageArray
from ..prompts import Box, InitialMask, Lasso, Point, Prompt, PromptKind
from . import filters, scratch
from . import seeds as sd
from . import watershed as ws
from .base import Engine, RunControl, Update
from .seeds import local_update

log = logging.getLogger(__name__)

#: The notices of a result refused as a flood (see ``_SeededBase._floods``).
TIGHTENED = (
    "The result spread much further than the prompts suggest, so a tighter one is shown. A box around the "
    "object, or negative clicks where it leaks, tells the engine more."
)
CUT_SHORT = (
    "This correction would have cut away most of the object through tissue where the image shows no "
    "boundary, so only the prompted voxels changed. Mark where the object ends with more prompts there."
)
SEEDS_ONLY = (
    "Every result spread much further than the prompts suggest, so only the prompted voxels change. Draw "
    "a box around the object, or add negative clicks where it leaks."
)


@dataclass(frozen=True)
class SeededConfig:
    """Tuning of the weight-free engine (defaults chosen on the shared data, see the README)."""

    margin: float = 0.5  # ROI margin around the prompts, as a fraction of their extent per axis
    min_margin: int = 12
    max_growths: int = 3
    growth: float = 1.6
    smoothing: float = 0.5  # Gaussian sigma (voxels) before modelling intensities and gradients (1.0: AUC -0.03)
    k_sigma: float = 2.5  # voxels farther than k robust sigmas from the object's intensity are background
    sigma_floor: float = 0.15  # robust sigma is at least this fraction of the ROI's 5-95 % intensity spread
    marker_gap: int = 2  # background markers keep this distance from the object's intensity range
    crop_watershed: bool = True  # flood only the box of unmarked voxels (same result, faster)
    point_radius: int = 4  # as nnInteractive's point ball; 2 measured worse (point-only AUC 0.47 vs 0.59)
    edge_reach: int = 2  # least radius of a correction click's ball when an edge crosses it (seeds.point_ball)
    full_res_voxels: int = 2_000_000  # larger regions are solved coarse-to-fine (see SeededWatershedEngine)
    coarse_voxels: int = 1_000_000  # ... on a block-averaged copy of about this many (2 M: warm box ~1.1x)
    probe_voxels: int = 250_000  # a region that may grow is first solved at this many coarse voxels (ditto)
    tighten: tuple[float, ...] = (1.0, 0.5, 0.25)  # k_sigma factors tried in turn while the object floods
    max_fraction: float = 0.5  # an object over this fraction of the image is a flood
    max_fraction_undrawn: float = 0.25  # ... or this fraction reaching two image faces, without box, lasso or mask
    max_jump: float = 30.0  # a correction that multiplies the object's size by more is a flood
    prism: float = 0.1  # a first positive 2-D box/lasso: background beyond this fraction of its extent
    correction_prism: float | None = 0.5  # a positive 2-D box/lasso correction adds only within its prism this wide
    bulk_cut: float | None = 3.0  # a collapsing cut wider than this x smaller part^(2/3) changes only the prompts
    window: float = 0.25  # a large object's correction is solved this fraction of its extent around the prompt
    min_keep: float = 0.5  # a correction leaving less of the object changes only its first window


class _SeededBase(Engine):
    """Shared prompt bookkeeping and the growing-ROI loop."""

    supported_kinds = frozenset(PromptKind)
    supports_3d_box = True
    n_image_channels = None
    pass_name = "solver run"
    tightens = True  # whether ``_segment``'s ``tighten`` narrows the object's intensity range

    def __init__(self, config: SeededConfig | None = None):
        self.config = config or SeededConfig()
        self._image: ImageArray | None = None
        self._prompts: tuple[Prompt, ...] = ()
        self.forward_passes = 0
        self.scratch = scratch.Scratch()  # big temporaries, reused from one interaction to the next

    # ------------------------------------------------------------------ state

    def set_image(self, image: ImageArray) -> None:
        content_bbox(image)  # finite and not all zero, or a clear ImageError
        filters.require_float32_range(image)  # what the float32 filters can compute
        self._image = image
        self._prompts = ()
        self.scratch.release()  # sized for the former image
        ws.prepare()  # scikit-image's imports and checks now, not in the first prompt

    def _record(self, prompt: Prompt) -> None:
        self._prompts = (prompt,) if isinstance(prompt, InitialMask) else self._prompts + (prompt,)

    def clear_prompts(self) -> None:
        self._prompts = ()

    def get_state(self) -> object:
        return self._prompts

    def set_state(self, state: object) -> None:
        self._prompts = cast("tuple[Prompt, ...]", state)  # a snapshot from get_state

    def describe(self) -> str:
        return f"{self.name} (no weights needed)"

    # ------------------------------------------------------------------ ROI

    def _prompt_box(self) -> BBox | None:
        return union_bbox(*(sd.extent(p) for p in self._prompts))

    def _require_image(self) -> ImageArray:
        assert self._image is not None, "set_image() first"
        return self._image

    def _roi(self, core: BBox, scale: float = 1.0) -> BBox:
        cfg, shape = self.config, self._require_image().shape[1:]
        roi = []
        widest = max(hi - lo for lo, hi in core)
        for (lo, hi), _n in zip(core, shape):
            # a thin axis (a 2-D prompt's) gets the margin of half the widest: objects are about as deep as wide
            m = max(cfg.min_margin, int(cfg.margin * max(hi - lo, widest // 2))) * scale
            roi.append((int(lo - m), int(hi + m)))
        prism = self._prism(self._first_box())
        if prism is not None:  # beyond the prism everything is background: a margin for the gradient is enough
            roi = list(
                intersect_bbox(tuple(roi), tuple((lo - cfg.min_margin, hi + cfg.min_margin) for lo, hi in prism))
            )
        return clip_bbox(tuple(roi), shape)

    def _predict(self, mask: np.ndarray, new: Sequence[Prompt], control: RunControl) -> list[Update]:
        with scratch.using(self.scratch), scratch.small_pages():
            return self._solve(mask, new, control)

    def _solve(self, mask: np.ndarray, new: Sequence[Prompt], control: RunControl) -> list[Update]:
        """Segment, keep a correction local, and refuse floods (see :meth:`_floods`) by tightening.

        A flood is answered by re-segmenting with a tighter intensity model (``config.tighten``);
        when even the tightest floods, the object is the positive seeds only (a small object around
        a click, never the volume).
        """
        self.forward_passes = 0
        if not self._prompts:
            return []
        old_box = nonzero_bbox(mask)
        local = (
            old_box is not None and len(new) < len(self._prompts) and not any(isinstance(p, InitialMask) for p in new)
        )
        n_old = int(np.count_nonzero(mask[bbox_to_slices(old_box)])) if old_box is not None else 0
        tightenings = self.config.tighten if self.tightens else self.config.tighten[:1]
        window = self._window(old_box, new) if local else None
        for tighten in tightenings:
            for _ in range(self.config.max_growths + 1):  # a window grows while the correction reaches its border
                roi, seg, contained = self._grow(mask, control, tighten, window)
                changed, values = self._merge(mask, roi, seg, new if local else None, window is not None)
                if window is None or not _reaches_open_border(mask, changed, values):
                    break
                window = self._widen(window)
            if not self._floods(values, changed, contained, max(n_old, _drawn(new)) if local else 0, mask.shape, n_old):
                notices: tuple[str, ...] = (TIGHTENED,) if tighten != tightenings[0] else ()
                if local and self._collapses(mask, changed, values, n_old):
                    # a correction that would take most of the object: only its first window changes
                    whole = changed, values  # a cut through the bulk is judged here (a window's faces hide it)
                    first = self._window(old_box, new, always=True)
                    assert first is not None  # always=True gives a window
                    _, seg, _ = self._grow(mask, control, tighten, first)
                    changed, values = self._merge(mask, first, seg, new, True)
                    cut = self.config.bulk_cut
                    if (
                        cut is not None
                        and self._collapses(mask, changed, values, n_old)
                        and sd.cuts_bulk(mask[bbox_to_slices(whole[0])], whole[1], n_old, cut)
                    ):
                        # no edge says where the object ends: only the prompts' own voxels change
                        changed, values = sd.footprints(mask, new, self.config.point_radius)
                        notices += (CUT_SHORT,)
                self.notices = notices
                return [(changed, values)]
            log.info("the object flooded its region (tighten %s); tightening the intensity model", tighten)
        roi = self._roi(self._core(mask))
        fg, _, _ = self._seeds(roi, self._region_image(roi))
        changed, values = self._merge(mask, roi, self._cut(ws.clean(fg, fg), roi), new if local else None)
        self.notices = (SEEDS_ONLY,)
        return [(changed, values)]

    def _core(self, mask: np.ndarray) -> BBox:
        core = union_bbox(self._prompt_box(), nonzero_bbox(mask))
        assert core is not None  # validated prompts are never empty
        return core

    def _collapses(self, mask: np.ndarray, changed: BBox, values: np.ndarray, n_old: int) -> bool:
        """Whether a correction leaves less than ``config.min_keep`` of the object's ``n_old`` voxels."""
        n_new = n_old - int(np.count_nonzero(mask[bbox_to_slices(changed)])) + int(np.count_nonzero(values))
        return n_new < self.config.min_keep * n_old

    def _window(self, old_box: BBox | None, new: Sequence[Prompt], always: bool = False) -> BBox | None:
        """The region a correction of a large object is solved in (``None``: the whole object's ROI).

        An object whose box exceeds ``config.full_res_voxels`` is corrected in a window around the new
        prompts, ``config.window`` of the object's extent either side, so a click costs the same
        whatever the object's size; the window grows (as the ROI does) while what the correction
        changes reaches its border, and the object outside it stays as it was. ``always``: the first
        window whatever the object's size (a correction that would collapse the object).
        """
        assert old_box is not None  # a correction of an existing object
        if not always and int(np.prod(bbox_shape(old_box))) <= self.config.full_res_voxels:
            return None
        near = union_bbox(*(sd.extent(p) for p in new))
        assert near is not None  # validated prompts are never empty
        grown = tuple(
            (lo - r, hi + r)
            for (lo, hi), r in zip(
                near, (max(self.config.min_margin, int(self.config.window * (b - a))) for a, b in old_box)
            )
        )
        return clip_bbox(grown, self._require_image().shape[1:])

    def _widen(self, window: BBox) -> BBox:
        """``window`` with each side ``config.growth`` times farther from its centre."""
        g = (self.config.growth - 1) / 2
        grown = tuple((lo - int(g * (hi - lo)) - 1, hi + int(g * (hi - lo)) + 1) for lo, hi in window)
        return clip_bbox(grown, self._require_image().shape[1:])

    def _grow(
        self, mask: np.ndarray, control: RunControl, tighten: float, window: BBox | None = None
    ) -> tuple[BBox, np.ndarray, bool]:
        """(ROI, object in it, whether it fits): the ROI grows while the object touches its open border.

        With ``window`` the ROI is that window, solved once (a correction of a large object).
        """
        shape = mask.shape
        if window is not None:
            control.report("predict", 1, None, f"correcting region {bbox_shape(window)}")
            seg = self._cut(self._segment(window, tighten), window)
            self.forward_passes += 1
            return window, seg, True
        core = self._core(mask)
        scale = 1.0
        touching = False
        whole = tuple((0, n) for n in shape)
        for attempt in range(self.config.max_growths + 1):
            control.check()
            roi = self._roi(core, scale)
            control.report("predict", attempt + 1, None, f"segmenting region {bbox_shape(roi)}")
            grows = attempt < self.config.max_growths and roi != whole  # a result touching the border is dropped
            seg = self._cut(self._segment(roi, tighten, provisional=grows, probe=grows and attempt > 0), roi)
            self.forward_passes += 1
            touching = self._touches_open_border(seg, roi, shape)
            if not touching or roi == whole:
                break
            seg_box = nonzero_bbox(seg)
            assert seg_box is not None  # seg touches the ROI border, so it is not empty
            grown = union_bbox(core, shift_bbox(seg_box, [lo for lo, _ in roi]))
            assert grown is not None  # the union of non-empty boxes
            core, scale = grown, scale * self.config.growth
        control.check()
        return roi, seg, not touching

    def _merge(
        self, mask: np.ndarray, roi: BBox, seg: np.ndarray, new: Sequence[Prompt] | None, windowed: bool = False
    ) -> tuple[BBox, np.ndarray]:
        """The changed box and the object there; with ``new``, only changes connected to those prompts.

        ``windowed``: ``roi`` is a correction window and the object outside it stays as it is. Else
        the changed box holds the old and the new object (beyond both, nothing changes), which for
        a region as large as the image is much less to copy and to write.
        """
        found = None if windowed else nonzero_bbox(seg)
        new_box = shift_bbox(found, [lo for lo, _ in roi]) if found else None
        changed = roi if windowed else union_bbox(new_box, nonzero_bbox(mask)) or roi
        inside = intersect_bbox(roi, changed)
        values = np.zeros(bbox_shape(changed), dtype=np.uint8)
        values[bbox_to_slices(relative_bbox(inside, changed))] = seg[bbox_to_slices(relative_bbox(inside, roi))]
        if new is not None:
            zone = np.zeros(values.shape, bool)
            for p in new:
                sd.paint(zone, changed, *sd.footprint(p, self.config.point_radius))
            signs = {p.positive for p in new}
            before = mask[bbox_to_slices(changed)]
            self._confine(before, values, changed, new)  # before the connectivity step, which then keeps
            # only what reaches the prompts inside the prism
            values = local_update(before, values, zone, signs.pop() if len(signs) == 1 else None)
        return changed, values

    def _confine(self, before: np.ndarray, values: np.ndarray, changed: BBox, new: Sequence[Prompt]) -> None:
        """Drop (in place) what positive 2-D box or lasso corrections would add beyond their prisms.

        A box drawn as a correction marks a part of the object, and that part's cross-section on
        other slices lies near the box, as for a first box (:meth:`_prism`, ``config.correction_prism``
        of its extent beyond it in its plane, every slice). Without this, a box on a missed rim next to
        a structure of the same intensity (the other lung, a neighbouring vertebra) took that structure.
        """
        frac = self.config.correction_prism
        first_new = len(self._prompts) - len(new)
        if frac is None or not any(p.positive for p in self._prompts[:first_new]):
            return  # the object's first prompt(s), not a correction
        if not all(p.positive and isinstance(p, Box | Lasso) and sd.flat_axis(sd.extent(p)) is not None for p in new):
            return
        shape = self._require_image().shape[1:]
        allowed = np.zeros(values.shape, bool)
        for p in new:
            box = sd.extent(p)
            axis = sd.flat_axis(box)
            assert axis is not None  # checked above
            w = sd.window(_grown(box, axis, frac, 3, (0, shape[axis])), changed)
            if w is not None:
                allowed[w[1]] = True
        values[~allowed & (before == 0)] = 0

    def _floods(
        self, values: np.ndarray, frame: BBox, contained: bool, n_old: int, shape: tuple[int, ...], before: int = 0
    ) -> bool:
        """Whether a result (``values`` on ``frame``) is a flood, not an object.

        A flood outgrew every ROI, fills more than ``config.max_fraction`` of the image, reaches
        four or more of the image's faces (as the background does), fills more than
        ``config.max_fraction_undrawn`` and reaches two faces when nothing sized the object (a
        click spreading into the tissue around it), or, as a correction of an object of ``n_old``
        voxels (at least the new positive box or lasso), multiplied its size by more than
        ``config.max_jump``. A positive box or lasso sizes the object, as does an initial mask or
        the object of ``before`` voxels there before this prediction when it holds a quarter of
        the result (a mask set without refine leaves the engine no prompt that says so).
        """
        if not contained:
            return True
        n, size = int(np.count_nonzero(values)), int(np.prod(shape))
        if n > self.config.max_fraction * size:
            return True
        faces = sum(  # the image's faces the result reaches (a flat axis has none)
            bool(np.take(values, idx, axis=axis).any())
            for axis, idx in open_faces(frame, shape, on_border=True)
            if shape[axis] > 1
        )
        if faces >= 4:
            return True
        if faces >= 2 and n > self.config.max_fraction_undrawn * size:
            drawn = _drawn(self._prompts) or any(isinstance(p, InitialMask) for p in self._prompts)
            if not drawn and 4 * before < n:
                return True
        return n_old > 0 and n > self.config.max_jump * n_old and n - n_old > 1000

    @staticmethod
    def _touches_open_border(seg: np.ndarray, roi: BBox, shape: Sequence[int]) -> bool:
        return any(np.take(seg, idx, axis=axis).any() for axis, idx in open_faces(roi, shape))

    # ------------------------------------------------------------------ seeds

    def _seeds(self, roi: BBox, img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fg, bg, core) seed masks in the ROI frame; ``core`` = voxels to learn intensities from.

        ``img`` is the ROI's image: a click's ball keeps only the voxels on the click's side of an
        edge inside it, so a click near a boundary does not seed (or model) the other side.
        """
        shape = bbox_shape(roi)
        fg = scratch.full("seeds.fg", shape, bool, False)
        bg = scratch.full("seeds.bg", shape, bool, False)
        model = scratch.full("seeds.model", shape, bool, False)
        cfg = self.config
        r = cfg.point_radius
        seen_positive = False
        clicks = np.zeros(shape, bool)  # positive clicks' voxels: a later negative box or lasso leaves them alone
        negatives = np.zeros(shape, bool)  # negative clicks' balls: a later positive box or lasso leaves them alone
        for p in self._prompts:  # later prompts win where they conflict; each acts on its footprint's window
            seen_positive, first_positive = seen_positive or p.positive, not seen_positive
            if isinstance(p, Box | Lasso) and p.positive and first_positive:
                # a box drawn as a correction marks a part, not the whole object
                assert p.bbox is not None, "validated region prompts have a bbox"
                self._mark_outside(p.bbox, roi, fg, bg)
            if isinstance(p, Point):  # a click after a positive prompt is a correction
                box, values = sd.point_ball(p, r, img, roi, None if first_positive else cfg.edge_reach)
            else:
                box, values = sd.footprint(p, r)
            w = sd.window(box, roi)
            if w is None:
                continue
            common, at, part = w
            region = values[part].astype(bool, copy=False)
            if isinstance(p, Point):
                sd.assign(fg[at], bg[at], region, p.positive)
                if p.positive:
                    model[at] |= region
                    negatives[at] &= ~region
                    voxel = tuple(int(c) - lo for c, (lo, _) in zip(p.coord, roi))
                    if all(0 <= v < n for v, n in zip(voxel, shape)):
                        clicks[voxel] = True
                else:
                    clicks[at] &= ~region
                    negatives[at] |= region
            elif isinstance(p, Box | Lasso):
                assert p.bbox is not None, "validated region prompts have a bbox"
                centre = sd.central(region, p.bbox, common)
                if p.positive:
                    model[at] |= centre
                    bg[at] &= ~(region & ~negatives[at])  # it wins over earlier negative boxes and lassos, not clicks
                    fg[at] |= centre & ~negatives[at]
                else:  # its central part becomes background (the rest is left to the image), not earlier clicks
                    sd.assign(fg[at], bg[at], (centre if centre.any() else region) & ~clicks[at], False)
            else:  # a scribble or an initial mask
                if isinstance(p, InitialMask):  # eroded as in the ROI: beyond the window is background
                    eroded = ndimage.binary_erosion(region, iterations=1)
                    region = eroded if eroded.any() else region
                sd.assign(fg[at], bg[at], region, p.positive)
                if p.positive:
                    model[at] |= region
        return fg, bg, model

    def _cut(self, seg: np.ndarray, roi: BBox) -> np.ndarray:
        """``seg`` (the object in ``roi``) less the footprints of negative boxes and lassos, in place.

        Only a negative box's central half seeds the background (the watershed decides the rest of
        it from the image); the footprint itself, on the slice it was drawn, is never object. Later
        positive prompts take back their own footprints, and earlier positive clicks stay.
        """
        r = self.config.point_radius
        for i, p in enumerate(self._prompts):
            if p.positive or not isinstance(p, Box | Lasso):
                continue
            box, values = sd.footprint(p, r)
            w = sd.window(box, roi)
            if w is None:
                continue
            common, at, part = w
            cut = values[part].astype(bool)  # a copy
            for j, q in enumerate(self._prompts):
                if not q.positive or (j < i and not isinstance(q, Point)):
                    continue
                q_box, q_values = sd.footprint(q, 0) if j < i else sd.footprint(q, r)
                qw = sd.window(q_box, common)
                if qw is not None:
                    cut[qw[1]] &= ~q_values[qw[2]].astype(bool)
            seg[at][cut] = 0
        return seg

    def _mark_outside(self, box: BBox, roi: BBox, fg: np.ndarray, bg: np.ndarray) -> None:
        """Mark as background (in ``roi``'s ``fg``/``bg``) what the object's first positive 2-D box or lasso on ``box`` implies.

        On its own slice: everything beyond a small tolerance around it. On every other slice:
        everything beyond its prism (:meth:`_prism`). Set slab by slab, without full-size temporaries.
        """
        plane_axis = sd.flat_axis(box)
        if plane_axis is None:
            return

        def mark(slabs: list[tuple[slice, ...]], fg_: np.ndarray, bg_: np.ndarray) -> None:
            for slab in slabs:
                bg_[slab] = True
                fg_[slab] = False

        prism = self._prism(box)
        if prism is not None:
            mark(sd.complement(prism, roi), fg, bg)
        s = box[plane_axis][0] - roi[plane_axis][0]
        if 0 <= s < bg.shape[plane_axis]:
            sl = along(bg.ndim, plane_axis, slice(s, s + 1))
            plane_roi = tuple((lo + s, lo + s + 1) if a == plane_axis else (lo, hi) for a, (lo, hi) in enumerate(roi))
            mark(sd.complement(_grown(box, plane_axis, 0.1, 2, box[plane_axis]), plane_roi), fg[sl], bg[sl])

    def _prism(self, box: BBox | None) -> BBox | None:
        """Where a first positive 2-D box or lasso on ``box`` confines the object, or ``None``.

        The prism spans every slice and reaches ``config.prism`` of the box's extent beyond it in
        the plane (the object's cross-section stays near the box it was drawn in); it holds only
        while no other positive prompt reaches beyond it.
        """
        plane_axis = None if box is None else sd.flat_axis(box)
        if box is None or plane_axis is None:
            return None
        prism = _grown(box, plane_axis, self.config.prism, 3, (0, self._require_image().shape[1:][plane_axis]))
        others = [sd.extent(q) for q in self._prompts if q.positive and sd.extent(q) != box]
        return prism if all(intersect_bbox(q, prism) == q for q in others) else None

    def _first_box(self) -> BBox | None:
        """The box of the object's first positive prompt when that is a box or lasso."""
        first = next((p for p in self._prompts if p.positive), None)
        return first.bbox if isinstance(first, Box | Lasso) else None

    def _segment(self, roi: BBox, tighten: float = 1.0, provisional: bool = False, probe: bool = False) -> np.ndarray:
        """The object in ``roi`` (uint8); ``tighten`` scales the intensity model's tolerance.

        ``provisional``: a result that touches the ROI's open border only makes the ROI grow, so it
        may be rough (an engine may skip its finishing steps then). ``probe``: the ROI grew because
        the object reached the last one's border, so it likely reaches this one's too (an engine
        may look at a coarse scale first).
        """
        raise NotImplementedError

    def _region_image(self, roi: BBox) -> np.ndarray:
        """The ROI as float32, channels averaged (a scratch array, see :mod:`.scratch`)."""
        image = self._require_image()[(slice(None),) + bbox_to_slices(roi)]
        region = scratch.empty("region.image", bbox_shape(roi), np.float32)
        if image.shape[0] > 1:
            image.mean(axis=0, dtype=np.float32, out=region)
        else:
            np.copyto(region, image[0], casting="unsafe")
        return region


def _drawn(prompts: Sequence[Prompt]) -> int:
    """Voxels of the largest positive box or lasso among ``prompts`` (0: none).

    The object is at least that big, so a correction that draws it again is no 30-fold flood of a
    nearly erased object.
    """
    sizes = [
        math.prod(bbox_shape(p.bbox)) if isinstance(p, Box) else int(np.count_nonzero(p.mask))
        for p in prompts
        if p.positive and isinstance(p, Box | Lasso)
    ]
    return max(sizes, default=0)


def _grown(box: BBox, plane_axis: int, frac: float, least: int, depth: tuple[int, int]) -> BBox:
    """``box`` grown in its plane by ``frac`` of its extent (at least ``least``) per side; ``depth`` across it."""
    return tuple(
        depth if a == plane_axis else (lo - max(least, int(frac * (hi - lo))), hi + max(least, int(frac * (hi - lo))))
        for a, (lo, hi) in enumerate(box)
    )


def _reaches_open_border(mask: np.ndarray, frame: BBox, values: np.ndarray) -> bool:
    """Whether ``values`` differ from ``mask`` on a face of ``frame`` that is not the image's border."""
    old = mask[bbox_to_slices(frame)]
    return any(
        (np.take(values, idx, axis=axis) != np.take(old, idx, axis=axis)).any()
        for axis, idx in open_faces(frame, mask.shape)
    )
