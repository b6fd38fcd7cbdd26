"""Image normalisation and prompt rasterisation into the network's channels (spec sections 2-4).

Network input order: ``[image..., prev_seg, bbox/lasso +, bbox/lasso -, point +, point -,
scribble +, scribble -]``. The seven prompt-related channels are never held as full volumes:
:class:`PromptStore` keeps each prompt as a small float16 raster (already multiplied by the decay
intensity of its time) and composes any window on demand. The result is the same as writing into
dense float16 channels: a box is specified as *fill* and the others as element-wise *max*, but a
new prompt's value is the current intensity, which is at least every stored value, so fill and max
agree and every channel is simply the max over its rasters.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

from .errors import UserError
from .geometry import BBox, bbox_is_empty, bbox_shape, bbox_to_slices, intersect_bbox, shift_bbox, union_bbox
from .prompts import Box, InitialMask, Lasso, Point, Prompt, PromptError, Scribble

if TYPE_CHECKING:
    from .lazy import ImageArray

FLOAT16_MAX = 65504.0
FLOAT16_RESCALE_TARGET = 6550.4


class Channel(enum.IntEnum):
    """Prompt channels, in network order after the image and prev_seg channels."""

    BBOX_POS = 0
    BBOX_NEG = 1
    POINT_POS = 2
    POINT_NEG = 3
    SCRIBBLE_POS = 4
    SCRIBBLE_NEG = 5


#: Channels that get a max filter before area downsampling (thin cues that would vanish).
MAX_FILTERED = (Channel.POINT_POS, Channel.POINT_NEG, Channel.SCRIBBLE_POS, Channel.SCRIBBLE_NEG)


def channel_for(prompt: Prompt) -> Channel:
    """The channel a prompt is written into."""
    pos = prompt.positive
    if isinstance(prompt, (Box, Lasso)):
        return Channel.BBOX_POS if pos else Channel.BBOX_NEG
    if isinstance(prompt, Point):
        return Channel.POINT_POS if pos else Channel.POINT_NEG
    if isinstance(prompt, Scribble):
        return Channel.SCRIBBLE_POS if pos else Channel.SCRIBBLE_NEG
    raise TypeError(f"{type(prompt).__name__} has no prompt channel")


# ----------------------------------------------------------------------------- image


class ImageError(UserError, ValueError):
    """An image the engine cannot use; the message says why and what to do."""


@dataclass(frozen=True)
class Normalization:
    """``(image - mean) / std`` with statistics of channel 0 over the nonzero bbox."""

    mean: float
    std: float

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Normalised float32 copy of ``values`` (never modifies the input)."""
        out = np.empty(np.shape(values), dtype=np.float32)
        self.apply_into(values, out)
        return out

    def apply_into(self, values: np.ndarray, out: np.ndarray) -> None:
        """Write ``values`` normalised into the float32 array ``out`` (same shape; e.g. a view of an input tensor).

        Always the float32 operations cast, subtract, divide. Torch runs them on every intra-op thread
        (numpy on one: 2.5x slower on 2 cores for a zoom-4 crop); an ``out`` torch cannot view goes
        through numpy, with the same values (:mod:`.threaded`).
        """
        from .threaded import as_tensor, copy_into

        values = np.asarray(values)
        mean, std = np.float32(self.mean), np.float32(self.std)
        dst = as_tensor(out) if out.dtype == np.float32 else None
        if dst is None:
            # values cast to float32, minus the mean, in one pass: the same float32 operations as copying first
            np.subtract(values, mean, out=out, dtype=np.float32)
            out /= std
            return
        src = as_tensor(values) if values.dtype == np.float32 else None
        if src is not None:
            import torch

            torch.sub(src, float(mean), out=dst)  # one pass; float(mean) is the float32 value exactly
        else:
            copy_into(out, values)  # the float32 cast (round to nearest, as numpy's)
            dst.sub_(float(mean))
        dst.div_(float(std))


#: What an RGB(A) image is segmented by: its luminance (ITU-R BT.601 weights; alpha is ignored).
RGB_NOTE = "RGB image: segmenting its luminance"


