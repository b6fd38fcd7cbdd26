"""Watershed primitives of the weight-free engine: flooding unmarked voxels, cleaning, coarse-to-fine.

Pure functions on numpy arrays in one region's frame; :mod:`.seeded` builds the engines on them.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ..geometry import bbox_shape, bbox_to_slices, clip_bbox, nonzero_bbox, relative_bbox
from . import filters, scratch


def flood_unmarked(img: np.ndarray, markers: np.ndarray, crop: bool = True) -> None:
    """Give every unmarked voxel (0) of ``markers`` the label of the basin that reaches it first, in place.

    Only unmarked voxels can change, so the watershed runs on their bounding box and only visits them
    and the markers touching them; the gradient is computed on that box plus the Gaussian's reach,
    which gives the same values as on the whole region. Its temporaries are scratch arrays.
    """
    free = np.equal(markers, 0, out=scratch.empty("flood.free", markers.shape, bool))
    box = nonzero_bbox(free) if crop else tuple((0, n) for n in img.shape)
    if box is None:
        return
    box = clip_bbox(tuple((lo - 1, hi + 1) for lo, hi in box), img.shape)
    reach = clip_bbox(tuple((lo - 4, hi + 4) for lo, hi in box), img.shape)  # sigma 1, truncate 4
    near = img[bbox_to_slices(reach)]
    gradient = filters.gaussian_gradient_magnitude(
        near, 1.0, out=scratch.empty("flood.gradient", near.shape, near.dtype)
    )[bbox_to_slices(relative_bbox(box, reach))]
    sub = bbox_to_slices(box)
    free_sub = free[sub]
    if crop:
        visit = scratch.empty("flood.visit", free_sub.shape, bool)
        ndimage.binary_dilation(free_sub, output=visit)
    else:
        visit = np.ones(free_sub.shape, bool)
    flooded = _flood(gradient, markers[sub], visit)
    markers[sub][free_sub] = flooded[free_sub]


def _flood(image: np.ndarray, markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``skimage.segmentation.watershed(image, markers, mask=mask)`` (6-connected; 0 outside ``mask``).

    The result may be a scratch array (valid until the next call on this thread).

    scikit-image converts, pads and crops each input in separate copies, which on a band of a large
    region costs more than the flooding itself. Here each padded input is built once, in a scratch
    array, and scikit-image's flooding core is called on them. That core is private: it is used only
    when it exists and, on a small case checked once per process, gives exactly the public
    function's result (:func:`_core_agrees`); otherwise the public function runs (slower).
    """
    if not _core_agrees():
        return _public_watershed(image, markers, mask)
    return _core_flood(image, markers, mask)


