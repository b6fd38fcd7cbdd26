"""CPU float32 3-D convolutions through oneDNN at every layer and batch size.

PyTorch picks the CPU convolution kernel per call: oneDNN (``mkldnn_convolution``) for batches of two
or more, but for a batch of one it falls back to its own im2col kernel (``slow_conv3d``) whenever
``channels x depth x height`` is at most 20,480 (its heuristic ignores the width). That is most
layers of a small network on 64^3 or 32^3 patches, and the deepest layers of the full one. The
fallback runs on one thread and took 3.6x as long for the tiny test network's 64^3 pass on 2 cores.

Inside :func:`onednn_convolutions` every ``Conv3d`` of an installed network calls oneDNN directly
on CPU float32 input, as a batch of two would. The values agree with the fallback's to float32
rounding (about 1e-6 of the logits); a batched refinement pass already used oneDNN, so with this a
patch gives the same logits alone or in a batch. Elsewhere (CUDA, MPS, autocast, other dtypes) the
layers run as PyTorch chooses.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

_state = threading.local()  # per thread: two sessions may share one network and differ in the setting
#: Measured on x86-64 only (benchmarks/forward_options.py); elsewhere PyTorch keeps its own choice.
SUPPORTED_MACHINE = platform.machine().lower() in ("x86_64", "amd64")


def _enabled() -> bool:
    return bool(getattr(_state, "on", False))


def _compiling() -> bool:
    """Inside ``torch.compile``'s tracing the compiler picks the kernels (it cannot trace this direct call)."""
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling()) if callable(is_compiling) else False


def _cpu_autocast() -> bool:
    try:
        return bool(torch.is_autocast_enabled("cpu"))
    except TypeError:  # torch < 2.4 takes no device
        return bool(torch.is_autocast_cpu_enabled())


class OneDNNConv3d(nn.Conv3d):
    """A ``Conv3d`` that, inside :func:`onednn_convolutions`, calls oneDNN for CPU float32 batches (same weights)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            _enabled()
            and x.dim() == 5
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and torch.backends.mkldnn.enabled
            and not _cpu_autocast()
            and not _compiling()
        ):
            out: torch.Tensor = torch.ops.aten.mkldnn_convolution(
                x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups
            )
            return out
        return super().forward(x)


def install(net: object) -> int:
    """Let ``net``'s plain ``Conv3d`` layers take oneDNN inside :func:`onednn_convolutions`; returns how many.

    Each such layer becomes a :class:`OneDNNConv3d` (its class changes; parameters, buffers and hooks stay).
    Layers with padding other than zeros (or given as a string) are left alone. Installing twice is harmless;
    on a CPU other than x86-64, or without oneDNN, nothing is installed.
    """
    if not isinstance(net, nn.Module) or not SUPPORTED_MACHINE or not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return 0
    n = 0
    for m in net.modules():
        if isinstance(m, nn.Conv3d) and m.padding_mode == "zeros" and not isinstance(m.padding, str):
            if type(m) is nn.Conv3d:
                m.__class__ = OneDNNConv3d
            n += type(m) is OneDNNConv3d
    return n


@contextmanager
def onednn_convolutions(enabled: bool = True) -> Iterator[None]:
    """While inside, installed layers run on this thread through oneDNN (see the module docstring)."""
    before = _enabled()
    _state.on = enabled
    try:
        yield
    finally:
        _state.on = before


__all__ = ["OneDNNConv3d", "install", "onednn_convolutions"]
