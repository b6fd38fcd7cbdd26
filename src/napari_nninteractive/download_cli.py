"""``nninteractive-download-model``: fetch the nnInteractive weights into the cache (or report it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from .core.hub import DEFAULT_MODEL, LICENCE_NOTE, DownloadCancelled, DownloadError, cache_dir, download_model

    ap = argparse.ArgumentParser(
        prog="nninteractive-download-model",
        description=f"Download {DEFAULT_MODEL} (about 410 MB; {LICENCE_NOTE}) from Hugging Face into the "
        "cache, resuming a partial download, and print the folder to pass to --model or the widget. "
        "Offline, a cached copy is reused.")
    ap.add_argument("--name", default=DEFAULT_MODEL, help=f"model folder in the repository (default {DEFAULT_MODEL})")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="where models are kept (default $NNINTERACTIVE_HOME or ~/.cache/napari-nninteractive)")
    args = ap.parse_args(argv)

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
