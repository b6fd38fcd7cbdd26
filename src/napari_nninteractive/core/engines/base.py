"""The small interface every segmentation engine implements, plus progress and cancel plumbing.

A :class:`~napari_nninteractive.core.session.Session` owns the image, the object's mask, the
queue of prompts and the undo history; an :class:`Engine` owns its prompt encoding and computes
mask updates. Engines never write the mask themselves: they return ``(bbox, values)`` regions,
so a cancelled or failed prediction leaves the mask untouched.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..geometry import BBox
from ..lazy import ImageArray
from ..prompts import Prompt, PromptKind


class PredictionCancelled(Exception):
    """Raised inside a prediction when the caller's ``should_cancel`` returned True."""


class EngineError(UserError, RuntimeError):
    """A prediction that failed for a reason the user can act on (the message says how)."""


class GpuOutOfMemory(EngineError):
    """The accelerator ran out of memory; :meth:`Engine.fall_back_to_cpu` may let the prediction go on."""


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a prediction: ``step`` of ``total`` (``None`` while unknown)."""

    stage: str  # "zoom" | "refine" | "predict"
    step: int
    total: int | None
    message: str
    zoom: float | None = None


@dataclass
class RunControl:
    """Plain callables for progress and cancellation (no Qt, no tqdm)."""

    progress: Callable[[ProgressEvent], None] | None = None
    should_cancel: Callable[[], bool] | None = None

    def check(self) -> None:
        """Raise :class:`PredictionCancelled` if cancellation was asked for."""
        if self.should_cancel is not None and self.should_cancel():
            raise PredictionCancelled("prediction cancelled")

    def report(self, stage: str, step: int, total: int | None, message: str, zoom: float | None = None) -> None:
        """Send a progress event, if anyone listens."""
        if self.progress is not None:
            self.progress(ProgressEvent(stage, step, total, message, zoom))


Update = tuple[BBox, np.ndarray]


class Engine(abc.ABC):
    """What a session needs from a segmentation method."""

    #: Short human-readable name, e.g. ``"nnInteractive network"``.
    name: str = "engine"
    #: Prompt kinds this engine understands.
    supported_kinds: frozenset[PromptKind] = frozenset(PromptKind)
    #: Whether boxes may be 3-D (no axis of extent 1).
    supports_3d_box: bool = False
    #: Image channels the engine needs, or ``None`` for any number.
    n_image_channels: int | None = None
    #: Forward passes (or equivalent solver runs) of the last ``predict``.
    forward_passes: int = 0
    #: What :attr:`forward_passes` counts, in words.
    pass_name: str = "forward pass"
    #: Messages for the user about the last ``predict`` (e.g. a result it refused); the session passes them on.
    notices: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for logs and the UI."""
        return self.name

    def fall_back_to_cpu(self) -> bool:
        """Move the work to the CPU after :class:`GpuOutOfMemory`; False when already there."""
        return False

    @abc.abstractmethod
    def set_image(self, image: ImageArray) -> None:
        """Take a channel-first ``(C, Z, Y, X)`` image (never modify it); forget all prompts."""

    @abc.abstractmethod
    def _record(self, prompt: Prompt) -> None:
        """Record one validated prompt (an :class:`InitialMask` resets the prompts)."""

    @abc.abstractmethod
    def clear_prompts(self) -> None:
        """Forget every prompt of the current object."""

    def load_prompts(self, prompts: Sequence[Prompt]) -> None:
        """Replace the prompt state by ``prompts`` (validated), without predicting: an object restored."""
        self.clear_prompts()
        for prompt in prompts:
            self._record(prompt)

    @abc.abstractmethod
    def get_state(self) -> object:
        """Cheap immutable snapshot of the prompt state, for undo."""

    @abc.abstractmethod
    def set_state(self, state: object) -> None:
        """Restore a snapshot from :meth:`get_state`."""

    def predict(self, mask: np.ndarray, prompts: Sequence[Prompt], control: RunControl) -> list[Update]:
        """Record the new ``prompts`` (each reaches the engine once, here) and compute the object's mask.

        ``mask`` is the current 0/1 mask (read only). Returns regions to write, in order. A caller
        whose prediction was cancelled or failed restores the prompt state with :meth:`set_state`.
        """
        self.notices = ()
        for prompt in prompts:
            self._record(prompt)
        return self._predict(mask, prompts, control)

    @abc.abstractmethod
    def _predict(self, mask: np.ndarray, new: Sequence[Prompt], control: RunControl) -> list[Update]:
        """The mask after the recorded prompts, of which ``new`` are the newest (not empty).

        Call ``control.check()`` between expensive steps.
        """
