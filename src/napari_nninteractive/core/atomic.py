"""Replace a file or folder only once its new version is complete (session files, exports).

:func:`replacing` hands out a temporary path in a private folder beside the target; when the
``with`` block ends normally the result is renamed over the target (a folder such as a zarr store
is swapped whole), and in every case the temporary folder is removed. A failure (disk full, no
permission, a crash) therefore never leaves a half-written target, and the earlier one stays.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s new version to; it replaces ``path`` when the block succeeds."""
    path = Path(path)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        tmp = folder / path.name
        yield tmp
        if path.is_dir() and not path.is_symlink():  # os.replace cannot put anything over a folder
            os.replace(path, folder / "old")
        os.replace(tmp, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


__all__ = ["replacing"]
