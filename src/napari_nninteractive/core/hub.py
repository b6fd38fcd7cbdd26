"""Getting the nnInteractive weights: Hugging Face download, cache, offline reuse (spec section 1).

``list_models`` lists the model folders of the repository and of the cache. ``download_model``
fetches one folder (default ``nnInteractive_v1.0/``) with ``huggingface_hub.snapshot_download``
into a cache folder, reports progress and honours cancellation through plain callables, resumes
interrupted downloads, checks the checkpoint and reuses the cached folder offline. The hub calls
are parameters so tests replace them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

log = logging.getLogger(__name__)

REPO_IDS = ("MIC-DKFZ/nnInteractive", "nnInteractive/nnInteractive")  # current name first
DEFAULT_MODEL = "nnInteractive_v1.0"
LICENCE_NOTE = "nnInteractive weights: CC BY-NC-SA 4.0 (non-commercial)"


class DownloadError(UserError, RuntimeError):
    """The model could not be obtained; the message says why and what to do."""


class DownloadCancelled(Exception):
    """Raised when ``should_cancel`` returned True during a download."""


def cache_dir(path: str | Path | None = None) -> Path:
    """Where models live: ``path``, ``$NNINTERACTIVE_HOME``, or ``~/.cache/napari-nninteractive``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("NNINTERACTIVE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "napari-nninteractive"


_CACHE_FIX = "choose another folder (--cache-dir or $NNINTERACTIVE_HOME)"


def _check_cache(folder: Path) -> Path:
    """``folder`` unless it or a folder above it is a file (then :class:`DownloadError`)."""
    blocker = next((p for p in (folder, *folder.parents) if p.exists() or p.is_symlink()), None)
    if blocker is not None and not blocker.is_dir():
        where = "" if blocker == folder else f" ({blocker} is a file)"
        raise DownloadError(f"The model cache {folder} is not a folder{where}; {_CACHE_FIX}.")
    return folder


def _make_cache(folder: Path) -> Path:
    """Create the cache ``folder`` if needed; :class:`DownloadError` when it cannot be written."""
    _check_cache(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"Cannot create the model cache {folder} ({exc.strerror or exc}); {_CACHE_FIX}.") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DownloadError(f"The model cache {folder} is not writable; {_CACHE_FIX}.")
    return folder


def _check_name(name: str) -> str:
    """``name`` when it is one folder name (no path), else :class:`DownloadError`."""
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise DownloadError(f"The model name {name!r} is not a folder name; pick one of nninteractive-download-model "
                            f"--list (default {DEFAULT_MODEL}).")
    return name


def is_complete(folder: Path) -> bool:
    """True when ``folder`` has plans, dataset, metadata and a checkpoint."""
    has_meta = (folder / "inference_session_class.json").is_file() or (folder / "inference_info.json").is_file()
    return (folder / "plans.json").is_file() and (folder / "dataset.json").is_file() and has_meta and any(
        folder.glob("fold_*/checkpoint_final.pth"))


def cached_model(name: str = DEFAULT_MODEL, root: str | Path | None = None) -> Path | None:
    """The complete cached model folder, or ``None``."""
    folder = cache_dir(root) / name
    return folder if is_complete(folder) else None


@dataclass(frozen=True)
class ModelListing:
    """Model folders of the Hugging Face repository and of the local cache."""

    remote: tuple[str, ...]  # empty when the repository could not be reached
    cached: tuple[str, ...]
    repo: str | None  # the repository that answered, or None
    note: str = ""  # why the remote list is empty, in words for the user

    @property
    def names(self) -> tuple[str, ...]:
        """Every model a user can pick: the repository's and the cached ones, the default first."""
        names = sorted(set(self.remote) | set(self.cached) | {DEFAULT_MODEL})
        return tuple(sorted(names, key=lambda n: (n != DEFAULT_MODEL, n)))


def list_models(root: str | Path | None = None, list_files=None) -> ModelListing:
    """List the repository's model folders (those with a ``plans.json``) and the complete cached ones.

    Never raises for network problems: offline, the listing has the cached models and a note.
    Raises :class:`DownloadError` when the cache path is not a folder. ``list_files`` replaces
    ``huggingface_hub.list_repo_files`` (tests).
    """
    folder = _check_cache(cache_dir(root))
    try:
        cached = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and is_complete(p))) if folder.is_dir() else ()
    except OSError as exc:
        raise DownloadError(f"Cannot read the model cache {folder} ({exc.strerror or exc}); {_CACHE_FIX}.") from None
    if list_files is None:
        from huggingface_hub import list_repo_files as list_files
    errors = []
    for repo in REPO_IDS:
        try:
            files = list_files(repo_id=repo)
        except Exception as exc:  # noqa: BLE001 - the hub raises many types
            if _is_offline(exc):
                return ModelListing((), cached, None, "Hugging Face cannot be reached; showing the cached models.")
            errors.append(f"{repo}: {type(exc).__name__}")
            continue
        remote = sorted({f.split("/")[0] for f in files if f.count("/") == 1 and f.endswith("/plans.json")})
        return ModelListing(tuple(remote), cached, repo)
    return ModelListing((), cached, None, "Could not list the repository (" + "; ".join(errors) + ").")


