"""One protocol session on the server: a core :class:`~..core.session.Session`, its target buffer and the replies.

:class:`ServerSession` maps each endpoint onto the core session (whose prompts, undo/redo and
prediction it uses unchanged) and answers every prediction endpoint with a :class:`Prediction`:
the tight box of the voxels that actually changed and the target buffer's content there. Its
methods are called under the hosting lock, one at a time; engine runs go to the device thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import jsonio
from ..core.api import Change
from ..core.engines.base import Engine
from ..core.errors import UserError
from ..core.geometry import BBox, bbox_shape, bbox_to_slices, nonzero_bbox, shift_bbox
from ..core.prompts import Prompt, PromptKind
from ..core.remote.protocol import (
    ADD_PATHS,
    FORWARD_PASSES,
    KIND_FLAGS,
    ProtocolError,
    bbox_prompt,
    box_json,
    initial_seg_prompt,
    parse_meta,
    point_prompt,
    region_prompt,
    run_flags,
)
from ..core.remote.wire import decode, encode
from ..core.session import Session
from .device import DeviceQueue
from .engines import EngineFacts, set_autozoom
from .requests import target_buffer_request

#: Bytes per voxel a mask upload may use at most (the widest dtype on the wire).
_MASK_ITEM_BYTES = 8


@dataclass(frozen=True)
class Prediction:
    """A prediction response: ``X-Meta`` and the NNIA body of the target buffer inside ``bbox``."""

    ran: bool
    bbox: BBox | None = None
    body: bytes = b""
    dtype: str | None = None
    #: Forward passes (or solver runs) it took: an extension field, sent when there were any.
    passes: int = 0

    def meta(self) -> dict[str, Any]:
        extra = {FORWARD_PASSES: self.passes} if self.passes else {}
        if self.bbox is None:
            return {"ran_prediction": self.ran, "bbox": None} | extra
        shape = list(bbox_shape(self.bbox))
        return {"ran_prediction": self.ran, "bbox": box_json(self.bbox), "dtype": self.dtype, "shape": shape} | extra


def changed_box(change: Change | None) -> BBox | None:
    """The tight box of the voxels whose value changed (``None`` when none did)."""
    if change is None or change.bbox is None:
        return None
    if change.flipped is None:
        return change.bbox
    tight = nonzero_bbox(change.flipped)
    return None if tight is None else shift_bbox(tight, [lo for lo, _ in change.bbox])


class ServerSession:
    """The state of one lease: image, target buffer, prompts, undo/redo, AutoZoom switch."""

    def __init__(
        self,
        engine: Engine,
        facts: EngineFacts,
        device: DeviceQueue,
        *,
        undo: bool = True,
        autozoom: bool = True,
        max_buffer_bytes: int,
        max_image_bytes: int,
    ):
        self.engine = engine
        self.facts = facts
        self._device = device
        self._undo_limit = None if undo else 0
        self.max_buffer_bytes = max_buffer_bytes
        self.max_image_bytes = max_image_bytes
        self.core = Session(engine, undo_limit=self._undo_limit)
        self.image_shape: tuple[int, ...] | None = None
        self.buffer: np.ndarray | None = None
        self._image_error: str | None = None
        self.set_autozoom(autozoom)

    # ------------------------------------------------------------------ state

    def wipe(self) -> None:
        """Forget the image, the target buffer, the prompts and the undo history."""
        self.core = Session(self.engine, undo_limit=self._undo_limit)
        self.image_shape, self.buffer, self._image_error = None, None, None

    def require_image(self) -> tuple[int, ...]:
        """The image's spatial shape ``[X, Y, Z]``; 400 when there is no usable image."""
        if self.image_shape is None:
            if self._image_error:
                raise ProtocolError(
                    f"no image: the last set_image failed ({self._image_error}); call set_image with a usable image."
                )
            raise ProtocolError("no image; call set_image first.")
        return self.image_shape

    def require_ready(self) -> tuple[int, ...]:
        """The spatial shape, once there is an image and a target buffer."""
        shape = self.require_image()
        if self.buffer is None:
            raise ProtocolError(
                f"no target buffer; call set_target_buffer with the image's shape {list(shape)} after set_image."
            )
        return shape

    def set_image(self, body: bytes, meta: str | None, decoded: Callable[[], None] = lambda: None) -> dict[str, Any]:
        """Wipe everything, then take the 4-D ``[C, X, Y, Z]`` image in ``body`` (preprocessed now)."""
        self.wipe()
        try:
            parse_meta(meta)  # image_properties: accepted and ignored
            image = decode(body, max_bytes=self.max_image_bytes)
            decoded()
            if image.ndim != 4:
                raise ProtocolError(
                    f"set_image: the image has shape {list(image.shape)}; send a 4-D [C, X, Y, Z] array."
                )
            self.core.set_image(image)
        except UserError as exc:
            self._image_error = str(exc)
            raise
        self.image_shape = tuple(image.shape[1:])
        return {"original_image_shape": list(image.shape)}

    def set_target_buffer(self, body: dict[str, Any]) -> None:
        """Install a new all-zero buffer on the image grid (the object's mask is cleared, its prompts kept)."""
        shape, dtype = target_buffer_request(body, self.max_buffer_bytes)
        image = self.require_image()
        if shape != image:
            raise ProtocolError(
                f"set_target_buffer: shape {list(shape)} differs from the image's spatial shape {list(image)}; "
                "the target buffer must cover the image grid [X, Y, Z] exactly."
            )
        had_object = bool(np.any(self.core.mask))
        self.buffer = np.zeros(shape, dtype=dtype)
        self.core.set_output_buffer(self.buffer)
        if had_object:  # the new buffer is all zero: so is the object now, its prompts stay
            self.core.restore_object(
                np.zeros(shape, dtype=np.uint8), self.core.prompt_history, self.core.prediction_rounds
            )

    def set_autozoom(self, enabled: bool) -> None:
        self.autozoom = bool(enabled)
        set_autozoom(self.engine, self.autozoom)

    def set_do_autozoom(self, body: dict[str, Any]) -> None:
        self.set_autozoom(jsonio.get(body, "do_autozoom", bool, "set_do_autozoom", ProtocolError))

    def reset(self) -> None:
        """Clear the object's mask and prompts (undoable here)."""
        self.require_image()
        self.core.reset_object()

    # ------------------------------------------------------------------ prediction endpoints

    def undo(self) -> Prediction:
        done = self.core.can_undo
        return self._reply(done, self.core.undo() if done else None)

    def redo(self) -> Prediction:
        done = self.core.can_redo
        return self._reply(done, self.core.redo() if done else None)

    def predict(self, body: dict[str, Any]) -> Prediction:
        jsonio.get(body, "force_full_refine", bool, "predict", ProtocolError, False)  # our engines decide
        self.require_ready()
        queued = self.core.state().pending > 0
        return self._reply(queued, self._device.run(self.core.predict) if queued else None)

    def add_point(self, body: dict[str, Any]) -> Prediction:
        self.require_ready()
        run, override = run_flags(body, "add_point_interaction")
        return self._add([point_prompt(body)], run, override)

    def add_bbox(self, body: dict[str, Any]) -> Prediction:
        shape = self.require_ready()
        run, override = run_flags(body, "add_bbox_interaction")
        box = bbox_prompt(body)
        self._check_kind(PromptKind.BBOX, override)
        if not self.facts.supports_3d_box:
            valid = box.validated(shape, allow_3d_box=True)
            if all(hi - lo > 1 for lo, hi in valid.bbox):
                raise ProtocolError(
                    f"add_bbox_interaction: {box_json(valid.bbox)} is a 3-D box, but this server's model takes only "
                    f"2-D boxes ('bbox3d' is false{self._override_note(override)}); give one axis extent 1."
                )
        return self._add([box], run, override)

    def add_region(
        self, kind: PromptKind, body: bytes, meta_text: str | None, decoded: Callable[[], None]
    ) -> Prediction:
        """A scribble or lasso mask; an empty mask adds nothing (with ``run_prediction`` queued prompts run)."""
        meta = parse_meta(meta_text)
        shape = self.require_ready()
        mask = decode(body, max_bytes=int(np.prod(shape)) * _MASK_ITEM_BYTES)
        decoded()
        run, override = run_flags(meta, ADD_PATHS[kind].lstrip("/"))
        prompt = region_prompt(kind, meta, mask, shape)
        return self._add([prompt] if prompt.mask.any() else [], run, override, kind)

    def add_initial_seg(self, body: bytes, meta_text: str | None, decoded: Callable[[], None]) -> Prediction:
        """Replace the object by a segmentation (refined when ``run_prediction``); empty: the object is cleared."""
        meta = parse_meta(meta_text)
        shape = self.require_ready()
        seg = decode(body, max_bytes=int(np.prod(shape)) * _MASK_ITEM_BYTES)
        decoded()
        _, override = run_flags(meta, "add_initial_seg_interaction", run_default=False)
        prompt, run = initial_seg_prompt(meta, seg, shape)
        self._check_kind(PromptKind.MASK, override)
        if prompt is None:
            change = self.core.reset_object()
        elif run:
            change = self._device.run(lambda: self.core.add_prompts([prompt], run=True))
        else:  # no network pass: the mask is written as it is
            change = self.core.add_prompts([prompt], run=True)
            self._keep_values(seg)
        return self._reply(True, change) if run else Prediction(False)

    def _keep_values(self, seg: np.ndarray) -> None:
        """Hold the segmentation's own values (cast to the buffer's dtype), as a client mirrors them.

        The object is its nonzero voxels either way; a client that copies, say, 255s into its
        buffer then still holds what the server holds.
        """
        if self.buffer is not None and self.buffer.dtype != np.bool_:
            inside = seg != 0
            self.buffer[inside] = seg[inside].astype(self.buffer.dtype, copy=False)

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _override_note(override: bool) -> str:
        return "; override_capability_checks cannot help, the engine cannot run them" if override else ""

    def _check_kind(self, kind: PromptKind, override: bool) -> None:
        if kind not in self.facts.kinds:
            flag = KIND_FLAGS.get(kind, "supports_initial_label")
            raise ProtocolError(
                f"{ADD_PATHS[kind].lstrip('/')}: this server's model does not support {kind.value} prompts "
                f"('{flag}' is false in /capabilities{self._override_note(override)})."
            )

    def _add(self, prompts: Sequence[Prompt], run: bool, override: bool, kind: PromptKind | None = None) -> Prediction:
        for prompt in prompts:
            self._check_kind(prompt.kind, override)
        if kind is not None:
            self._check_kind(kind, override)
        if run:
            change = self._device.run(lambda: self.core.add_prompts(prompts, run=True))
        else:
            change = self.core.add_prompts(prompts, run=False)
        return self._reply(run, change)

    def _reply(self, ran: bool, change: Change | None) -> Prediction:
        box = changed_box(change)
        passes = 0 if change is None else change.forward_passes
        if box is None or self.buffer is None:
            return Prediction(ran, passes=passes)
        values = self.buffer[bbox_to_slices(box)]
        return Prediction(ran, box, encode(values), values.dtype.name, passes)


__all__ = ["Prediction", "ServerSession", "changed_box"]
