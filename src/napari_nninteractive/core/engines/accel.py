"""How the network's passes use their device: the how, never the what (no setting here changes a mask).

* **Pinned host memory and asynchronous copies** (CUDA): input buffers are page-locked, so the copy to the
  GPU runs without an extra staging copy and without blocking the thread that queued it.
* **Channels-last 3-D** (CUDA by default): the network's weights and each input in the
  ``channels_last_3d`` memory format, the layout the GPU's tensor-core convolutions read directly. The
  values are the same computation in another order of memory (on the CPU, where tests check it, bit for
  bit; under CUDA float16 to the kernels' rounding).
* **torch.compile** (a setting, off by default): the network compiled once per process and per network
  object, and warmed up when the engine is made (on the loading worker in the widget, at start in the
  server), so no prediction waits for the compiler. Compiled passes check for cancellation between
  passes, not inside them (a hook per convolution would break the compiled graph).

The engine (:class:`~.network.NetworkEngine`) overlaps each refinement pass with building the next
pass's input; :class:`Pending` is the pass in flight.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

#: The compiled form of each network object, per backend (sessions of a server share one network).
_COMPILED: weakref.WeakKeyDictionary[torch.nn.Module, dict[str, Callable[..., Any]]] = weakref.WeakKeyDictionary()


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
    out = x.to(device, non_blocking=device.type != "cpu" and x.is_pinned())
    if channels_last and out.dim() == 5:
        out = out.contiguous(memory_format=torch.channels_last_3d)
    return out


def set_memory_format(net: object, channels_last: bool) -> None:
    """Put ``net``'s 5-D parameters in channels-last 3-D (or back to contiguous); other networks are left alone."""
    if isinstance(net, torch.nn.Module):
        net.to(memory_format=torch.channels_last_3d if channels_last else torch.contiguous_format)  # type: ignore[call-overload]


def is_compiled(net: Any, backend: str) -> bool:
    """Whether :func:`compiled` made ``net``'s compiled form for ``backend`` already (then it is warm)."""
    return isinstance(net, torch.nn.Module) and backend in _COMPILED.get(net, {})


def compiled(net: Any, backend: str = "inductor") -> Callable[..., Any]:
    """``torch.compile(net)``, made once per network object and backend (compiling is lazy: the first pass
    of each input shape builds the code; the engine warms it up). Callables that are not modules are
    returned as they are."""
    if not isinstance(net, torch.nn.Module):
        return net  # type: ignore[no-any-return]
    per_backend = _COMPILED.setdefault(net, {})
    if backend not in per_backend:
        per_backend[backend] = torch.compile(net, backend=backend)
    return per_backend[backend]


def forget_compiled(net: Any, backend: str) -> None:
    """Drop ``net``'s compiled form for ``backend`` (after it failed to build)."""
    if isinstance(net, torch.nn.Module):
        _COMPILED.get(net, {}).pop(backend, None)


@dataclass
class Pending:
    """A pass in flight: its logits on the device (on CUDA still being computed) and how many samples."""

    logits: torch.Tensor

    def masks(self) -> list[np.ndarray]:
        """Wait for the pass and return one 0/1 uint8 array per sample (the argmax of the two classes)."""
        fg = (self.logits[:, 1] > self.logits[:, 0]).contiguous()  # a no-op unless the pass ran channels-last
        # the argmax as bools read as 0/1 bytes (no copy)
        return list(fg.cpu().view(torch.uint8).numpy())


__all__ = [
    "Pending",
    "asynchronous",
    "compiled",
    "forget_compiled",
    "host_zeros",
    "is_compiled",
    "set_memory_format",
    "to_device",
]
