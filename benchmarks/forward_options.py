"""CPU forward-pass options for the full-size nnInteractive network, measured in one run.

Builds the v1.0 architecture (102 M parameters) with random weights through the official folder
format, feeds one random 1 x 8 x 192^3 input and times a forward pass for each option:

- float32, contiguous, PyTorch choosing each convolution kernel (the reference's way);
- float32 with every convolution through oneDNN (``onednn``, the engine's CPU default: PyTorch's own
  choice takes its single-threaded ``slow_conv3d`` for a batch of one where channels x depth x height
  is at most 20,480, e.g. the deepest layers; see core/onednn.py);
- float32, channels-last 3-D memory format (network and input);
- bfloat16 autocast (only useful on CPUs with native bf16; shown for the record);
- float32 with 1 thread instead of all cores;
- TorchScript: traced and frozen (``jit_freeze``), then ``torch.jit.optimize_for_inference`` (``jit_optimize``,
  oneDNN convolutions), and the oneDNN Graph fuser on the frozen trace (``jit_onednn``).

One untimed pass warms the process up first (its first pass sets up oneDNN and allocates: ~15 %
slower). TorchScript options are traced once and warmed up (two passes, untimed: the profiling
executor specialises on them); every option is timed ``--repeats`` times and the fastest counts.

For every option it prints seconds, the ratio to the default, and how the argmax mask agrees with
the float32 one (Dice, changed voxels, and whether the logits are bit-identical), which decides whether an option may become the default
(spec: Dice >= 0.99). Each pass takes about a minute on 2 cores.

    python benchmarks/forward_options.py [--patch 192] [--repeats 1]
        [--options fp32,onednn,channels_last,bf16,threads1,jit_freeze,jit_optimize,jit_onednn]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_nninteractive.core.model import load_model_folder
from napari_nninteractive.core.onednn import install, onednn_convolutions
from napari_nninteractive.testing import tiny_architecture, v1_architecture, write_model_folder

JIT_OPTIONS = ("jit_freeze", "jit_optimize", "jit_onednn")


def scripted(net, x, option: str):
    """The network traced and frozen for ``option`` (and warmed up)."""
    torch.jit.enable_onednn_fusion(option == "jit_onednn")
    with torch.inference_mode(False), torch.no_grad():
        module = torch.jit.freeze(torch.jit.trace(net, x, check_trace=False).eval())
        if option == "jit_optimize":
            module = torch.jit.optimize_for_inference(module)
        for _ in range(2):
            module(x)
    return module


def forward(net, x, option: str, repeats: int) -> tuple[float, np.ndarray]:
    threads = torch.get_num_threads()
    if option == "threads1":
        torch.set_num_threads(1)
    if option == "channels_last":
        net = net.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    if option in JIT_OPTIONS:
        net = scripted(net, x, option)
    try:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            with torch.no_grad(), onednn_convolutions(option == "onednn"):
                if option == "bf16":
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        logits = net(x)
                else:
                    logits = net(x)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
        torch.jit.enable_onednn_fusion(False)
        if isinstance(net, torch.nn.Module) and not isinstance(net, torch.jit.ScriptModule):
            net.to(memory_format=torch.contiguous_format)
    return best, logits.float()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patch", type=int, default=192)
    ap.add_argument("--tiny", action="store_true", help="the tiny test network (a quick check of the script)")
    ap.add_argument("--options", default="fp32,onednn,channels_last,bf16,threads1," + ",".join(JIT_OPTIONS))
    ap.add_argument("--repeats", type=int, default=1, help="timed passes per option; the fastest counts")
    args = ap.parse_args()
    folder = write_model_folder(
        Path(tempfile.mkdtemp()) / "model", tiny_architecture() if args.tiny else v1_architecture(), (args.patch,) * 3
    )
    net = load_model_folder(folder).network.eval()
    install(net)  # the layers take oneDNN only under the "onednn" option
    params = sum(p.numel() for p in net.parameters())
    x = torch.randn((1, 8) + (args.patch,) * 3, generator=torch.Generator().manual_seed(0))
    print(
        f"network {params:,} parameters, input {tuple(x.shape)}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, oneDNN {torch.backends.mkldnn.is_available()}",
        flush=True,
    )
    with torch.no_grad():  # untimed: the first pass of a process also sets up oneDNN and allocates (~15 % more)
        net(x)
    ref = None
    base = None
    for option in args.options.split(","):
        try:
            secs, logits = forward(net, x, option, args.repeats)
        except RuntimeError as exc:  # an option this torch build or CPU does not support
            print(f"  {option:<14} failed: {str(exc).splitlines()[0][:120]}", flush=True)
            continue
        mask = (logits[0, 1] > logits[0, 0]).numpy()
        if ref is None:
            ref, base, ref_logits = mask, secs, logits
        inter = np.logical_and(ref, mask).sum()
        dice = 2 * inter / max(1, ref.sum() + mask.sum())
        print(
            f"  {option:<14} {secs:7.2f} s  {base / secs:5.2f}x vs {args.options.split(',')[0]}   "
            f"mask Dice {dice:.5f}, {int((ref != mask).sum())} voxels differ, logits "
            + (
                "bit-identical"
                if torch.equal(logits, ref_logits)
                else f"max diff {(logits - ref_logits).abs().max():.1e}"
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
