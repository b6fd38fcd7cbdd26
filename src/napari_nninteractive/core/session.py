"""The interactive segmentation session: one image, one object at a time, unlimited undo/redo.

Typical use::

    from napari_nninteractive.core.engines.network import NetworkEngine
    from napari_nninteractive.core.session import Session

    session = Session(NetworkEngine.from_folder("nnInteractive_v1.0"))
    session.set_image(volume)                      # (z, y, x), (c, z, y, x) or (y, x)
    change = session.add_point((40, 100, 120))     # positive click -> what changed
    change.bbox, change.values                     # the changed region and the mask there
    session.add_bbox([[40, 41], [80, 160], [90, 150]], positive=False)
    session.undo(); session.redo()
    mask = session.read_mask()                     # uint8 0/1, image grid

:class:`Session` implements :class:`~.api.SegmentationSession`: every operation returns a
:class:`~.api.Change`. A session is not thread-safe: call it from one thread at a time (the
napari widget uses one worker).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np

from .api import CancelCheck, Capabilities, Change, ProgressCallback
from .encoding import ImageError
from .engines.base import Engine, GpuOutOfMemory, PredictionCancelled, RunControl, Update
from .fusion import AXES, fuse
from .geometry import BBox, bbox_shape, bbox_to_slices, nonzero_bbox, relative_bbox, union_bbox
from .lazy import ImageArray, as_channel_first
from .prompts import Box, InitialMask, Lasso, Point, Prompt, PromptError, Scribble, as_flag
from .undo import Patch, Rounds, Snapshot, Step, read_rounds, steps_nbytes


class Session:
    """Interactive segmentation of one object at a time in one image.

    Parameters
    ----------
    engine
        Computes masks from prompts (e.g. :class:`~.engines.network.NetworkEngine`).
    progress
        Optional callable receiving :class:`~.engines.base.ProgressEvent` during predictions.
    should_cancel
        Optional callable polled between expensive steps; returning True cancels the
        prediction, leaving the mask unchanged and the prompts queued.
    undo_limit
        Undo levels kept (``None``: unlimited; ``0``: no undo at all, e.g. a server run with
        ``--no-undo``); the oldest steps are forgotten first.
    fusion
        Multi-round result fusion (:mod:`.fusion`) after every correction: per slice, keep the
        previous mask or the new one, whichever the prompts and the image support. It cuts the
        rounds that lower Dice but also slows the gains (measured on the shared data, see
        ``benchmarks/weight_free_eval.py``), so it is off unless asked for. Switch it any time
        with :attr:`fusion`: a prediction reads it once, when it starts.
    fusion_axes
        ``"all"`` (slices along every axis vote) or ``"prompt"`` (the newest prompt's axis); see
        :data:`.fusion.AXES`.
    """

    def __init__(
        self,
        engine: Engine,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        undo_limit: int | None = None,
        fusion: bool = False,
        fusion_axes: str = "all",
    ):
        if fusion_axes not in AXES:
            raise ValueError(f"unknown fusion_axes {fusion_axes!r}; use one of {', '.join(AXES)}")
        self.engine = engine
        self.fusion = fusion
        self.fusion_axes = fusion_axes
        self.undo_limit = undo_limit
        self.progress = progress
        self.should_cancel = should_cancel
        self._image: ImageArray | None = None
        self._mask: np.ndarray | None = None
        self._output: np.ndarray | None = None
        self._pending: list[Prompt] = []
        self._history: tuple[Prompt, ...] = ()  # the current object's prompts, oldest first
        self._rounds: Rounds = ()  # how they were predicted
        self._undo: list[Step] = []
        self._redo: list[Step] = []
        self._replayable: tuple[Prompt, ...] | None = None  # a restored object's prompts (undo replays them)

    @property
    def fusion(self) -> bool:
        """Whether multi-round result fusion runs after each correction (settable at any time; a prediction
        reads it when it starts, and :attr:`prediction_rounds` records it for exact replays)."""
        return self._fusion

    @fusion.setter
    def fusion(self, on: bool) -> None:
        flag = as_flag(on)
        if flag is None:
            raise ValueError(f"fusion must be True or False, not {on!r}")  # "no" would count as true
        self._fusion = flag

    @property
    def capabilities(self) -> Capabilities:
        """What the engine can do (see :class:`~.api.Capabilities`); undo as deep as ``undo_limit``, and redo."""
        e = self.engine
        device = getattr(e, "device", None)
        return Capabilities(
            e.name,
            e.describe(),
            frozenset(e.supported_kinds),
            bool(e.supports_3d_box),
            e.n_image_channels,
            undo_depth=self.undo_limit,
            redo=self.undo_limit != 0,
            licence=getattr(getattr(e, "model", None), "licence", None),
            device=getattr(device, "type", None),
            pass_name=e.pass_name,
        )

    def set_run_control(self, progress: ProgressCallback | None, should_cancel: CancelCheck | None) -> None:
        """Send progress events to ``progress``; poll ``should_cancel`` between expensive steps."""
        self.progress, self.should_cancel = progress, should_cancel

    # ------------------------------------------------------------------ image and buffers

    def set_image(self, image: np.ndarray) -> None:
        """Use ``image``: ``(Z, Y, X)``, channel-first ``(C, Z, Y, X)``, or ``(Y, X)`` as one slice.

        The array is referenced, never modified. Starts a fresh object (mask, prompts and
        history are cleared) and resets the output to an internal buffer.
        """
        arr = as_channel_first(image)
        if arr.shape[0] < 1:
            raise ImageError(
                f"The image shape {tuple(arr.shape)} has no channel; pass (z, y, x) or (channel, z, y, x)."
            )
        need = self.engine.n_image_channels
        if need is not None and arr.shape[0] != need:
            raise ImageError(
                f"The image has {arr.shape[0]} channels but the model takes {need}; pick "
                f"{'one channel' if need == 1 else f'{need} channels'} (e.g. image[c])."
            )
        if min(arr.shape[1:]) < 1:
            raise ImageError(
                f"The image shape {arr.shape[1:]} has an empty axis; pass an image with voxels on every axis."
            )
        self.engine.set_image(arr)
        self._image = arr
        self._mask = np.zeros(arr.shape[1:], dtype=np.uint8)
        self._output = self._mask
        self._pending, self._undo, self._redo = [], [], []
        self._history, self._rounds = (), ()

    def state_nbytes(self) -> dict[str, int]:
        """Bytes of session state beyond the caller's image (and beyond a caller's output buffer).

        ``mask``: the working mask (1 byte per voxel); ``prompts``: the prompt data of the current
        and every undo/redo state, each array counted once (states share them); ``history``: the
        bit-packed changed regions of the undo/redo steps.
        """
        now = [self.engine.get_state(), tuple(self._pending)] if self._image is not None else []
        prompts, history = steps_nbytes(now, self._undo + self._redo)
        return {"mask": 0 if self._mask is None else self._mask.nbytes, "prompts": prompts, "history": history}

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(Z, Y, X)`` of the image (a 2-D image has ``Z == 1``)."""
        return self._require_image().shape

    def set_output_buffer(self, buffer: np.ndarray | None) -> None:
        """Also write the object's 0/1 mask into ``buffer`` (image-shaped); ``None``: internal only.

        Only changed regions are written; the buffer is not cleared first. Raises
        :class:`ImageError` for a buffer that is not a writable boolean, integer or float array on
        the image grid.
        """
        mask = self._require_image()
        if buffer is None:
            self._output = mask
            return
        if not isinstance(buffer, np.ndarray):
            raise ImageError(f"The output buffer is a {type(buffer).__name__}; pass a numpy array on the image grid.")
        if tuple(buffer.shape) != mask.shape:
            raise ImageError(
                f"The output buffer has shape {tuple(buffer.shape)} but the image is {mask.shape}; "
                "pass a buffer on the image grid."
            )
        if buffer.dtype.kind not in "biuf":
            raise ImageError(f"The output buffer has dtype {buffer.dtype}; pass a boolean, integer or float array.")
        if not buffer.flags.writeable:
            raise ImageError("The output buffer is read-only; pass a writable array (e.g. a copy).")
        self._output = buffer

    @property
    def mask(self) -> np.ndarray:
        """The current object's mask (the output buffer if one was set); not a copy."""
        return self._require_output()

    def state(self) -> Change:
        """The session now, as a change of nothing (undo/redo availability, queued prompts, history)."""
        self._require_image()
        return self._change(None)

    def read_mask(self) -> np.ndarray:
        """A copy of the current object's 0/1 mask (``uint8``, image grid)."""
        copy: np.ndarray = self._require_image().copy()
        return copy

    @property
    def pending(self) -> tuple[Prompt, ...]:
        """Prompts queued since the last prediction."""
        return tuple(self._pending)

    @property
    def prompt_history(self) -> tuple[Prompt, ...]:
        """The current object's prompts (validated, oldest first; undo removes, redo restores).

        An initial mask starts a new history; reset and :meth:`new_object` clear it. Together with
        the mask this is what :meth:`restore_object` needs to continue refining the object.
        """
        return self._history

    @property
    def prediction_rounds(self) -> Rounds:
        """How :attr:`prompt_history` was predicted: which prompts ran together, and whether multi-round
        fusion ran on each prediction (:data:`.undo.Rounds`; :meth:`restore_object` takes it back)."""
        return self._rounds

    def restore_object(self, mask: np.ndarray, prompts: Sequence[Prompt] = (), rounds: Rounds | None = None) -> Change:
        """Make ``mask`` (full size, 0/1) with ``prompts`` the current object, without predicting.

        The engine gets the prompts back so that the next prompt refines the object as if the
        session had never ended. Its undo steps are not stored: the first :meth:`undo` rebuilds them
        by replaying the prompts from an empty mask, as ``rounds`` (the finished object's
        :attr:`prediction_rounds`) says: the prompts that ran together run together, fused where
        they were fused. The engines are deterministic, so each step gives the mask the
        uninterrupted session gave. Prompts beyond the rounds (queued when the object was finished)
        are queued again. Without ``rounds`` (files of older versions) each prompt is one
        prediction, fused as :attr:`fusion` is at this call. Redo then returns to ``mask`` as
        restored (hand edits included).
        """
        current = self._require_image()
        mask = np.asarray(mask)
        if mask.shape != current.shape:
            raise PromptError(f"The restored mask has shape {mask.shape} but the image has shape {current.shape}.")
        prompts = tuple(p.validated(current.shape, allow_3d_box=self.engine.supports_3d_box) for p in prompts)
        try:
            rounds = read_rounds(tuple((1, self.fusion) for _ in prompts) if rounds is None else rounds, len(prompts))
        except ValueError as exc:
            raise PromptError(f"The restored object's prediction rounds do not fit its prompts: {exc}.") from None
        changed = union_bbox(nonzero_bbox(current), nonzero_bbox(mask))
        predicted = sum(n for n, _ in rounds)  # the rest were queued when the object was finished: queued again
        self.engine.load_prompts(_engine_part(prompts[:predicted]))  # what the engine had
        flips = None
        if changed is not None:
            new = (mask[bbox_to_slices(changed)] != 0).astype(np.uint8)
            flips = current[bbox_to_slices(changed)] != new
            self._set(changed, new)
        self._pending, self._undo, self._redo = list(prompts[predicted:]), [], []
        self._history, self._rounds = prompts, rounds
        self._replayable = prompts  # Undo rebuilds its steps by replaying them (see _rebuild_undo)
        return self._change(changed, flips)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo) or self._replay_ready()

    def _replay_ready(self) -> bool:
        """A restored object with prompts and no undo step yet: undo rebuilds the steps (:meth:`_rebuild_undo`)."""
        return not self._undo and bool(self._history) and self._replayable is self._history

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def _require_image(self) -> np.ndarray:
        """The working mask; :class:`ImageError` when no image is set."""
        if self._mask is None:
            raise ImageError("No image is set; call set_image(...) first.")
        return self._mask

    def _require_output(self) -> np.ndarray:
        """The buffer the mask is also written to (the mask itself unless one was set)."""
        self._require_image()
        assert self._output is not None  # set together with the mask
        return self._output

    # ------------------------------------------------------------------ prompts

    def add_point(self, coord: Sequence[float], positive: bool = True, run: bool = True) -> Change:
        """Click at ``coord`` (voxel coordinates, array order)."""
        return self.add_prompt(Point(tuple(coord), positive), run)

    def add_bbox(self, bbox: Sequence[Sequence[float]], positive: bool = True, run: bool = True) -> Change:
        """Box ``[[lo, hi], ...]`` (half-open); a 2-D box has extent 1 on one axis."""
        return self.add_prompt(Box(cast(BBox, tuple(tuple(p) for p in bbox)), positive), run)  # validated() rounds

    def add_scribble(
        self, mask: np.ndarray, positive: bool = True, bbox: BBox | None = None, run: bool = True
    ) -> Change:
        """Scribble as a full-size 0/1 mask, or a crop plus its ``bbox``."""
        return self.add_prompt(Scribble(mask, bbox, positive), run)

    def add_lasso(self, mask: np.ndarray, positive: bool = True, bbox: BBox | None = None, run: bool = True) -> Change:
        """Filled lasso as a full-size 0/1 mask, or a crop plus its ``bbox``."""
        return self.add_prompt(Lasso(mask, bbox, positive), run)

    def set_initial_mask(
        self, mask: np.ndarray, refine: bool = False, bbox: BBox | None = None, run: bool = True
    ) -> Change:
        """Replace the object by ``mask`` (resets its prompts); ``refine`` lets the network improve it."""
        return self.add_prompt(InitialMask(mask, bbox, True, refine), run)

    def add_prompt(self, prompt: Prompt, run: bool = True) -> Change:
        """Validate and queue ``prompt``; with ``run`` predict at once."""
        return self.add_prompts([prompt], run)

    def add_prompts(self, prompts: Sequence[Prompt], run: bool = True) -> Change:
        """Validate and queue ``prompts`` (all or none); with ``run`` predict with everything queued.

        Queued prompts reach the engine once, when a prediction runs. A prediction that is
        cancelled or fails leaves the mask unchanged and the prompts queued (undoable).
        """
        return self._add(prompts, run)

    def _add(self, prompts: Sequence[Prompt], run: bool, fusion: bool | None = None) -> Change:
        """:meth:`add_prompts`; ``fusion``: whether this prediction is fused (``None``: as :attr:`fusion` says)."""
        shape = self._require_image().shape
        valid = []
        for prompt in prompts:
            if prompt.kind not in self.engine.supported_kinds:
                raise PromptError(
                    f"This model does not support {prompt.kind.value} prompts; use one of "
                    f"{sorted(k.value for k in self.engine.supported_kinds)}."
                )
            valid.append(prompt.validated(shape, allow_3d_box=self.engine.supports_3d_box))
        if not valid:
            return self._predict(fusion) if run else self._change(None)
        before = self._snapshot()
        for prompt in valid:
            self._pending.append(prompt)
            if isinstance(prompt, InitialMask):  # a new history
                self._history, self._rounds = (prompt,), ()
            else:
                self._history += (prompt,)
        label = " + ".join(p.kind.value for p in valid)
        queued = Step(f"add {label}", before, self._snapshot(), ())
        if not run:
            self._push(queued)
            return self._change(None)
        try:
            return self._run(before, label, fusion)
        except BaseException:
            self._push(queued)  # the prompts stay queued; the mask is unchanged
            raise

    def predict(self) -> Change:
        """Predict with every queued prompt (nothing changes when none is queued)."""
        return self._predict(None)

    def _predict(self, fusion: bool | None) -> Change:
        self._require_image()
        if not self._pending:
            return self._change(None)
        return self._run(self._snapshot(), "predict", fusion)

    # ------------------------------------------------------------------ object and history

    def reset_object(self) -> Change:
        """Clear the mask and all prompts of the current object (undoable)."""
        mask = self._require_image()
        before = self._snapshot()
        patches: list[Patch] = []
        box = nonzero_bbox(mask)
        if box is not None:
            self._write(box, np.zeros_like(mask[bbox_to_slices(box)]), patches)
        self.engine.clear_prompts()
        self._pending = []
        self._history, self._rounds = (), ()
        step = Step("reset", before, self._snapshot(), tuple(patches))
        self._push(step)
        return self._step_change(step)

    def next_object(self) -> Change:
        """Start the next object: empty mask, no prompts, fresh history (not undoable).

        Returns the *finished* object: its bbox, its voxels there and its prompt history. Its
        mask is not erased from a caller's output buffer.
        """
        mask = self._require_image()
        finished = self._change(nonzero_bbox(mask))
        mask[...] = 0
        self.engine.clear_prompts()
        self._pending, self._undo, self._redo = [], [], []
        self._history, self._rounds = (), ()
        return finished

    def undo(self) -> Change:
        """Undo the last action (unlimited depth; after :meth:`restore_object`, its prompts one by one)."""
        if self._replay_ready():
            self._rebuild_undo()
        if not self._undo:
            return self._change(None)
        step = self._undo.pop()
        for patch in reversed(step.patches):
            self._set(patch.bbox, patch.values("old"))
        self._restore(step.before)
        self._redo.append(step)
        return self._step_change(step)

    def redo(self) -> Change:
        """Redo the last undone action."""
        if not self._redo:
            return self._change(None)
        step = self._redo.pop()
        for patch in step.patches:
            self._set(patch.bbox, patch.values("new"))
        self._restore(step.after)
        self._undo.append(step)
        return self._step_change(step)

    def _rebuild_undo(self) -> None:
        """Replay the restored object's predictions but the last from an empty mask (as its rounds say),
        pushing their steps, then a step to the state as restored (the last prediction, and prompts queued
        after it); on any failure (a cancel, an error) the restored state comes back."""
        prompts, rounds, restored = self._history, self._rounds, self._snapshot()
        mask = self._require_image()
        box = nonzero_bbox(mask)
        kept = None if box is None else (box, mask[bbox_to_slices(box)].copy())
        try:
            if kept is not None:
                self._set(kept[0], np.zeros_like(kept[1]))
            self.engine.clear_prompts()
            self._pending, self._history, self._rounds = [], (), ()
            start = 0
            # the last prediction gave the restored mask; with prompts queued after it (never run): all of them
            replayed_rounds = rounds if restored.pending else rounds[:-1]
            for count, fused in replayed_rounds:
                self._add(prompts[start : start + count], True, fused)
                start += count
            before, patches = self._snapshot(), list[Patch]()
            replayed = nonzero_bbox(mask)
            union = union_bbox(replayed, box)
            if union is not None:
                target = np.zeros(bbox_shape(union), dtype=np.uint8)
                if kept is not None:
                    target[bbox_to_slices(relative_bbox(kept[0], union))] = kept[1]
                self._write(union, target, patches)
            self._restore(restored)
            self._push(Step("restored object", before, restored, tuple(patches)))
        except BaseException:
            self._undo, self._redo = [], []
            whole = union_bbox(nonzero_bbox(mask), box)
            if whole is not None:
                self._set(whole, np.zeros(bbox_shape(whole), dtype=np.uint8))
            if kept is not None:
                self._set(*kept)
            self._restore(restored)
            raise
        finally:
            self._replayable = None if self._undo else self._history  # after a failure: replayable again

    # ------------------------------------------------------------------ internals

    def _change(
        self,
        box: BBox | None,
        flipped: np.ndarray | None = None,
        notices: tuple[str, ...] = (),
        passes: int = 0,
    ) -> Change:
        """The session now, with the object's voxels in ``box`` (copied)."""
        state = (self.can_undo, bool(self._redo), len(self._pending), self._history, self._rounds)
        return Change.of(self._require_image(), box, flipped, state, notices, passes)

    def _step_change(self, step: Step, notices: tuple[str, ...] = (), passes: int = 0) -> Change:
        """The change of ``step``, with the voxels whose value it flipped."""
        box = step.bbox
        if box is None:
            return self._change(None, notices=notices, passes=passes)
        if len(step.patches) == 1 and step.patches[0].bbox == box:  # the common case: no union to build
            return self._change(box, step.patches[0].flipped(), notices, passes)
        changed = np.zeros(bbox_shape(box), dtype=bool)
        for patch in step.patches:
            changed[bbox_to_slices(relative_bbox(patch.bbox, box))] |= patch.flipped()
        return self._change(box, changed, notices, passes)

    def _snapshot(self) -> Snapshot:
        return Snapshot(self.engine.get_state(), tuple(self._pending), self._history, self._rounds)

    def _restore(self, snap: Snapshot) -> None:
        self.engine.set_state(snap.engine_state)
        self._pending = list(snap.pending)
        self._history, self._rounds = snap.history, snap.rounds

    def _push(self, step: Step) -> None:
        self._undo.append(step)
        self._redo.clear()
        if self.undo_limit is not None and len(self._undo) > self.undo_limit:
            del self._undo[: len(self._undo) - self.undo_limit]

    def _set(self, box: BBox, values: np.ndarray) -> None:
        sl = bbox_to_slices(box)
        mask, output = self._require_image(), self._require_output()
        mask[sl] = values
        if output is not mask:
            output[sl] = values

    def _write(self, box: BBox, values: np.ndarray, patches: list[Patch]) -> None:
        old = self._require_image()[bbox_to_slices(box)].copy()
        new = np.asarray(values, dtype=np.uint8)
        patches.append(Patch.of(box, old, new))
        self._set(box, new)

    def _engine_predict(self, prompts: list[Prompt], engine_before: object) -> tuple[list[Update], tuple[str, ...]]:
        """The engine's regions and notices (its own, :attr:`Engine.notices`, after the session's); after the GPU
        ran out of memory, once more on the CPU."""
        mask = self._require_image()
        control = RunControl(self.progress, self.should_cancel)
        try:
            return self.engine.predict(mask, prompts, control), self.engine.notices
        except GpuOutOfMemory:
            if not self.engine.fall_back_to_cpu():
                raise
        self.engine.set_state(engine_before)  # the engine takes the same prompts once more
        notice = (
            "The GPU ran out of memory, so this and later predictions run on the CPU (slower). "
            "Close other GPU programs and Initialize again to use the GPU."
        )
        regions = self.engine.predict(mask, prompts, control)
        return regions, (notice, *self.engine.notices)

    def _fuse(self, box: BBox, values: np.ndarray, newest: list[Prompt]) -> np.ndarray:
        """Multi-round result fusion of the engine's ``values`` for ``box`` with the mask there now."""
        image = self._image
        assert image is not None  # predictions need an image
        sl = bbox_to_slices(box)
        region = np.asarray(image[(slice(None),) + sl])
        grey = region.mean(axis=0, dtype=np.float32) if region.shape[0] > 1 else region[0].astype(np.float32)
        old = self._require_image()[sl]
        return fuse(old, values, grey, box, self._history, newest, self.fusion_axes)

    def _run(self, before: Snapshot, label: str, fusion: bool | None = None) -> Change:
        """Apply queued initial masks, give the engine the queued prompts, write its regions; all or nothing.

        ``fusion`` (``None``: :attr:`fusion`, read here, once: a switch while the engine runs counts from
        the next prediction).
        """
        fused = self.fusion if fusion is None else bool(fusion)
        mask = self._require_image()
        prompts = list(self._pending)
        patches: list[Patch] = []
        notices: tuple[str, ...] = ()
        engine_before = self.engine.get_state()
        self.engine.forward_passes = 0
        try:
            need_engine = True
            idx = max((i for i, p in enumerate(prompts) if isinstance(p, InitialMask)), default=None)
            if idx is not None:  # an initial mask replaces the object and its earlier prompts
                init = prompts[idx]
                assert isinstance(init, InitialMask) and init.bbox is not None  # validated, found above
                box = union_bbox(nonzero_bbox(mask), init.bbox)
                assert box is not None  # the initial mask is not empty
                new = np.zeros_like(mask[bbox_to_slices(box)])
                new[bbox_to_slices(tuple((lo - b0, hi - b0) for (lo, hi), (b0, _) in zip(init.bbox, box)))] = init.mask
                self._write(box, new, patches)
                self.engine.clear_prompts()
                need_engine = init.refine or idx < len(prompts) - 1
                prompts = list(_engine_part(prompts))
            if need_engine and prompts:
                regions, notices = self._engine_predict(prompts, self.engine.get_state())
                for box, values in regions:
                    if fused and idx is None:
                        values = self._fuse(box, values, prompts)
                    self._write(box, values, patches)
        except BaseException:
            for patch in reversed(patches):
                self._set(patch.bbox, patch.values("old"))
            self.engine.set_state(engine_before)
            raise
        # this prediction's prompts in the history: from the initial mask that started it, or all queued
        count = len(self._pending) - (idx or 0)
        self._pending = []
        self._rounds += ((count, fused and idx is None),)
        step = Step(label, before, self._snapshot(), tuple(patches))
        self._push(step)
        return self._step_change(step, notices, self.engine.forward_passes)


def _engine_part(prompts: Sequence[Prompt]) -> Sequence[Prompt]:
    """What the engine is given of ``prompts``: from the last initial mask on, that mask only when refined."""
    idx = max((i for i, p in enumerate(prompts) if isinstance(p, InitialMask)), default=None)
    if idx is None:
        return prompts
    init = prompts[idx]
    assert isinstance(init, InitialMask)  # found above
    return prompts[idx:] if init.refine else prompts[idx + 1 :]


__all__ = ["Change", "PredictionCancelled", "Session"]
