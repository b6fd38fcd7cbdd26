"""The nnInteractive network engine: encoding, AutoZoom and patch refinement (spec 2-5).

The input tensors are built in :mod:`.network_inputs`; how passes use the device in :mod:`.accel`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from .. import autozoom as az
from .. import onednn
from ..encoding import Normalization, PromptState, PromptStore, compute_normalization
from ..geometry import (
    BBox,
    bbox_is_empty,
    bbox_shape,
    bbox_to_slices,
    clip_bbox,
    crop_padded,
    intersect_bbox,
    shift_bbox,
    union_bbox,
    window,
)
from ..lazy import ImageArray
from ..mask_upsampling import upsample_mask_region
from ..model import LoadedModel, choose_device, load_model_folder
from ..prompts import InitialMask, Point, Prompt
from ..threaded import copy_into
from . import accel
from .base import Engine, EngineError, GpuOutOfMemory, RunControl, Update
from .network_inputs import NetworkInputs, WindowBuffer

log = logging.getLogger(__name__)


def _prompt_centre_and_extent(prompt: Prompt) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """Centre of a validated prompt and its extent (``None`` for a point: zoom 1)."""
    if isinstance(prompt, Point):
        return tuple(int(c) for c in prompt.coord), None  # validated: already integers
    box = prompt.bbox
    assert box is not None, "validated region prompts have a bbox"
    return tuple(int(round((lo + hi) / 2)) for lo, hi in box), bbox_shape(box)


def _compile_failed(exc: BaseException) -> str:
    return (
        f"Compiling the network with torch.compile failed ({accel.compile_cause(exc)}); load it without compiling "
        "(drop --compile, or untick Compile in the widget)."
    )


def independent_groups(patches: Sequence[BBox], limit: int) -> list[list[int]]:
    """Consecutive runs of ``patches`` (indices) that can go through the network together, at most ``limit`` each.

    Refinement patches run in order, each reading what the earlier ones wrote (spec 5). A patch joins the
    current group only if its box overlaps no box of the group: then its input holds exactly what it would
    hold one by one (the earlier groups are written, its own group wrote nothing it reads), and the writes of
    disjoint boxes commute. Same masks, fewer passes' worth of overhead.
    """
    groups: list[list[int]] = []
    for i, patch in enumerate(patches):
        group = groups[-1] if groups else None
        if (
            group is None
            or len(group) >= limit
            or any(not bbox_is_empty(intersect_bbox(patch, patches[j])) for j in group)
        ):
            groups.append([i])
        else:
            group.append(i)
    return groups


@contextmanager
def cancel_points(net: object, control: RunControl) -> Iterator[None]:
    """While a forward pass of ``net`` runs, check for cancellation before each of its convolutions.

    A pass of the full network takes about a minute on a CPU; without these checks a cancel would
    wait for its end. The checks raise :class:`PredictionCancelled` inside the pass (nothing is
    written), cost a Python call per convolution, and change no output. Networks that are not
    torch modules (a function handed in by code) run unchecked.
    """
    if control.should_cancel is None or not isinstance(net, torch.nn.Module):
        yield
        return
    convs = [m for m in net.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    handles = [m.register_forward_pre_hook(lambda _module, _args: control.check()) for m in convs]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class NetworkEngine(NetworkInputs, Engine):
    """Runs an nnInteractive network with the reference encoding and AutoZoom.

    Parameters
    ----------
    model
        The network and its facts (from :func:`load_model_folder`, or built by a test).
    device
        ``"auto"`` (CUDA > MPS > CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``.
    autozoom
        ``True``/``False`` or an :class:`~napari_nninteractive.core.autozoom.AutoZoomConfig`.
        AutoZoom off switches off only the zoom-out loop: one coarse pass at the starting zoom
        (1 for a point; from the prompt's extent for a box, scribble, lasso or mask), followed by
        full-resolution refinement when that zoom is above 1, so large prompts are never cut.
    cpu_bf16
        Run forward passes on the CPU under bfloat16 autocast. Off by default: float32 is the
        reference, and on CPUs without native bf16 it is much slower
        (``benchmarks/forward_options.py`` measures speed and mask agreement). CUDA always uses
        float16 autocast.
    compile
        ``torch.compile`` the network (:mod:`.accel`) and warm it up here, on the thread that makes the
        engine: a one-off wait of seconds to minutes, then faster passes where the compiler helps (mostly
        CUDA). Compiled passes check for cancellation between passes only, and refinement runs one patch
        per pass (one input shape, compiled once).

    Switches kept as attributes for tests and benchmarks (the defaults are what users run):
    ``lean_inputs`` (see :meth:`network_input`), ``refine_batch`` (refinement patches per pass),
    ``cpu_onednn`` (CPU float32 convolutions through oneDNN at every batch size, :mod:`..onednn`),
    ``overlap`` (build the next refinement input while a pass runs), ``pinned_memory`` (page-locked
    inputs and asynchronous copies on CUDA) and :attr:`channels_last`. :meth:`spec_as_written` turns
    them off.
    """

    name = "nnInteractive network"

    def __init__(
        self,
        model: LoadedModel,
        device: str = "auto",
        autozoom: bool | az.AutoZoomConfig = True,
        cpu_bf16: bool = False,
        compile: bool = False,
    ):
        self.model = model
        self.cpu_bf16 = bool(cpu_bf16)
        self._device = choose_device(device)
        if isinstance(model.network, torch.nn.Module):
            model.network.to(self._device).eval()
        onednn.install(model.network)
        #: CPU float32 passes run every 3-D convolution through oneDNN, also for a batch of one (see core/onednn.py).
        self.cpu_onednn = True
        #: Build the next refinement pass's input while the current pass runs (asynchronous on CUDA).
        self.overlap = True
        #: Inputs in page-locked host memory, copied to a CUDA device asynchronously.
        self.pinned_memory = True
        self.channels_last = None  # the default: channels-last 3-D on CUDA
        #: The ``torch.compile`` backend when compiled, else ``None``.
        self.compiled: Any = None
        self._compiled_on: torch.device | None = None  # the device compile() warmed up for
        self._pinned_buffers: list[WindowBuffer] = []  # kept across predictions (page-locking is slow)
        self.autozoom = (
            autozoom if isinstance(autozoom, az.AutoZoomConfig) else az.AutoZoomConfig(enabled=bool(autozoom))
        )
        meta = model.metadata
        self.supported_kinds = meta.supported
        self.supports_3d_box = meta.supports_3d_box
        self.n_image_channels = model.n_image_channels
        self.patch_size = tuple(model.patch_size)
        self._image: ImageArray | None = None
        self._norm: Normalization | None = None
        self._store: PromptStore | None = None
        self.forward_passes = 0
        self.lean_inputs = True  # see network_input
        #: Refinement patches run together, at most this many per pass (see :func:`independent_groups`); 1: one by
        #: one. The default keeps a batch within about 8 M input voxels (a 192^3 patch runs alone).
        self.refine_batch = max(1, min(8, (1 << 23) // int(np.prod(self.patch_size))))
        self._eager_batch = self.refine_batch  # restored when the engine stops running compiled
        if compile:
            self.compile()

    def spec_as_written(self) -> NetworkEngine:
        """Turn off every optimisation of how (not what) the spec computes: full input crops, one refinement
        patch per pass, PyTorch's own convolution kernels, one pass after the other, ordinary memory. The plain
        path tests and benchmarks compare with; returns the engine."""
        self.lean_inputs, self.refine_batch, self.cpu_onednn, self.overlap = False, 1, False, False
        self.pinned_memory, self.channels_last, self.compiled = False, False, None
        return self

    @property
    def channels_last(self) -> bool:
        """Whether passes run in channels-last 3-D memory format (:mod:`.accel`). Set ``None`` for the default
        (on for CUDA), or ``True``/``False``; setting it converts the network's weights."""
        return self.device.type == "cuda" if self._channels_last is None else self._channels_last

    @channels_last.setter
    def channels_last(self, value: bool | None) -> None:
        self._channels_last = None if value is None else bool(value)
        accel.set_memory_format(self.model.network, self.channels_last)

    def compile(self, backend: Any = "inductor") -> None:
        """``torch.compile`` the network and warm it up now, unless an engine sharing the model did for this device
        and precision (see the class docs): call it on a worker thread. ``backend``: a name or a callable."""
        if self.compiled is None:
            self._eager_batch = self.refine_batch
        self.compiled, self.refine_batch, self._compiled_on = backend, 1, self.device
        if self._compile_key() in self.model.compiled_forms:
            return  # already compiled and warmed up
        try:
            self.warm_up()
        except Exception as exc:
            self.model.compiled_forms.pop(self._compile_key(), None)
            self.compiled, self.refine_batch = None, self._eager_batch
            if isinstance(exc, EngineError):
                raise
            raise EngineError(_compile_failed(exc)) from None

    def _compile_key(self) -> tuple[Any, ...]:
        """What a compiled graph is specialised for: backend, device and precision."""
        precision = "fp16" if self.device.type == "cuda" else "bf16" if self.cpu_bf16 else "fp32"
        return (self.compiled, str(self.device), precision)

    def warm_up(self) -> None:
        """One pass of an all-zero input of the patch size, as predictions run it: the one-off costs (compiling,
        kernel selection, allocator growth) are paid here, not in the user's first prediction."""
        x = self._buffer(0).take(1, self.model.n_inputs, self.patch_size)
        self._collect(self._launch(x, RunControl(), "warm-up", 1, 1, "warming up the network"))
        self.forward_passes = 0

    def _pinned(self) -> bool:
        return self.pinned_memory and self.device.type == "cuda"

    def _buffer(self, i: int) -> WindowBuffer:
        """Input buffer ``i`` (0 or 1) of a prediction: page-locked ones are kept, others are fresh each time."""
        if not self._pinned():
            return WindowBuffer()
        while len(self._pinned_buffers) <= i:
            self._pinned_buffers.append(WindowBuffer(pinned=True))
        return self._pinned_buffers[i]

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        fold: int | str | None = None,
        device: str = "auto",
        autozoom: bool | az.AutoZoomConfig = True,
        cpu_bf16: bool = False,
        trust_checkpoint: bool = False,
        compile: bool = False,
    ) -> NetworkEngine:
        """Load an official model folder and wrap it (two-phase: options, then weights).

        ``trust_checkpoint=True`` allows the globals the checkpoint names (they can run code from
        the file); see :func:`~..model.load_model_folder`.
        """
        model = load_model_folder(folder, fold=fold, trust_checkpoint=trust_checkpoint)
        return cls(model, device=device, autozoom=autozoom, cpu_bf16=cpu_bf16, compile=compile)

    # ------------------------------------------------------------------ state

    def set_image(self, image: ImageArray) -> None:
        self._norm = compute_normalization(image)
        self._image = image
        meta = self.model.metadata
        self._store = PromptStore(image.shape[1:], meta.interaction_decay, meta.point_radius)

    def _record(self, prompt: Prompt) -> None:
        if isinstance(prompt, InitialMask):
            self.prompt_store.clear()
        else:
            self.prompt_store.add(prompt)

    def clear_prompts(self) -> None:
        self.prompt_store.clear()

    def get_state(self) -> object:
        return self.prompt_store.state

    def set_state(self, state: object) -> None:
        self.prompt_store.state = cast(PromptState, state)  # a snapshot from get_state

    def _launch(
        self,
        x: torch.Tensor,
        control: RunControl,
        stage: str,
        step: int,
        total: int | None,
        message: str,
        zoom: float = 1.0,
    ) -> accel.Pending:
        """Start the forward passes of the inputs stacked in ``x`` (on the CPU they run here; on an accelerator
        they are queued and this returns at once): :meth:`_collect` waits for them. ``x`` must stay unchanged
        until then. The network normalises per sample, so each sample gives what it gives alone."""
        control.check()
        control.report(stage, step, total, message, zoom)
        net = self.model.network
        checks: AbstractContextManager[None]
        if self._runs_compiled():  # cancelled between passes only
            net, checks = accel.compiled(self.model.compiled_forms, net, self._compile_key()), nullcontext()
        else:
            checks = cancel_points(net, control)
        with self._errors(), torch.inference_mode(), checks, onednn.onednn_convolutions(self._onednn()):
            xt = accel.to_device(x, self.device, self.channels_last)
            if self.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.float16):
                    logits = net(xt)
            elif self.device.type == "cpu" and self.cpu_bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    logits = net(xt)
            else:
                logits = net(xt)
            pending = accel.Pending(logits)
            if not accel.asynchronous(self.device):
                pending.masks()  # done: read before the input's buffer is written again
        return pending

    def _collect(self, pending: accel.Pending, control: RunControl | None = None) -> list[np.ndarray]:
        """Wait for the passes :meth:`_launch` started: one 0/1 prediction per sample."""
        with self._errors():
            preds = pending.masks()
        self.forward_passes += len(preds)
        if control is not None:
            control.check()  # a cancel pressed during the pass is honoured before anything is written
        return preds

    def _onednn(self) -> bool:
        return self.cpu_onednn and not self.cpu_bf16 and not self._runs_compiled()

    def _runs_compiled(self) -> bool:
        """Whether passes run compiled: asked for, and the network is still on the device it was compiled for.

        An engine sharing the model may have moved it to the CPU (:meth:`fall_back_to_cpu`); this one then runs
        eagerly too, instead of compiling for the CPU in a user's prediction.
        """
        return self.compiled is not None and self.device == self._compiled_on

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """The network's failures in the user's words (on CUDA they may surface when the result is read)."""
        try:
            yield
        except torch.cuda.OutOfMemoryError:
            raise GpuOutOfMemory(
                f"The {self.device.type.upper()} ran out of memory during the forward pass. Close other GPU programs, "
                "or run on the CPU (device 'cpu')."
            ) from None
        except Exception as exc:
            if self._runs_compiled() and accel.is_compile_error(exc):
                raise EngineError(_compile_failed(exc)) from None
            if not isinstance(exc, (TypeError, ValueError, RuntimeError)):
                raise
            if self.model.folder is None:
                raise  # a network handed in by code: its errors are bugs, keep the traceback
            first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise EngineError(
                f"The network built from {self.model.folder / 'plans.json'} fails on its input ({type(exc).__name__}: "
                f"{first}); the plans file's architecture settings are damaged. Download the model folder again."
            ) from None

    # ------------------------------------------------------------------ predict

    def _predict(self, mask: np.ndarray, new: Sequence[Prompt], control: RunControl) -> list[Update]:
        self.forward_passes = 0
        cfg = self.autozoom
        shape = mask.shape
        last = new[-1]
        centre, extent = _prompt_centre_and_extent(last)
        zoom = 1.0  # a point starts at zoom 1; a larger prompt further out, with AutoZoom on or off (spec 5)
        if extent is not None:
            zoom = az.starting_zoom(extent, self.patch_size, cfg.max_zoom)
        refine_mask = next((p for p in reversed(new) if isinstance(p, InitialMask) and p.refine), None)

        step, buffer = 0, self._buffer(0)
        while True:
            box = window(centre, az.crop_size(self.patch_size, zoom))
            x, prev_small = self.network_input(mask, box, zoom, buffer=buffer)
            step += 1
            what = f"forward pass {step} at zoom {zoom:g}"
            pred = self._collect(self._launch(x, control, "zoom", step, None, what, zoom), control)[0]
            del x
            if not cfg.enabled or zoom >= cfg.max_zoom:  # AutoZoom off: no zoom-out loop, one coarse pass
                break
            if not any(az.face_triggers(prev_small, pred, cfg)):
                break
            zoom = az.next_zoom(zoom, cfg.zoom_step, cfg.max_zoom)
            log.debug("AutoZoom: object touches the border, zooming out to %g", zoom)

        if zoom == 1.0:
            written = clip_bbox(box, shape)
            values = crop_padded(pred, shift_bbox(written, [-lo for lo, _ in box]))
            return [(written, values)]
        return self._refine(mask, pred, box, centre, refine_mask, control, buffer)

    def _refine(
        self,
        mask: np.ndarray,
        pred: np.ndarray,
        box: BBox,
        centre: tuple[int, ...],
        refine_mask: InitialMask | None,
        control: RunControl,
        buffer: WindowBuffer,
    ) -> list[Update]:
        """Upsample the coarse result, plan patches over what changed, refine them at zoom 1."""
        cfg, P, shape = self.autozoom, self.patch_size, mask.shape
        crop_in_image = clip_bbox(box, shape)
        in_crop = shift_bbox(crop_in_image, [-lo for lo, _ in box])
        if self.lean_inputs:  # only the part inside the image, bit-identical (see mask_upsampling)
            coarse = upsample_mask_region(pred, bbox_shape(box), in_crop)
        else:
            coarse = az.upsample_mask(pred, bbox_shape(box))[bbox_to_slices(in_crop)]
        plan_region = crop_in_image if refine_mask is None else union_bbox(crop_in_image, refine_mask.bbox)
        assert plan_region is not None  # the initial mask's bbox is never empty
        offset = [lo for lo, _ in plan_region]
        in_plan = bbox_to_slices(shift_bbox(crop_in_image, [-o for o in offset]))
        diff = np.zeros(bbox_shape(plan_region), dtype=bool)
        diff[in_plan] = coarse != mask[bbox_to_slices(crop_in_image)].astype(bool)
        diff = az.binary_opening(diff, cfg.opening_size)
        if refine_mask is not None:
            assert refine_mask.bbox is not None, "validated region prompts have a bbox"
            diff[bbox_to_slices(shift_bbox(refine_mask.bbox, [-o for o in offset]))] |= refine_mask.mask
        patches = [shift_bbox(b, offset) for b in az.plan_refinement(diff, P, cfg)]
        if not patches:
            patches = [az.full_box(centre, P)]
        del diff

        # The working copy covers the union of the boxes, also where they reach past the image: there it
        # starts at 0 and keeps each patch's whole prediction, which later overlapping patches read as
        # prev_seg (spec 5). Only its in-image part is committed.
        work_region = union_bbox(plan_region, *patches)
        assert work_region is not None  # there is at least one patch, and patches are not empty
        work_offset = [lo for lo, _ in work_region]
        work = np.zeros(bbox_shape(work_region), dtype=mask.dtype)
        in_image = clip_bbox(work_region, shape)
        work[bbox_to_slices(shift_bbox(in_image, [-o for o in work_offset]))] = mask[bbox_to_slices(in_image)]
        work[bbox_to_slices(shift_bbox(crop_in_image, [-o for o in work_offset]))] = coarse
        del coarse
        # Each group's prev_seg reads what the groups before it wrote; its other channels do not. So while a pass
        # runs (on CUDA: queued, the CPU is free) the next group's image and prompt channels are built, into the
        # other of two buffers; once the pass is collected and written, its prev_seg channel. On the CPU a pass
        # is over when launched, and one buffer serves both.
        pipelined = self.overlap and self.lean_inputs
        buffers = (buffer, self._buffer(1) if pipelined and accel.asynchronous(self.device) else buffer)
        in_flight: tuple[list[int], accel.Pending] | None = None
        try:
            for k, group in enumerate(independent_groups(patches, self.refine_batch)):
                boxes, buf = [patches[i] for i in group], buffers[k % 2]
                if pipelined:
                    x = self.window_inputs(work, boxes, work_offset, buf, prev_later=True)
                if in_flight is not None:
                    pending, in_flight = in_flight, None
                    self._write_back(work, work_offset, patches, *pending, control)
                if pipelined:
                    self.fill_prev_seg(x, work, boxes, work_offset, buf)
                else:
                    x = self.window_inputs(work, boxes, work_offset, buf)
                first, last, n = group[0] + 1, group[-1] + 1, len(patches)
                what = f"refining patch {first}/{n}" if first == last else f"refining patches {first}-{last}/{n}"
                in_flight = (group, self._launch(x, control, "refine", first, n, what))
                del x
            assert in_flight is not None  # there is at least one patch
            pending, in_flight = in_flight, None
            self._write_back(work, work_offset, patches, *pending, control)
        except BaseException:
            if in_flight is not None:  # cancelled or failed with a pass queued: it must be done with its buffer
                in_flight[1].wait()
            raise

        patch_union = union_bbox(*patches)
        assert patch_union is not None  # there is at least one patch, and patches are not empty
        changed = clip_bbox(patch_union, shape)
        values = mask[bbox_to_slices(changed)].copy()
        rel = [lo for lo, _ in changed]
        for patch in patches:
            inside = clip_bbox(patch, shape)
            values[bbox_to_slices(shift_bbox(inside, [-o for o in rel]))] = work[
                bbox_to_slices(shift_bbox(inside, [-o for o in work_offset]))
            ]
        return [(changed, values)]

    def _write_back(
        self,
        work: np.ndarray,
        work_offset: Sequence[int],
        patches: Sequence[BBox],
        group: Sequence[int],
        pending: accel.Pending,
        control: RunControl,
    ) -> None:
        """Collect a refinement pass and write each patch's prediction into the working copy."""
        for i, fine in zip(group, self._collect(pending, control)):  # disjoint boxes: the order is free
            copy_into(work[bbox_to_slices(shift_bbox(patches[i], [-o for o in work_offset]))], fine)

    @property
    def device(self) -> torch.device:
        """Where forward passes run: the network's own device, so engines sharing one model move together."""
        network = self.model.network
        if isinstance(network, torch.nn.Module):
            for param in network.parameters():
                return param.device
        return self._device

    @device.setter
    def device(self, device: torch.device) -> None:
        self._device = device

    def fall_back_to_cpu(self) -> bool:
        """After the accelerator ran out of memory: free it and run on the CPU from now on.

        The model's network moves, so every engine sharing it (the sessions of a server) follows.
        """
        if self.device.type == "cpu":
            return False
        gpu = self.device
        self.model.network.to("cpu")
        self._device = torch.device("cpu")
        accel.set_memory_format(self.model.network, self.channels_last)  # the CPU's layout (by default contiguous)
        if self.compiled is not None:  # the graphs were built for the accelerator: run the CPU eagerly
            self.compiled, self.refine_batch = None, self._eager_batch
        self._pinned_buffers = []
        if gpu.type == "cuda":
            torch.cuda.empty_cache()
        return True

    def describe(self) -> str:
        """One line for logs and the UI."""
        m = self.model
        where = f" from {m.folder}" if m.folder else ""
        return f"{self.name}{where} on {self.device.type}, patch {m.patch_size}, AutoZoom {'on' if self.autozoom.enabled else 'off'}"