def _core_flood(image: np.ndarray, markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from skimage.morphology._util import _offsets_to_raveled_neighbors, _validate_connectivity
    from skimage.segmentation._watershed_cy import watershed_raveled

    padded = tuple(n + 2 for n in image.shape)
    inner = (slice(1, -1),) * image.ndim
    flat_image = _bordered("watershed.image", padded, np.float64)  # the zero border keeps the flood inside
    flat_image[inner] = image
    flat_mask = _bordered("watershed.mask", padded, np.int8)
    flat_mask[inner] = mask
    output = _bordered("watershed.output", padded, np.int32)
    np.multiply(markers, mask, out=output[inner], casting="unsafe")
    structure, offset = _validate_connectivity(image.ndim, 1, None)
    neighbours = _offsets_to_raveled_neighbors(padded, structure, center=offset)
    strides = np.array(flat_image.strides, dtype=np.intp) // flat_image.itemsize
    watershed_raveled(
        flat_image.ravel(), np.flatnonzero(output), neighbours, flat_mask.ravel(), strides, 0.0, output.ravel(), False
    )
    result: np.ndarray = output[inner]
    return result


@functools.cache
def _core_agrees() -> bool:
    """Whether scikit-image's private flooding core, called as :func:`_core_flood` does, matches its public function."""
    rng = np.random.default_rng(0)
    image = rng.random((6, 7, 8)).astype(np.float32)
    image[rng.random(image.shape) < 0.3] = 0.5  # ties
    markers = np.where(rng.random(image.shape) < 0.1, rng.integers(1, 4, image.shape), 0).astype(np.int32)
    mask = rng.random(image.shape) < 0.8
    try:
        got = np.array(_core_flood(image, markers, mask))
    except (ImportError, AttributeError, TypeError, ValueError):
        return False
    return bool(np.array_equal(got, _public_watershed(image, markers, mask)))


def _bordered(name: str, shape: tuple[int, ...], dtype: npt.DTypeLike) -> np.ndarray:
    """A scratch array whose outermost layer on every face is zero (the inside is left to the caller)."""
    out = scratch.empty(name, shape, dtype)
    for axis in range(out.ndim):
        out[(slice(None),) * axis + (0,)] = 0
        out[(slice(None),) * axis + (-1,)] = 0
    return out


def _public_watershed(image: np.ndarray, markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from skimage.segmentation import watershed as skimage_watershed

    result: np.ndarray = skimage_watershed(image, markers, mask=mask)
    return result


def clean(seg: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """Keep the components that hold a positive seed and fill their holes (on the mask's bounding box)."""
    box = nonzero_bbox(seg)
    out = np.zeros(seg.shape, np.uint8)
    if box is None:
        return out
    sub = bbox_to_slices(box)
    part = keep_seeded(seg[sub], fg[sub])
    out[sub] = fill_holes(part)
    return out


def fill_holes(seg: np.ndarray) -> np.ndarray:
    """``ndimage.binary_fill_holes`` by labelling the background once (same result, no iterations)."""
    labels = scratch.empty("labels", seg.shape, np.int32)  # keep_seeded's are dead by now
    n = ndimage.label(~seg, output=labels)
    if n == 0:
        return seg
    outside = np.zeros(n + 1, bool)
    for axis in range(seg.ndim):
        for idx in (0, -1):
            outside[np.take(labels, idx, axis=axis)] = True
    outside[0] = True
    filled: np.ndarray = seg | ~outside[labels]
    return filled


def coarse_factors(shape: tuple[int, ...], max_voxels: int) -> tuple[int, ...]:
    """Per-axis block sizes so that the coarse region has at most ``max_voxels`` (1 = full resolution)."""
    n = int(np.prod(shape))
    if n <= max_voxels:
        return (1,) * len(shape)
    f = int(np.ceil((n / max_voxels) ** (1 / 3)))
    return tuple(max(1, min(f, s // 8)) for s in shape)  # thin axes stay (nearly) at full resolution


def block_sum(a: np.ndarray, factors: tuple[int, ...], dtype: npt.DTypeLike) -> np.ndarray:
    """Sums over blocks of ``factors`` voxels (edge-padded to whole blocks), one axis at a time (fast).

    A last partial block is completed by adding its last slice again, in the order an edge-padded
    copy would be summed (the same values), without copying the whole array to pad it. The sums
    between axes are scratch arrays; the result is a new array.
    """
    axes = [axis for axis, f in enumerate(factors) if f > 1]
    if not axes:
        return a.astype(dtype, copy=False)

    def part(src: np.ndarray, axis: int, lo: int, hi: int) -> np.ndarray:
        return src[(slice(None),) * axis + (slice(lo, hi),)]

    for k, axis in enumerate(axes):
        f, n = factors[axis], a.shape[axis]
        whole, m = n - n % f, -(-n // f)
        shape = a.shape[:axis] + (m,) + a.shape[axis + 1 :]
        out = np.empty(shape, dtype) if k == len(axes) - 1 else scratch.empty(f"block_sum.{k % 2}", shape, dtype)
        head = part(a, axis, 0, whole)
        head.reshape(head.shape[:axis] + (whole // f, f) + head.shape[axis + 1 :]).sum(
            axis=axis + 1, dtype=dtype, out=part(out, axis, 0, whole // f)
        )
        if whole < n:
            tail = part(out, axis, whole // f, m)
            part(a, axis, whole, n).sum(axis=axis, keepdims=True, dtype=dtype, out=tail)
            last = part(a, axis, n - 1, n).astype(dtype)
            for _ in range(f - (n - whole)):
                tail += last
        a = out
    return a


def block_mean(img: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    mean: np.ndarray = block_sum(img, factors, np.float32) / np.float32(np.prod(factors))
    return mean


def block_count(mask: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """Number of true voxels per block; only the blocks around the true voxels are summed (seeds are sparse)."""
    coarse_shape = tuple(-(-s // f) for s, f in zip(mask.shape, factors))
    dtype = np.uint8 if int(np.prod(factors)) < 256 else np.int32  # a block's count fits: a quarter of the memory
    out = np.zeros(coarse_shape, dtype)
    box = nonzero_bbox(mask)
    if box is None:
        return out
    cbox = tuple((lo // f, -(-hi // f)) for (lo, hi), f in zip(box, factors))
    part = mask[tuple(slice(lo * f, hi * f) for (lo, hi), f in zip(cbox, factors))]
    counts = block_sum(part, factors, dtype)
    out[bbox_to_slices(cbox)] = counts[tuple(slice(0, hi - lo) for lo, hi in cbox)]
    return out


def block_any(mask: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    return block_count(mask, factors) > 0


def block_majority(mask: np.ndarray, other: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """Blocks holding ``mask`` voxels and no more ``other`` voxels than ``mask`` voxels."""
    a = block_count(mask, factors)
    return (a > 0) & (a >= block_count(other, factors))


def upsample(mask: np.ndarray, factors: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    for axis, f in enumerate(factors):
        if f > 1:
            mask = np.repeat(mask, f, axis=axis)
    return mask[tuple(slice(0, s) for s in shape)]


def refine_band(
    img: np.ndarray, coarse: np.ndarray, factors: tuple[int, ...], fg: np.ndarray, bg: np.ndarray, smoothing: float
) -> np.ndarray:
    """Full-resolution watershed in the band one coarse voxel either side of the coarse boundary.

    Works on the bounding box of the dilated coarse object only; everything outside it is background.
    """
    out = np.zeros(img.shape, np.uint8)
    outer_c = ndimage.binary_dilation(coarse.astype(bool))
    cbox = nonzero_bbox(outer_c)
    if cbox is None:
        return out
    box = clip_bbox(tuple((lo * f, hi * f) for (lo, hi), f in zip(cbox, factors)), img.shape)
    csub = bbox_to_slices(cbox)
    inner = upsample(ndimage.binary_erosion(coarse.astype(bool), border_value=1)[csub], factors, bbox_shape(box))
    outer = upsample(outer_c[csub], factors, bbox_shape(box))
    sub = bbox_to_slices(box)
    # the gradient reads the smoothed image up to 5 voxels beyond the band, the smoothing 4 more
    reach = clip_bbox(tuple((lo - 9, hi + 9) for lo, hi in box), img.shape)
    local = img[bbox_to_slices(reach)]
    if smoothing:
        local = filters.gaussian_filter(local, smoothing, out=scratch.empty("band.smoothed", local.shape, local.dtype))
    inside = bbox_to_slices(relative_bbox(box, reach))
    work = scratch.full("band.labels", local.shape, np.uint8, 1)  # the halo is background, as outside the box
    markers = work[inside]  # a view: 2 inside, 0 in the band, 1 beyond; then the user's seeds
    markers[outer] = 0
    markers[inner] = 2
    markers[bg[sub]] = 1
    markers[fg[sub]] = 2
    flood_unmarked(local, work)
    out[sub] = clean(np.equal(work[inside], 2, out=scratch.empty("band.object", bbox_shape(box), bool)), fg[sub])
    return out


def keep_seeded(seg: np.ndarray, fg: np.ndarray) -> np.ndarray:
    labels = scratch.empty("labels", seg.shape, np.int32)
    n = ndimage.label(seg, output=labels)
    if n <= 1:
        return seg
    keep = np.unique(labels[fg & seg])
    keep = keep[keep > 0]
    kept: np.ndarray = np.isin(labels, keep)
    return kept
