"""``nninteractive-download-model``: fetch the nnInteractive weights into the cache (or report it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from .core.hub import (DEFAULT_MODEL, LICENCE_NOTE, DownloadCancelled, DownloadError, cache_dir, download_model,
                           list_models)

    ap = argparse.ArgumentParser(
        prog="nninteractive-download-model",
        description=f"Download {DEFAULT_MODEL} (about 410 MB; {LICENCE_NOTE}) from Hugging Face into the "
        "cache, resuming a partial download, and print the folder to pass to --model or the widget. "
        "Offline, a cached copy is reused.")
    ap.add_argument("--name", default=DEFAULT_MODEL, help=f"model folder in the repository (default {DEFAULT_MODEL})")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="where models are kept (default $NNINTERACTIVE_HOME or ~/.cache/napari-nninteractive)")
    ap.add_argument("--list", action="store_true",
                    help="list the model folders of the Hugging Face repository and of the cache, then exit")
    args = ap.parse_args(argv)
    if args.list:
        listing = list_models(args.cache_dir)
        for name in listing.names:
            where = [w for w, names in (("repository", listing.remote), ("cached", listing.cached)) if name in names]
            print(f"{name}\t{', '.join(where) or 'default name (not listed)'}")
        if listing.note:
            print(listing.note, file=sys.stderr)
        return 0

    def progress(done: int, total: int | None) -> None:
        text = f"{done / 1e6:.0f} MB" + (f" of {total / 1e6:.0f} MB" if total else "")
        print(f"\rdownloading: {text}", end="", file=sys.stderr, flush=True)

    try:
        folder = download_model(args.name, args.cache_dir, progress)
    except DownloadError as exc:
        print(f"\nnninteractive-download-model: error: {exc}", file=sys.stderr)
        return 2
    except (DownloadCancelled, KeyboardInterrupt):
        print(f"\nnninteractive-download-model: interrupted; run again to resume into {cache_dir(args.cache_dir)}",
              file=sys.stderr)
        return 130
    print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
