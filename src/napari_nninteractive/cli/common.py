"""What every command line shares: the one guard that turns user errors into one line."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core.api import SegmentationSession
    from ..core.engines.base import Engine


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The engine options every command that segments shares (choices from the engine registry)."""
    from ..core.engines.registry import DEVICE_CHOICES, ENGINE_CHOICES, engine_help

    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="MODEL_DIR",
        help="nnInteractive model folder (holds plans.json, dataset.json, fold_0/); "
        "without it the weight-free engine segments (no download needed)",
    )
    parser.add_argument("--engine", default="auto", choices=ENGINE_CHOICES, help=engine_help())
    parser.add_argument(
        "--device",
        default="auto",
        choices=DEVICE_CHOICES,
        help="where the network runs (default auto: CUDA, then MPS, then CPU)",
    )
    parser.add_argument("--fold", default=None, help="fold to load when the model folder has several")
    parser.add_argument(
        "--no-autozoom",
        action="store_true",
        help="AutoZoom off: no zoom-out loop. A point gets one forward pass at zoom 1; a box, scribble, lasso or "
        "mask still starts at the zoom its size needs and is refined at full resolution",
    )
    parser.add_argument(
        "--cpu-bf16",
        action="store_true",
        help="network on the CPU: bfloat16 autocast instead of float32 (faster only on CPUs with "
        "native bf16, e.g. AMX/AVX512-BF16; masks may differ slightly)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="network: compile it with torch.compile before the first prompt (a one-off wait of seconds to "
        "minutes; faster passes mostly on a CUDA GPU; cancel then stops between passes)",
    )
    parser.add_argument(
        "--fusion",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="multi-round result fusion after every correction: per slice, keep the previous mask or the new "
        "one, whichever the prompts and the image support (fewer corrections that make the mask worse, but "
        "slower gains; default off). Runs in this process, so not with --server",
    )
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="DANGEROUS: load a checkpoint that names Python objects beyond tensors and numpy values by "
        "allowing exactly the objects it names, which can run code the file's author put in it. Only for "
        "files from a source you trust; by default such a checkpoint is refused",
    )


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """``--server`` and ``--api-key``: segment on an nnInteractive server instead of in this process."""
    parser.add_argument(
        "--server",
        action="append",
        default=None,
        metavar="URL",
        help="segment on an nnInteractive server (nninteractive-serve, or the reference's nninteractive-server), "
        "e.g. http://gpu-box:1527; give it more than once (or comma-separated) for a pool: the first server with "
        "a free session is used. The server's model runs; --model, --engine, --device, --fold, --cpu-bf16, "
        "--compile and --trust-checkpoint do not apply",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="the server's API key (default: the NN_INTERACTIVE_API_KEY environment variable, which other users "
        "of this machine cannot read from the process list)",
    )


def engine_from_args(args: argparse.Namespace) -> Engine:
    """The engine the options of :func:`add_engine_arguments` ask for."""
    from ..core.engines.registry import make_engine

    return make_engine(
        args.model,
        args.engine,
        args.device,
        not args.no_autozoom,
        args.fold,
        args.cpu_bf16,
        args.trust_checkpoint,
        args.compile,
    )


@contextlib.contextmanager
def session_from_args(args: argparse.Namespace) -> Iterator[SegmentationSession]:
    """The session the options ask for: on ``--server`` (released on exit), or an engine here."""
    from ..core.errors import UserError

    if getattr(args, "server", None):
        local = [
            flag
            for flag, given in (
                ("--model", args.model is not None),
                ("--engine", args.engine != "auto"),
                ("--device", args.device != "auto"),
                *((flag, given) for flag, _, given in _network_options(args)),
                ("--fusion/--no-fusion", getattr(args, "fusion", None) is not None),
            )
            if given
        ]
        if local:
            raise UserError(
                f"{', '.join(local)} choose the engine in this process, but --server segments with the server's "
                "model; drop one or the other."
            )
        from ..core.remote.client import RemoteSession

        remote = RemoteSession(args.server, args.api_key, autozoom=False if args.no_autozoom else None)
        try:
            yield remote
        finally:
            remote.close()
        return
    from ..core.session import Session

    for note in unused_options(args):
        print(f"note: {note}", file=sys.stderr, flush=True)
    yield Session(engine_from_args(args), fusion=bool(getattr(args, "fusion", None)))


def _network_options(args: argparse.Namespace) -> list[tuple[str, str, bool]]:
    """``(flag, registry option, given)`` of the options only the network uses (``EngineInfo.options``)."""
    return [
        ("--fold", "fold", args.fold is not None),
        ("--cpu-bf16", "cpu_bf16", args.cpu_bf16),
        ("--compile", "compile", args.compile),
        ("--trust-checkpoint", "trust_checkpoint", args.trust_checkpoint),
    ]


def unused_options(args: argparse.Namespace) -> list[str]:
    """What the options say that the chosen local engine does not use (said, not refused: nothing goes wrong)."""
    from ..core.engines.registry import resolve

    info = resolve(args.engine, args.model)
    unused = [
        flag
        for flag, option, given in (
            ("--device", "device", args.device not in ("auto", "cpu")),  # the CPU is where the others run
            *_network_options(args),
        )
        if given and option not in info.options
    ]
    notes = []
    if unused:
        notes.append(
            f"{', '.join(unused)} {'applies' if len(unused) == 1 else 'apply'} to the network engine only; the "
            f"{info.name} engine runs on the CPU without {'it' if len(unused) == 1 else 'them'}"
            + (" (give --model DIR for the network)." if not info.needs_model else ".")
        )
    if getattr(args, "api_key", None) is not None and not getattr(args, "server", None):
        notes.append("--api-key is for --server; without it the key is not used.")
    return notes


def guarded(
    prog: str,
    run_fn: Callable[[argparse.Namespace], int],
    args: argparse.Namespace,
    extra_errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Run ``run_fn(args)``: the one guard of every command line.

    One of :data:`~..core.errors.USER_ERRORS` (a ``UserError``: anything the user can fix, or an
    ``OSError`` of the file system) or running out of memory prints one line naming the fix and exits 2, with no
    traceback. Anything else is a bug: its traceback is printed with a request to report it
    (exit 1).
    """
    from ..core.errors import REPORT_BUG, USER_ERRORS, user_message

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return run_fn(args)
    except (*USER_ERRORS, *extra_errors) as exc:
        print(f"{prog}: error: {user_message(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{prog}: error: out of memory; close other programs, or crop or downsample the image.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(f"{prog}: {REPORT_BUG}", file=sys.stderr)
        return 1
