"""Watershed primitives of the weight-free engine: flooding unmarked voxels, cleaning, coarse-to-fine.

Pure functions on numpy arrays in one region's frame; :mod:`.seeded` builds the engines on them.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ..geometry import along, bbox_shape, bbox_to_slices, clip_bbox, nonzero_bbox, relative_bbox
from ..morphology import dilate, erode
from ..threaded import run_parts
from . import filters, scratch

#: A flood visiting at least this many voxels runs as two halves at once (:func:`_split_flood`).
SPLIT_VISITED = 200_000
#: How far (voxels) each half floods beyond the cut between them.
SPLIT_OVERLAP = 32


def flood_unmarked(img: np.ndarray, markers: np.ndarray, crop: bool = True, split: bool = False) -> None:
    """Give every unmarked voxel (0) of ``markers`` the label of the basin that reaches it first, in place.

    Only unmarked voxels can change, so the watershed runs on their bounding box and only visits them
    and the markers touching them; the gradient is computed on that box plus the Gaussian's reach,
    which gives the same values as on the whole region. Its temporaries are scratch arrays.
    ``split``: a large flood may run as two halves at once (:func:`_split_flood`; for thin bands,
    where markers lie a few voxels either side of every unmarked voxel).
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
        visit = dilate(free_sub, out=scratch.empty("flood.visit", free_sub.shape, bool))
    else:
        visit = np.ones(free_sub.shape, bool)
    flooded = _flood(gradient, markers[sub], visit, split)
    markers[sub][free_sub] = flooded[free_sub]


def _flood(image: np.ndarray, markers: np.ndarray, mask: np.ndarray, split: bool = False) -> np.ndarray:
    """``skimage.segmentation.watershed(image, markers, mask=mask)`` (6-connected; 0 outside ``mask``).

    The result may be a scratch array (valid until the next call on this thread).

    scikit-image converts, pads and crops each input in separate copies, which on a band of a large
    region costs more than the flooding itself. Here each padded input is built once, in a scratch
    array, and scikit-image's flooding core is called on them. That core is private: it is used only
    when it exists and, on a small case checked once per process, gives exactly the public
    function's result (:func:`_core_agrees`); otherwise the public function runs (slower). With
    ``split``, a flood of at least :data:`SPLIT_VISITED` voxels runs as two halves (:func:`_split_flood`).
    """
    if not _core_agrees():
        return _public_watershed(image, markers, mask)
    if split and image.ndim > 1:
        return _split_flood(image, markers, mask)
    return _whole_flood(image, markers, mask)


