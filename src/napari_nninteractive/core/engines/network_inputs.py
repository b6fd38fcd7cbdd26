"""The network's input tensors (spec 3-4): normalised image crops, prompt channels and the previous mask,
resampled to the patch at a zoom, written into reusable buffers.

:class:`NetworkInputs` is the part of :class:`~.network.NetworkEngine` that builds them; the engine sets
the image, its normalisation and the prompt store (:meth:`~.network.NetworkEngine.set_image`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .. import autozoom as az
from ..encoding import MAX_FILTERED, Channel, Normalization, PromptStore
from ..geometry import (
    BBox,
    bbox_inside,
    bbox_is_empty,
    bbox_shape,
    bbox_to_slices,
    clip_bbox,
    crop_padded,
    nonzero_bbox,
    shift_bbox,
)
from ..lazy import ImageArray
from ..model import N_PROMPT_INPUTS
from ..threaded import copy_into, zero
from . import accel


class WindowBuffer:
    """A reusable input tensor: each use zeroes only what the previous one wrote.

    One interaction's zoom and refinement passes reuse them (a fresh 192^3 input of 8 channels is 226 MB, and
    allocating it page by page for every pass costs more than writing the data it holds): one on the CPU, two
    taking turns on an accelerator (one is built while the other's pass runs); page-locked ones are kept
    across predictions.
    """

    def __init__(self, pinned: bool = False) -> None:
        self.x: torch.Tensor | None = None
        self._dirty: list[tuple[int | slice, ...]] = []
        #: Page-locked host memory (for asynchronous copies to a CUDA device).
        self.pinned = pinned

    def take(
        self, n: int, channels: int, patch: Sequence[int], overwritten: Sequence[tuple[int, int | slice]] = ()
    ) -> torch.Tensor:
        """An all-zero ``(n, channels, *patch)`` float32 tensor (a view of the buffer).

        ``overwritten`` names ``(sample, channels)`` the caller writes whole (the image channels of a window
        inside the image): what an earlier use wrote there under the same key is left for it to overwrite.
        """
        shape = (channels, *patch)
        if self.x is None or self.x.shape[0] < n or tuple(self.x.shape[1:]) != shape:
            self.x, self._dirty = accel.host_zeros((n, *shape), self.pinned), []
        out = self.x.numpy()
        kept = []  # left for the caller to overwrite: still to be zeroed later, should it not (a cancel)
        for where in self._dirty:
            if any(where[:2] == key for key in overwritten):
                kept.append(where)
            else:
                zero(out[where])
        self._dirty = kept
        return self.x[:n]

    def written(self, where: tuple[int | slice, ...]) -> None:
        """Note a region written since :meth:`take`, to be zeroed by the next one."""
        if where not in self._dirty:
            self._dirty.append(where)


class NetworkInputs:
    """Builds the network's inputs from the image, its normalisation and the prompt store set by the engine.

    ``lean_inputs`` (default on) writes only the parts that hold data; off, the plain construction of
    full crops (for tests and benchmarks). The values are the same either way.
    """

    patch_size: tuple[int, ...]
    lean_inputs: bool
    _image: ImageArray | None  # set by the engine
    _norm: Normalization | None
    _store: PromptStore | None

    @property
    def prompt_store(self) -> PromptStore:
        """The stored prompt rasters (for inspection and benchmarks); there are none before :meth:`set_image`."""
        assert self._store is not None, "set_image() first"
        return self._store

    def _image_and_norm(self) -> tuple[ImageArray, Normalization]:
        """The image and its normalisation (set together by :meth:`set_image`)."""
        assert self._image is not None and self._norm is not None, "set_image() first"
        return self._image, self._norm

    def _image_window(self, box: BBox) -> np.ndarray:
        """Normalised float32 ``(C, *box)``; 0 (normalised units) outside the image."""
        image, norm = self._image_and_norm()
        shape = image.shape[1:]
        inside = clip_bbox(box, shape)
        out = np.zeros((image.shape[0],) + bbox_shape(box), dtype=np.float32)
        dst = bbox_to_slices(shift_bbox(inside, [-lo for lo, _ in box]))
        out[(slice(None),) + dst] = norm.apply(image[(slice(None),) + bbox_to_slices(inside)])
        return out

    def network_input(
        self,
        prev_seg: np.ndarray,
        box: BBox,
        zoom: float,
        prev_offset: Sequence[int] | None = None,
        buffer: WindowBuffer | None = None,
    ) -> tuple[torch.Tensor, np.ndarray]:
        """The ``(1, C + 7, *P)`` input for window ``box`` at ``zoom``, and prev_seg for the border test.

        ``prev_seg`` is read through ``box`` shifted by ``-prev_offset`` (for working copies that
        cover only part of the image; parts outside it are 0). When zoomed and ``lean_inputs`` is
        set (the default), each channel is resampled from the part of the crop that holds data
        (the image inside the volume, the nonzero prompts and prev_seg) instead of from full
        S^3 float crops, straight into the input tensor; the values are identical (``lean_inputs =
        False``: the plain path, kept for tests and benchmarks). With a ``buffer`` the input tensor
        (and at zoom 1 the returned prev_seg, a view of it) is the buffer's, valid until its next use.
        """
        P = self.patch_size
        S = bbox_shape(box)
        if not self.lean_inputs:
            return self._network_input_full(prev_seg, box, zoom, prev_offset)
        if tuple(P) == S:
            x = self._windows(prev_seg, [box], prev_offset, buffer)
            return x, x[0, self._image_and_norm()[0].shape[0]].numpy()
        local = box if prev_offset is None else shift_bbox(box, [-o for o in prev_offset])
        source, norm = self._image_and_norm()
        n_img = source.shape[0]
        buffer = buffer or WindowBuffer()
        x = buffer.take(1, n_img + N_PROMPT_INPUTS, P)

        def resample(fill: az.Fill, region: BBox, channel: int, *extra: tuple[str, torch.Tensor], mode: str) -> None:
            written = az.resample_sparse_into(fill, region, S, P, [(mode, x[0, channel]), *extra])
            if written is not None:
                buffer.written((0, channel) + bbox_to_slices(written))

        inside = clip_bbox(box, source.shape[1:])
        in_crop = shift_bbox(inside, [-lo for lo, _ in box])
        for c in range(n_img):  # normalised straight into the part that is resampled

            def normalised(dst: np.ndarray, part: BBox, c: int = c) -> None:
                norm.apply_into(source[(c,) + bbox_to_slices(shift_bbox(part, [lo for lo, _ in box]))], dst)

            resample(normalised, in_crop, c, mode="trilinear")
        prev_values, prev_region = self._prev_region(prev_seg, local)
        prev_small = torch.from_numpy(np.zeros(P, np.float32))  # for the border test; calloc'd, written in part
        resample(az.fill_from(prev_values, prev_region), prev_region, n_img, ("nearest", prev_small), mode="area")
        k = az.max_filter_size(zoom)
        for ch in Channel:
            found = self.prompt_store.compose_region(ch, box)
            if found is None:
                continue  # the buffer's channel is all zero
            values, region = found
            if ch in MAX_FILTERED and k > 1:  # a halo of 2r zeros makes the sub-array's edges exact
                r = k // 2
                grown = clip_bbox(tuple((lo - 2 * r, hi + 2 * r) for lo, hi in region), S)
                padded = np.zeros(bbox_shape(grown), np.float32)
                padded[bbox_to_slices(shift_bbox(region, [-lo for lo, _ in grown]))] = values
                values, region = az.max_filter(padded, k), grown
            resample(az.fill_from(values, region), region, n_img + 1 + int(ch), mode="area")
        return x, prev_small.numpy()

    def window_inputs(
        self,
        prev_seg: np.ndarray,
        boxes: Sequence[BBox],
        prev_offset: Sequence[int] | None = None,
        buffer: WindowBuffer | None = None,
        prev_later: bool = False,
    ) -> torch.Tensor:
        """The ``(n, C + 7, *P)`` inputs of patch-sized windows at zoom 1, written into one preallocated tensor.

        Only the parts that hold data are written (the image inside the volume, the nonzero prev_seg and
        prompts); the values are those of the plain path (``lean_inputs = False``), which builds full crops of
        every channel, stacks and concatenates them. With a ``buffer`` the tensor is the buffer's, reused
        from the previous call (valid until the next one). ``prev_later`` leaves the prev_seg channel to
        :meth:`fill_prev_seg` (with the same arguments), for when ``prev_seg`` still awaits earlier passes.
        """
        if not self.lean_inputs:
            assert not prev_later, "the plain path builds whole inputs"
            return torch.cat([self._network_input_full(prev_seg, box, 1.0, prev_offset)[0] for box in boxes])
        return self._windows(prev_seg, boxes, prev_offset, buffer, prev_later)

    def _windows(
        self,
        prev_seg: np.ndarray,
        boxes: Sequence[BBox],
        prev_offset: Sequence[int] | None,
        buffer: WindowBuffer | None = None,
        prev_later: bool = False,
    ) -> torch.Tensor:
        P = self.patch_size
        source, norm = self._image_and_norm()
        n_img = source.shape[0]
        buffer = buffer or WindowBuffer()
        images = slice(0, n_img)
        locals_ = [box if prev_offset is None else shift_bbox(box, [-o for o in prev_offset]) for box in boxes]
        # Channels a window fills whole need no clearing: the image inside the volume, prev_seg inside the copy.
        whole: list[tuple[int, int | slice]] = [
            (i, images) for i, box in enumerate(boxes) if bbox_inside(box, source.shape[1:])
        ]
        whole += [(i, n_img) for i, local in enumerate(locals_) if bbox_inside(local, prev_seg.shape)]
        x = buffer.take(len(boxes), n_img + N_PROMPT_INPUTS, P, overwritten=whole)
        out = x.numpy()
        for i, box in enumerate(boxes):
            assert bbox_shape(box) == tuple(P), "zoom-1 windows are patch-sized"
            inside = clip_bbox(box, source.shape[1:])
            if not bbox_is_empty(inside):
                where = (i, images) + bbox_to_slices(shift_bbox(inside, [-lo for lo, _ in box]))
                norm.apply_into(source[(slice(None),) + bbox_to_slices(inside)], out[where])
                buffer.written(where)
            for ch in Channel:
                found = self.prompt_store.compose_region(ch, box)
                if found is not None:
                    where = (i, n_img + 1 + int(ch)) + bbox_to_slices(found[1])
                    copy_into(out[where], found[0])
                    buffer.written(where)
        if not prev_later:
            self.fill_prev_seg(x, prev_seg, boxes, prev_offset, buffer)
        return x

    def fill_prev_seg(
        self,
        x: torch.Tensor,
        prev_seg: np.ndarray,
        boxes: Sequence[BBox],
        prev_offset: Sequence[int] | None,
        buffer: WindowBuffer,
    ) -> None:
        """Write the prev_seg channel of :meth:`window_inputs` ``x`` (made with ``prev_later`` and ``buffer``)."""
        out, n_img = x.numpy(), self._image_and_norm()[0].shape[0]
        for i, box in enumerate(boxes):
            local = box if prev_offset is None else shift_bbox(box, [-o for o in prev_offset])
            if bbox_inside(local, prev_seg.shape):  # copied whole: cheaper than finding its nonzero part first
                copy_into(out[i, n_img], prev_seg[bbox_to_slices(local)])
                buffer.written((i, n_img))
            else:
                values, region = self._prev_region(prev_seg, local)
                if values.size:
                    where = (i, n_img) + bbox_to_slices(region)
                    copy_into(out[where], values)
                    buffer.written(where)

    @staticmethod
    def _prev_region(prev_seg: np.ndarray, local: BBox) -> tuple[np.ndarray, BBox]:
        """prev_seg's nonzero part inside window ``local`` (a view) and its box in the window's frame."""
        inside = clip_bbox(local, prev_seg.shape)
        part = prev_seg[bbox_to_slices(inside)]
        nz = None if bbox_is_empty(inside) else nonzero_bbox(part)
        if nz is None:
            return np.zeros((0, 0, 0), np.float32), ((0, 0),) * 3
        values = part[bbox_to_slices(nz)]  # a view: converted to float32 where it is written
        return values, shift_bbox(nz, [lo - wlo for (lo, _), (wlo, _) in zip(inside, local)])

    def _network_input_full(
        self, prev_seg: np.ndarray, box: BBox, zoom: float, prev_offset: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, np.ndarray]:
        """The plain construction: full S^3 crops of every channel, then resampling."""
        P = self.patch_size
        local = box if prev_offset is None else shift_bbox(box, [-o for o in prev_offset])
        prev = crop_padded(prev_seg, local).astype(np.float32)
        channels: list[torch.Tensor] = []
        image = self._image_window(box)
        k = az.max_filter_size(zoom)
        resample = bbox_shape(box) != tuple(P)
        for c in range(image.shape[0]):
            channels.append(az.resample_trilinear(image[c], P) if resample else torch.from_numpy(image[c]))
        del image
        channels.append(az.resample_area(prev, P) if resample else torch.from_numpy(prev))
        prev_small = az.resample_nearest(prev, P).numpy() if resample else prev
        for ch in Channel:
            values = self.prompt_store.compose(ch, box)
            if values is None:
                channels.append(torch.zeros(P, dtype=torch.float32))
                continue
            if resample:
                t = az.max_filter(values, k) if ch in MAX_FILTERED else values
                channels.append(az.resample_area(t, P))
            else:
                channels.append(torch.from_numpy(values))
        return torch.stack(channels)[None], prev_small


__all__ = ["NetworkInputs", "WindowBuffer"]
