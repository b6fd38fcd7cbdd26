"""How the network's passes use their device: the how, not the what.

None of these settings is meant to change a mask; on the CPU the tests compare each with the plain path
and find the same masks (logits agree to float32 rounding, about 1e-7). Under CUDA float16 other kernels
may round near-tied voxels differently; that has not been measured here (no GPU was available).

* **Pinned host memory and asynchronous copies** (CUDA): input buffers are page-locked and kept by the
  engine across predictions, so the copy to the GPU needs no staging copy and does not block the thread
  that queued it.
* **Channels-last 3-D** (CUDA by default): the network's weights and each input in the
  ``channels_last_3d`` memory format, the layout the GPU's tensor-core convolutions read directly.
* **torch.compile** (a setting, off by default): the network compiled once per model, device and
  precision, and warmed up when the engine is made (on the loading worker in the widget, at start in
  the server), so no prediction waits for the compiler. Compiled passes check for cancellation between
  passes, not inside them (a hook per convolution would break the compiled graph).

The engine (:class:`~.network.NetworkEngine`) overlaps each refinement pass with building the next
pass's input; :class:`Pending` is the pass in flight.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


def host_zeros(shape: tuple[int, ...], pinned: bool) -> torch.Tensor:
    """An all-zero float32 host tensor: page-locked when ``pinned``, else calloc'd by numpy (pages never written
    are never touched; ``torch.zeros`` would fill them all)."""
    if pinned:
        return torch.zeros(shape, dtype=torch.float32, pin_memory=True)
    return torch.from_numpy(np.zeros(shape, np.float32))


def asynchronous(device: torch.device) -> bool:
    """Whether a pass on ``device`` may still run after the call that queued it returned (all but the CPU)."""
    return device.type != "cpu"


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """``x`` on ``device`` (asynchronous from pinned memory), in channels-last 3-D layout if asked.

    The caller keeps ``x`` unchanged until the pass that reads the copy is collected.
    """
    out = x.to(device, non_blocking=asynchronous(device) and x.is_pinned())
    if channels_last and out.dim() == 5:
        out = out.contiguous(memory_format=torch.channels_last_3d)
    return out


def set_memory_format(net: object, channels_last: bool) -> None:
    """Put ``net``'s 5-D parameters in channels-last 3-D (or back to contiguous); other networks are left alone."""
    if isinstance(net, torch.nn.Module):
        net.to(memory_format=torch.channels_last_3d if channels_last else torch.contiguous_format)  # type: ignore[call-overload]


def compiled(cache: MutableMapping[Any, Any], net: Any, key: tuple[Any, ...]) -> Callable[..., Any]:
    """``torch.compile(net, backend=key[0])``, made once per ``key`` and kept in ``cache``.

    ``cache`` belongs to the model (:attr:`~..model.LoadedModel.compiled_forms`), so it goes when the model goes
    (a module-level cache would keep every network alive: the compiled form holds its network). ``key`` is
    ``(backend, device, precision)``: a graph compiled for one of them is not reused for another.
    Compiling is lazy: the first pass of each input shape builds the code (the engine warms it up).
    Callables that are not modules are returned as they are.
    """
    if not isinstance(net, torch.nn.Module):
        return net  # type: ignore[no-any-return]
    if key not in cache:
        cache[key] = torch.compile(net, backend=key[0])
    return cache[key]  # type: ignore[no-any-return]


def is_compile_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from ``torch.compile`` (tracing or the backend), not from the network itself."""
    dynamo = getattr(getattr(torch, "_dynamo", None), "exc", None)
    base = getattr(dynamo, "TorchDynamoException", None)
    return isinstance(base, type) and isinstance(exc, base)


def compile_cause(exc: BaseException) -> str:
    """The first line of what made ``torch.compile`` fail (the backend's own exception where it has one)."""
    inner = getattr(exc, "inner_exception", None) or exc
    text = str(inner).strip()
    return f"{type(inner).__name__}: {text.splitlines()[0][:300]}" if text else type(inner).__name__


@dataclass
class Pending:
    """A pass in flight: its logits on the device (on an accelerator possibly still being computed)."""

    logits: torch.Tensor | None
    _masks: list[np.ndarray] | None = field(default=None, repr=False)

    def masks(self) -> list[np.ndarray]:
        """Wait for the pass and return one 0/1 uint8 array per sample (the argmax of the two classes)."""
        if self._masks is None:
            assert self.logits is not None
            fg = (self.logits[:, 1] > self.logits[:, 0]).contiguous()  # a no-op unless the pass ran channels-last
            # the argmax as bools read as 0/1 bytes (no copy)
            self._masks, self.logits = list(fg.cpu().view(torch.uint8).numpy()), None
        return self._masks

    def wait(self) -> None:
        """Block until the pass is done with its input (before the input's buffer may be written again)."""
        if self.logits is not None and self.logits.device.type == "cuda":
            torch.cuda.synchronize(self.logits.device)


__all__ = [
    "Pending",
    "asynchronous",
    "compile_cause",
    "compiled",
    "host_zeros",
    "is_compile_error",
    "set_memory_format",
    "to_device",
]