def _whole_flood(image: np.ndarray, markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """:func:`_core_flood` in one piece, on this thread's scratch buffers."""
    return _core_flood(image, markers, mask, _buffers(image.shape, "watershed"))


def _split_flood(image: np.ndarray, markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """:func:`_core_flood` as two halves, flooded at once on two threads (one after the other on one),
    when it visits at least :data:`SPLIT_VISITED` voxels (else in one piece).

    The cut crosses the longest axis where it halves the visited voxels; each half floods
    :data:`SPLIT_OVERLAP` voxels beyond the cut and keeps its own side. scikit-image's core lets go
    of the GIL, so on two cores a large band floods in about half the time. A half is wrong near
    its own far end, where it lacks its neighbours; if the two disagree anywhere within half the
    overlap of the cut, a flood path crossed it and the whole is flooded in one piece instead.
    Forced onto every flood of the shared-data evaluation, the halves that passed this check
    always equalled one whole flood. The halves depend on the inputs alone, never on the number
    of threads: the result is the same on every machine.
    """
    axis = int(np.argmax(image.shape))
    n = image.shape[axis]
    per_index = np.count_nonzero(mask, axis=tuple(a for a in range(image.ndim) if a != axis))
    if per_index.sum() < SPLIT_VISITED:  # too small to gain from two threads
        return _whole_flood(image, markers, mask)
    cut = int(np.clip(np.searchsorted(np.cumsum(per_index), per_index.sum() / 2), 1, n - 1))
    pieces = [((0, min(n, cut + SPLIT_OVERLAP)), (0, cut)), ((max(0, cut - SPLIT_OVERLAP), n), (cut, n))]

    def span(lo: int, hi: int) -> tuple[slice | int, ...]:
        return along(image.ndim, axis, slice(lo, hi))

    # the halves' buffers are taken here: scratch pools are per thread
    shapes = [tuple(hi - lo if a == axis else s for a, s in enumerate(image.shape)) for (lo, hi), _ in pieces]
    buffers = [_buffers(shape, f"watershed.half{i}") for i, shape in enumerate(shapes)]
    halves: list[np.ndarray] = [np.empty(0), np.empty(0)]

    def flood_half(i: int) -> None:
        sl = span(*pieces[i][0])
        halves[i] = _core_flood(image[sl], markers[sl], mask[sl], buffers[i])

    run_parts(flood_half, [0, 1])
    # each half is wrong near its own far end, where it lacks its neighbours; that must not reach the cut
    lo, hi = max(0, cut - SPLIT_OVERLAP // 2), min(n, cut + SPLIT_OVERLAP // 2)
    b_lo = pieces[1][0][0]
    if not np.array_equal(halves[0][span(lo, hi)], halves[1][span(lo - b_lo, hi - b_lo)]):
        return _whole_flood(image, markers, mask)  # it did: flood as a whole
    out = scratch.empty("watershed.split", image.shape, np.int32)
    for half, ((lo, _), (keep_lo, keep_hi)) in zip(halves, pieces):
        out[span(keep_lo, keep_hi)] = half[span(keep_lo - lo, keep_hi - lo)]
    return out


def _buffers(shape: tuple[int, ...], name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scratch arrays for one :func:`_core_flood` of ``shape``: padded image, mask and labels."""
    padded = tuple(n + 2 for n in shape)
    return (
        _bordered(f"{name}.image", padded, np.float64),  # the zero border keeps the flood inside
        _bordered(f"{name}.mask", padded, np.int8),
        _bordered(f"{name}.output", padded, np.int32),
    )


def _core_flood(
    image: np.ndarray, markers: np.ndarray, mask: np.ndarray, buffers: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> np.ndarray:
    """scikit-image's flooding core on ``buffers`` (:func:`_buffers` of ``image.shape``); returns a view of them."""
    from skimage.morphology._util import _offsets_to_raveled_neighbors, _validate_connectivity
    from skimage.segmentation._watershed_cy import watershed_raveled

    flat_image, flat_mask, output = buffers
    inner = (slice(1, -1),) * image.ndim
    flat_image[inner] = image
    flat_mask[inner] = mask
    np.multiply(markers, mask, out=output[inner], casting="unsafe")
    structure, offset = _validate_connectivity(image.ndim, 1, None)
    neighbours = _offsets_to_raveled_neighbors(output.shape, structure, center=offset)
    strides = np.array(flat_image.strides, dtype=np.intp) // flat_image.itemsize
    watershed_raveled(
        flat_image.ravel(), np.flatnonzero(output), neighbours, flat_mask.ravel(), strides, 0.0, output.ravel(), False
    )
    result: np.ndarray = output[inner]
    return result


def prepare() -> None:
    """Import scikit-image's flooding and check its core once per process (about 0.2 s), before any prompt."""
    _core_agrees()


@functools.cache
def _core_agrees() -> bool:
    """Whether scikit-image's private flooding core, called as :func:`_core_flood` does, matches its public function."""
    rng = np.random.default_rng(0)
    image = rng.random((6, 7, 8)).astype(np.float32)
    image[rng.random(image.shape) < 0.3] = 0.5  # ties
    markers = np.where(rng.random(image.shape) < 0.1, rng.integers(1, 4, image.shape), 0).astype(np.int32)
    mask = rng.random(image.shape) < 0.8
    try:
        got = np.array(_whole_flood(image, markers, mask))
    except (ImportError, AttributeError, TypeError, ValueError):
        return False
    return bool(np.array_equal(got, _public_watershed(image, markers, mask)))


def _bordered(name: str, shape: tuple[int, ...], dtype: npt.DTypeLike) -> np.ndarray:
    """A scratch array whose outermost layer on every face is zero (the inside is left to the caller)."""
    out = scratch.empty(name, shape, dtype)
    for axis in range(out.ndim):
        out[along(out.ndim, axis, 0)] = 0
        out[along(out.ndim, axis, -1)] = 0
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
        return src[along(src.ndim, axis, slice(lo, hi))]

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
    ``img`` may be a view of the source image (see ``SeededWatershedEngine._source_view`` for its dtypes).
    """
    out = np.zeros(img.shape, np.uint8)
    outer_c = dilate(coarse.astype(bool))
    cbox = nonzero_bbox(outer_c)
    if cbox is None:
        return out
    box = clip_bbox(tuple((lo * f, hi * f) for (lo, hi), f in zip(cbox, factors)), img.shape)
    csub = bbox_to_slices(cbox)
    inner = upsample(erode(coarse.astype(bool), border_value=True)[csub], factors, bbox_shape(box))
    outer = upsample(outer_c[csub], factors, bbox_shape(box))
    sub = bbox_to_slices(box)
    # the gradient reads the smoothed image up to 5 voxels beyond the band, the smoothing 4 more
    reach = clip_bbox(tuple((lo - 9, hi + 9) for lo, hi in box), img.shape)
    local = img[bbox_to_slices(reach)]  # ``img`` may be the source's dtype: float32 from here on (sigma 0 copies)
    local = filters.gaussian_filter(local, smoothing, out=scratch.empty("band.smoothed", local.shape, np.float32))
    inside = bbox_to_slices(relative_bbox(box, reach))
    work = scratch.full("band.labels", local.shape, np.uint8, 1)  # the halo is background, as outside the box
    markers = work[inside]  # a view: 2 inside, 0 in the band, 1 beyond; then the user's seeds
    markers[outer] = 0
    markers[inner] = 2
    markers[bg[sub]] = 1
    markers[fg[sub]] = 2
    flood_unmarked(local, work, split=True)
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
