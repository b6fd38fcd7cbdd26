"""Every file the package writes is replaced only once its new version is complete.

:func:`replacing` first refuses outputs that would destroy data (:func:`check_output`: an input
of the same command, a folder where a file goes or the reverse), then hands out a temporary path
in a private folder beside the target (same file system, so the final rename is atomic). When the
``with`` block ends normally the new file (or every file of a new folder) is flushed to disk and
renamed over the target; in every case the temporary folder is removed. A failure (disk full,
no permission, an exception in the writer) therefore leaves the earlier target untouched and no
partial file. A process killed with SIGKILL cannot clean up after itself: its temporary folder
(``.NAME.PID.*.tmp``, hidden) is removed by the next write to the same target.

The temporary file gets the target's name, or ``temp_name`` so that writers which choose the
format from the suffix (nibabel, numpy) see a canonical lower-case suffix.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import OutputError

_HINTS = {
    errno.ENOSPC: "free disk space or choose another folder",
    errno.EDQUOT: "free disk space or choose another folder",
    errno.EACCES: "choose a folder you may write to",
    errno.EPERM: "choose a folder you may write to",
    errno.EROFS: "the file system is read-only: choose another folder",
}


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name one file (through links too)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def check_output(
    path: str | Path,
    inputs: Iterable[str | Path | None] = (),
    folder: bool = False,
    may_replace_folder: Callable[[Path], bool] | None = None,
    what: str = "output",
) -> Path:
    """Refuse an output ``path`` that would destroy data; returns it as a :class:`Path`.

    Refused: a path that is one of ``inputs``; a file output where a folder exists; a folder
    output (``folder=True``) where a file exists, or where a folder exists that
    ``may_replace_folder`` does not accept (e.g. a zarr store of an earlier export).
    """
    path = Path(path)
    for source in inputs:
        if source is not None and same_file(path, source):
            raise OutputError(
                f"The {what} {path} is also an input ({source}); writing it would destroy that "
                "file. Choose another output name."
            )
    if path.is_dir() and not path.is_symlink():
        if not folder:
            raise OutputError(
                f"The {what} {path} is an existing folder; it is never replaced by a file. Choose a "
                "file name (or remove the folder yourself)."
            )
        if may_replace_folder is None or not may_replace_folder(path):
            raise OutputError(
                f"The {what} {path} is an existing folder with other contents; it is not replaced. "
                "Choose a new name (or remove the folder yourself)."
            )
    elif folder and path.exists():
        raise OutputError(
            f"The {what} {path} is an existing file; it is never replaced by a folder. Choose another name."
        )
    return path


def _hint(exc: OSError) -> str:
    return _HINTS.get(exc.errno or 0, "choose another folder")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _remove_stale_temps(path: Path) -> None:
    """Remove temporary folders left for ``path`` by killed processes."""
    ours = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[A-Za-z0-9_]{{8}}\.tmp")  # exactly mkdtemp's names below
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        match = ours.fullmatch(tmp.name)
        if match is None or not tmp.is_dir() or tmp.is_symlink():
            continue  # not ours: never touched
        pid = int(match.group(1))
        if os.name == "posix":
            stale = pid != os.getpid() and not _pid_alive(pid)
        else:  # no safe liveness check (os.kill would kill on Windows): only old leftovers
            stale = time.time() - tmp.stat().st_mtime > 86400
        if stale:
            shutil.rmtree(tmp, ignore_errors=True)


def _fsync_tree(target: Path) -> None:
    files = [target] if target.is_file() else [p for p in target.rglob("*") if p.is_file()]
    for f in files:
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def replacing(
    path: str | Path,
    inputs: Iterable[str | Path | None] = (),
    folder: bool = False,
    may_replace_folder: Callable[[Path], bool] | None = None,
    temp_name: str | None = None,
    make_parents: bool = False,
    what: str = "output",
) -> Iterator[Path]:
    """A temporary path to write ``path``'s new version to; it replaces ``path`` when the block succeeds.

    Raises :class:`~.errors.OutputError` for a refused output (see :func:`check_output`), a
    missing folder (unless ``make_parents``) and any ``OSError`` while writing, with the reason
    and the fix; the earlier target is then unchanged and the temporary folder removed.
    """
    path = check_output(path, inputs, folder, may_replace_folder, what)
    parent = path.parent
    try:
        if make_parents:
            parent.mkdir(parents=True, exist_ok=True)
        elif not parent.is_dir():
            raise OutputError(
                f"Cannot write {path}: the folder {parent} does not exist. Create it or choose another folder."
            )
        _remove_stale_temps(path)
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=parent))
    except (FileExistsError, NotADirectoryError):
        raise OutputError(
            f"Cannot write {path}: a file stands where a folder of that path should be. Choose another folder."
        ) from None
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"Cannot write {path} ({exc.strerror or exc}); {_hint(exc)}.") from None
    try:
        tmp = tmp_dir / (temp_name or path.name)
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"the writer of {path} wrote nothing")  # a bug in the caller, not the user's doing
        _fsync_tree(tmp)
        if path.is_dir() and not path.is_symlink():  # os.replace cannot put anything over a folder
            os.replace(path, tmp_dir / ".old")
        os.replace(tmp, path)
        _fsync_dir(parent)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(
            f"Writing {path} failed ({exc.strerror or exc}); an earlier {what} of that name is "
            f"unchanged and no partial file is left: {_hint(exc)}."
        ) from None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def write_bytes(path: str | Path, data: bytes, **kwargs: Any) -> Path:
    """Write ``data`` to ``path`` through :func:`replacing` (same keyword arguments)."""
    with replacing(path, **kwargs) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str, **kwargs: Any) -> Path:
    """Write UTF-8 ``text`` to ``path`` through :func:`replacing`."""
    return write_bytes(path, text.encode("utf-8"), **kwargs)


__all__ = ["check_output", "replacing", "same_file", "write_bytes", "write_text"]
