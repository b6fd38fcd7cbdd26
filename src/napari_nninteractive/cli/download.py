"""``nninteractive-download-model``: fetch the nnInteractive weights into the cache (or report it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROG = "nninteractive-download-model"


def build_parser() -> argparse.ArgumentParser:
    from ..core.hub import DEFAULT_MODEL, LICENCE_NOTE

    ap = argparse.ArgumentParser(
        prog=PROG,
        description=f"Download {DEFAULT_MODEL} (about 410 MB; {LICENCE_NOTE}) from Hugging Face into the "
        "cache, resuming a partial download, and print the folder to pass to --model or the widget. "
        "Offline, a cached copy is reused.",
    )
    ap.add_argument("--name", default=DEFAULT_MODEL, help=f"model folder in the repository (default {DEFAULT_MODEL})")
    ap.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where models are kept, created if needed (default $NNINTERACTIVE_HOME or ~/.cache/napari-nninteractive)",
    )
    ap.add_argument(
        "--list",
        action="store_true",
        help="list the model folders of the Hugging Face repository and of the cache, then exit "
        "(offline or with HF_HUB_OFFLINE=1: the cached ones, within a few seconds)",
    )
    return ap


def run(args: argparse.Namespace) -> int:
    """List or download as ``args`` say; a :class:`~.core.hub.DownloadError` propagates to the guard."""
    from ..core.hub import DownloadCancelled, cache_dir, download_model, list_models

    if args.list:
        listing = list_models(args.cache_dir)
        for name in listing.names:
            where = [w for w, names in (("repository", listing.remote), ("cached", listing.cached)) if name in names]
            if where:  # offline, only the cached models are listed; the note says so
                print(f"{name}\t{', '.join(where)}")
        if listing.note:
            print(listing.note, file=sys.stderr)
        return 0
    shown = False

    def progress(done: int, total: int | None) -> None:
        nonlocal shown
        shown = True
        text = f"{done / 1e6:.0f} MB" + (f" of {total / 1e6:.0f} MB" if total else "")
        print(f"\rdownloading: {text}", end="", file=sys.stderr, flush=True)

    try:
        try:
            folder = download_model(args.name, args.cache_dir, progress)
        finally:
            if shown:
                print(file=sys.stderr)  # end the progress line before any other message
    except (DownloadCancelled, KeyboardInterrupt):
        print(f"{PROG}: interrupted; run again to resume into {cache_dir(args.cache_dir)}", file=sys.stderr)
        return 130
    print(folder)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``nninteractive-download-model``; user errors print one line and exit 2."""
    from .common import guarded

    return guarded(PROG, run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