def _progress_class(progress: Callable[[int, int | None], None] | None, should_cancel: Callable[[], bool] | None):
    """A tqdm class for huggingface_hub that forwards bytes and checks for cancellation."""
    from tqdm.auto import tqdm

    class Reporter(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True  # no console bar; a disabled bar does not count, so we do
            super().__init__(*args, **kwargs)
            self.done = 0

        def update(self, n=1):
            if should_cancel is not None and should_cancel():
                raise DownloadCancelled("download cancelled")
            self.done += int(n or 0)
            if progress is not None:
                progress(self.done, int(self.total) if self.total else None)

    return Reporter


def _is_offline(exc: Exception) -> bool:
    names = {type(e).__name__ for e in (exc, exc.__cause__, exc.__context__) if e is not None}
    offline = {"ConnectionError", "OfflineModeIsEnabled", "LocalEntryNotFoundError", "Timeout", "ConnectTimeout",
               "ReadTimeout", "ProxyError", "SSLError", "ConnectError", "TimeoutException"}
    return bool(names & offline) or isinstance(exc, (ConnectionError, TimeoutError))


def download_model(name: str = DEFAULT_MODEL, root: str | Path | None = None,
                   progress: Callable[[int, int | None], None] | None = None,
                   should_cancel: Callable[[], bool] | None = None, snapshot=None) -> Path:
    """The model folder, from the cache or downloaded into it (partial downloads resume).

    Raises :class:`DownloadError` when offline, the files are broken (a corrupt checkpoint is
    deleted so the next call fetches it again), ``name`` is not a folder name or the cache folder
    cannot be written, and :class:`DownloadCancelled` on cancel.
    """
    found = cached_model(_check_name(name), root)
    if found is not None:
        return found
    target = _make_cache(cache_dir(root))
    if snapshot is None:
        from huggingface_hub import snapshot_download as snapshot
    errors = []
    for repo in REPO_IDS:
        try:
            snapshot(repo_id=repo, allow_patterns=[f"{name}/*"], local_dir=str(target),
                     tqdm_class=_progress_class(progress, should_cancel))
        except DownloadCancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - the hub raises many types
            if _is_offline(exc):
                raise DownloadError(
                    f"Cannot reach Hugging Face to download {name} ({type(exc).__name__}). The "
                    f"weight-free engine works meanwhile; to use the network, download on a connected "
                    f"machine (nninteractive-download-model) and copy the folder to {target / name}."
                ) from None
            errors.append(f"{repo}: {type(exc).__name__}: {exc}")
            continue
        folder = target / name
        if not is_complete(folder):
            errors.append(f"{repo}: the download has no complete {name}/ folder")
            continue
        _check_checkpoint(folder)
        return folder
    raise DownloadError(f"Could not download {name}: " + "; ".join(errors))


def _check_checkpoint(folder: Path) -> None:
    from .errors import ModelFolderError, UnsafeCheckpointError
    from .model import find_checkpoint, load_checkpoint

    path = find_checkpoint(folder)
    try:
        load_checkpoint(path)
    except UnsafeCheckpointError:
        return  # readable, but refused until the user trusts it: keep it, loading says why
    except ModelFolderError:
        path.unlink(missing_ok=True)
        raise DownloadError(f"The downloaded checkpoint {path} is corrupt and was deleted; run the download again.") from None
