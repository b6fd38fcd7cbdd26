"""``nninteractive-serve``: the nnInteractive inference server (remote protocol 2.6.0) for a GPU machine."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ..core.remote.protocol import API_KEY_ENV as KEY_ENV

PROG = "nninteractive-serve"
LOG_LEVELS = ("debug", "info", "warning", "error")

EPILOG = f"""\
Clients: the napari widget's server field, nninteractive-segment --server URL, or the reference's
nnInteractiveRemoteInferenceSession (nninteractive-client 2.6.0) unchanged. Each client claims a
session (up to --max-sessions at once); a session whose client stops heartbeating for
--liveness-timeout seconds, or does nothing for --idle-timeout seconds, is dropped. Every request
gives one JSON log line (never image data or the key); GET /metrics serves Prometheus metrics.

Examples:
  # a GPU machine serving the lab network, with TLS and a key (keep the key out of the process list):
  export {KEY_ENV}=$(openssl rand -hex 24)
  {PROG} --model ~/models/nnInteractive_v1.0 --device cuda --host 0.0.0.0 \\
      --ssl-certfile /etc/ssl/gpu-box.pem --ssl-keyfile /etc/ssl/gpu-box.key
  # then, on a laptop with the same {KEY_ENV}:
  nninteractive-segment ct.nii.gz --prompts prompts.json --server https://gpu-box:1527 -o mask.nii.gz

  # try a client on this machine without any model (weight-free engine, CPU):
  {PROG}
"""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Serve nnInteractive segmentation over HTTP (the nnInteractive remote protocol 2.6.0):\n"
        "one model loaded once, several independent sessions, every network pass on one device thread.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--model", type=Path, metavar="MODEL_DIR", help="nnInteractive model folder (needed by --engine network)"
    )
    ap.add_argument("--fold", default=None, help="fold to load when the model folder has several")
    ap.add_argument(
        "--engine",
        choices=("network", "weight-free"),
        default=None,
        help="network: the nnInteractive network of --model; weight-free: seeded watershed, no model, CPU "
        "(default: network when --model is given, else weight-free)",
    )
    ap.add_argument(
        "--device",
        default="auto",
        help="where the network runs: auto (CUDA, then MPS, then CPU), cuda, cuda:1, cpu, mps",
    )
    ap.add_argument(
        "--compile",
        action="store_true",
        help="compile the network with torch.compile at start (a one-off wait of seconds to minutes before the "
        "server listens; faster passes mostly on CUDA; a cancel then stops between passes)",
    )
    ap.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all interfaces)"
    )
    ap.add_argument("--port", type=int, default=1527, help="port (default 1527)")
    ap.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help=f"require 'Authorization: Bearer KEY' (default: ${KEY_ENV}; prefer it, the command line is visible "
        "to other users of this machine)",
    )
    ap.add_argument("--max-sessions", type=int, default=3, help="sessions at once (default 3)")
    ap.add_argument(
        "--idle-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="drop a session with no action for this long (default 600)",
    )
    ap.add_argument(
        "--liveness-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="drop a session with no request for this long (default 60)",
    )
    ap.add_argument(
        "--no-autozoom", action="store_true", help="sessions start with AutoZoom off (clients may switch it on)"
    )
    ap.add_argument("--no-undo", action="store_true", help="no undo/redo for any session (saves memory)")
    ap.add_argument("--ssl-certfile", metavar="PEM", help="serve HTTPS with this certificate (needs --ssl-keyfile)")
    ap.add_argument("--ssl-keyfile", metavar="PEM", help="private key of --ssl-certfile")
    ap.add_argument(
        "--max-upload-mb",
        type=float,
        default=4096,
        metavar="MB",
        help="largest image or mask upload, in MiB (default 4096)",
    )
    ap.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="DANGEROUS: load a checkpoint that names Python objects beyond tensors and numpy values (they can run "
        "code from the file); only for files from a source you trust",
    )
    ap.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="info (default) logs one JSON line per request"
    )
    return ap


def _setup_logging(level: str) -> None:
    """Our JSON lines go to stderr as they are; everything else as the guard formats it."""
    from ..server.observe import EVENTS

    value = getattr(logging, level.upper())
    logging.getLogger().setLevel(value)
    if not any(getattr(h, "name", None) == PROG for h in EVENTS.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(PROG)
        handler.setFormatter(logging.Formatter("%(message)s"))
        EVENTS.addHandler(handler)
    EVENTS.propagate = False  # the lines are JSON already
    EVENTS.setLevel(value)


def run(args: argparse.Namespace) -> int:
    from ..core.errors import UserError
    from ..server import ServerConfig, network_source, serve, weight_free_source
    from ..server.config import MiB

    engine = args.engine or ("network" if args.model is not None else "weight-free")
    if engine == "network" and args.model is None:
        raise UserError("--engine network needs --model MODEL_DIR (or use --engine weight-free).")
    if engine == "weight-free" and (args.model is not None or args.fold is not None or args.compile):
        raise UserError(
            "--model, --fold and --compile are for the network; drop them or use --engine network with --model."
        )
    if not args.max_upload_mb > 0:
        raise UserError(f"--max-upload-mb must be positive, not {args.max_upload_mb:g}.")
    config = ServerConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key or os.environ.get(KEY_ENV) or None,
        max_sessions=args.max_sessions,
        idle_timeout=args.idle_timeout,
        liveness_timeout=args.liveness_timeout,
        autozoom=not args.no_autozoom,
        undo=not args.no_undo,
        max_upload_bytes=int(args.max_upload_mb * MiB),
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    for warning in config.validate():
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    _setup_logging(args.log_level)
    if engine == "network":
        source = network_source(
            args.model, args.fold, args.device, config.autozoom, args.trust_checkpoint, compile=args.compile
        )
    else:
        source = weight_free_source()
    facts = source.facts
    print(
        f"{PROG}: serving {config.url} | {facts.description} | licence: {facts.licence or 'unknown'} | "
        f"up to {config.max_sessions} sessions, undo {'on' if config.undo else 'off'}, "
        f"{'key required' if config.api_key else 'no key'}",
        flush=True,
    )
    serve(config, source)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``nninteractive-serve``; user errors print one line and exit 2."""
    from .common import guarded

    return guarded(PROG, run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