def luminance(rgb: np.ndarray) -> np.ndarray:
    """The float32 luminance of an RGB or RGBA array (colour on the last axis)."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    out: np.ndarray = np.asarray(rgb, dtype=np.float32)[..., :3] @ weights
    return out


def require_finite(image: np.ndarray) -> None:
    """Raise :class:`ImageError` when a float image holds NaN or infinite voxels."""
    if np.dtype(image.dtype).kind in "fc" and not np.all(np.isfinite(image)):
        raise ImageError(
            "The image contains NaN or infinite voxels; replace them (e.g. with the minimum "
            "intensity) before segmenting."
        )


def content_bbox(image: ImageArray) -> BBox:
    """Check a channel-first image is finite and not all zero; the bbox of its nonzero channel sum.

    In-memory arrays are checked at once; lazily read ones (:mod:`.lazy`) a slab at a time.
    """
    from .geometry import nonzero_bbox
    from .lazy import is_lazy, slabs

    parts: Iterable[tuple[int, np.ndarray]] = slabs(image) if is_lazy(image) else [(0, cast(np.ndarray, image))]
    box: BBox | None = None
    for z0, values in parts:
        require_finite(values)
        summed = values.sum(axis=0, dtype=np.float64) if values.shape[0] > 1 else values[0]
        found = nonzero_bbox(summed != 0)
        if found is not None:
            box = union_bbox(box, shift_bbox(found, (z0, 0, 0)))
    if box is None:
        raise ImageError("The image is all zero: there is nothing to segment. Load the real image.")
    return box


def _mean_std(image: ImageArray, box: BBox) -> tuple[float, float]:
    """Mean and unbiased std of channel 0 over ``box`` (float64; slab-wise when lazy)."""
    from .lazy import is_lazy, slabs

    if not is_lazy(image):
        region = np.asarray(image[(0,) + bbox_to_slices(box)], dtype=np.float64)
        return float(region.mean()), float(region.std(ddof=1)) if region.size > 1 else 0.0
    n, mean, m2 = 0, 0.0, 0.0
    for _, values in slabs(image, box):  # Chan et al.'s pairwise merge of (count, mean, M2)
        part = values[0].astype(np.float64)
        k, m = part.size, float(part.mean())
        delta = m - mean
        m2 += float(((part - m) ** 2).sum()) + delta * delta * n * k / (n + k)
        mean += delta * k / (n + k)
        n += k
    return mean, (m2 / (n - 1)) ** 0.5 if n > 1 else 0.0


def compute_normalization(image: ImageArray) -> Normalization:
    """Statistics per spec section 2 for a channel-first ``(C, Z, Y, X)`` image.

    Mean and unbiased (N-1) standard deviation of channel 0 inside the bounding box of voxels
    whose channel sum is nonzero (zeros inside the box count). Accumulated in float64.
    """
    mean, std = _mean_std(image, content_bbox(image))
    if not std > 0:
        raise ImageError(
            f"The image has constant intensity {mean:g} where it is nonzero; a segmentation "
            "network cannot use it. Check that the right layer/file is selected."
        )
    return Normalization(mean, std)


# ----------------------------------------------------------------------------- prompts


def point_ball(radius: int = 4) -> np.ndarray:
    """Float32 ball of ``(2r+1)^3`` voxels valued by distance to its outside, max 1.

    Ball voxels are offsets with ``d^2 <= r^2``; each gets the Euclidean distance to the
    nearest offset outside the ball, divided by the largest such distance (``sqrt(17)`` at
    the centre for ``r = 4``). Voxels outside the ball are 0.
    """
    r = int(radius)
    g = np.arange(-r - 1, r + 2)
    zz, yy, xx = np.meshgrid(g, g, g, indexing="ij")
    d2 = zz**2 + yy**2 + xx**2
    inside = d2 <= r * r
    outside = np.argwhere(~inside)
    ball = np.zeros(inside.shape, dtype=np.float64)
    for idx in np.argwhere(inside):
        ball[tuple(idx)] = np.sqrt(((outside - idx) ** 2).sum(axis=1).min())
    ball /= ball.max()
    return ball[1:-1, 1:-1, 1:-1].astype(np.float32)


@dataclass(frozen=True)
class Raster:
    """One stored prompt: float16 ``values`` (array or scalar fill) over ``bbox`` in a channel."""

    channel: Channel
    bbox: BBox
    values: np.ndarray  # float16, shaped like bbox, or 0-d for a filled box

    def scaled(self, factor: float) -> Raster:
        """Copy with values multiplied by ``factor`` (float16 rescale)."""
        vals = (self.values.astype(np.float32) * np.float32(factor)).astype(np.float16)
        return Raster(self.channel, self.bbox, vals)


@dataclass(frozen=True)
class PromptState:
    """Immutable snapshot of a :class:`PromptStore` (cheap: shares the rasters)."""

    rasters: tuple[Raster, ...] = ()
    intensity: float = 1.0


class PromptStore:
    """The prompt channels of one object, with decay of older prompts (spec section 4).

    Parameters
    ----------
    shape
        Spatial shape of the image.
    decay
        ``interaction_decay`` of the model: before each new prompt ``intensity /= decay``.
    point_radius
        Radius of the point ball in voxels.
    """

    def __init__(self, shape: Sequence[int], decay: float, point_radius: int = 4):
        if not 0 < decay <= 1:
            raise ValueError(f"interaction_decay must be in (0, 1], got {decay}")
        self.shape = tuple(int(s) for s in shape)
        self.decay = float(decay)
        self.ball = point_ball(point_radius)
        self.state = PromptState()

    @property
    def intensity(self) -> float:
        """Current intensity (the value the newest prompt was written with)."""
        return self.state.intensity

    def clear(self) -> None:
        """Forget every prompt and reset the intensity to 1."""
        self.state = PromptState()

    def add(self, prompt: Prompt) -> None:
        """Bump the intensity and store ``prompt`` (already validated) in its channel."""
        if isinstance(prompt, InitialMask):
            raise PromptError("An initial mask replaces the object; it is not a prompt channel.")
        rasters = self.state.rasters
        intensity = self.state.intensity / self.decay
        if intensity > FLOAT16_MAX:
            factor = FLOAT16_RESCALE_TARGET / intensity
            rasters = tuple(r.scaled(factor) for r in rasters)
            intensity = FLOAT16_RESCALE_TARGET
        raster = self._rasterize(prompt, intensity)
        self.state = PromptState(rasters + (raster,), intensity)

    def _rasterize(self, prompt: Prompt, intensity: float) -> Raster:
        ch = channel_for(prompt)
        if isinstance(prompt, Point):
            r = self.ball.shape[0] // 2
            box = tuple((c - r, c + r + 1) for c in prompt.coord)
            inside = intersect_bbox(box, tuple((0, n) for n in self.shape))
            local = bbox_to_slices(shift_bbox(inside, [-lo for lo, _ in box]))
            vals = (self.ball[local] * np.float32(intensity)).astype(np.float16)
            return Raster(ch, inside, vals)
        if isinstance(prompt, Box):
            return Raster(ch, prompt.bbox, np.float16(intensity))
        assert prompt.bbox is not None, "validated region prompts have a bbox"
        vals = (prompt.mask.astype(np.float32) * np.float32(intensity)).astype(np.float16)
        return Raster(ch, prompt.bbox, vals)

    def compose(self, channel: Channel, box: BBox) -> np.ndarray | None:
        """Float32 channel values over ``box`` divided by the intensity; ``None`` if all zero.

        ``box`` may extend outside the image (zeros there).
        """
        found = self.compose_region(channel, box)
        if found is None:
            return None
        values, region = found
        out = np.zeros(bbox_shape(box), dtype=np.float32)
        out[bbox_to_slices(region)] = values
        return out

    def compose_region(self, channel: Channel, box: BBox) -> tuple[np.ndarray, BBox] | None:
        """Like :meth:`compose`, but only over the part of ``box`` the channel's rasters touch.

        Returns ``(values, region)`` with ``region`` in ``box``'s frame (zero outside it), or ``None``.
        """
        parts = [(r, intersect_bbox(r.bbox, box)) for r in self.state.rasters if r.channel == channel]
        parts = [(r, common) for r, common in parts if not bbox_is_empty(common)]
        if not parts:
            return None
        region = union_bbox(*(common for _, common in parts))
        assert region is not None  # parts are not empty
        out = np.zeros(bbox_shape(region), dtype=np.float16)
        for raster, common in parts:
            dst = bbox_to_slices(shift_bbox(common, [-lo for lo, _ in region]))
            if raster.values.ndim == 0:
                src = raster.values
            else:
                src = raster.values[bbox_to_slices(shift_bbox(common, [-lo for lo, _ in raster.bbox]))]
            np.maximum(out[dst], src, out=out[dst])
        values = out.astype(np.float32) / np.float32(self.state.intensity)
        return values, shift_bbox(region, [-lo for lo, _ in box])

    def nbytes(self) -> int:
        """Bytes held by the stored rasters."""
        return sum(r.values.nbytes for r in self.state.rasters)
