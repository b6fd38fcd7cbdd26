"""Getting the nnInteractive weights: Hugging Face download, cache, offline reuse (spec section 1).

``list_models`` lists the model folders of the repository and of the cache. ``download_model``
fetches one folder (default ``nnInteractive_v1.0/``) with ``huggingface_hub.snapshot_download``
into a cache folder, reports progress and honours cancellation through plain callables, resumes
interrupted downloads, checks the checkpoint and reuses the cached folder offline. The hub calls
are parameters so tests replace them.

Offline, huggingface_hub retries each request for about 25 s and logs every retry. So before
calling it, :func:`offline_reason` honours ``HF_HUB_OFFLINE`` (no network at all) and otherwise
opens one TCP connection to the hub (or the HTTPS proxy) with a 3 s bound; the listing runs with
the hub's retry warnings silenced.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import UserError
from .folds import has_checkpoint

if TYPE_CHECKING:
    from tqdm.asyncio import tqdm_asyncio  # what tqdm.auto.tqdm is

log = logging.getLogger(__name__)

REPO_IDS = ("MIC-DKFZ/nnInteractive", "nnInteractive/nnInteractive")  # current name first
DEFAULT_MODEL = "nnInteractive_v1.0"
LICENCE_NOTE = "nnInteractive weights: CC BY-NC-SA 4.0 (non-commercial)"
PROBE_TIMEOUT = 3.0  # seconds the reachability probe may take
_HUB_LOGGERS = ("huggingface_hub", "urllib3", "httpx", "httpx2", "httpcore", "filelock")


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
        raise DownloadError(
            f"The model name {name!r} is not a folder name; pick one of nninteractive-download-model "
            f"--list (default {DEFAULT_MODEL})."
        )
    return name


def is_complete(folder: Path) -> bool:
    """True when ``folder`` has plans, dataset, metadata and a checkpoint."""
    has_meta = (folder / "inference_session_class.json").is_file() or (folder / "inference_info.json").is_file()
    return (
        (folder / "plans.json").is_file()
        and (folder / "dataset.json").is_file()
        and has_meta
        and has_checkpoint(folder)
    )


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
    note: str = ""  # why the remote list is empty and what is cached, in words for the user
    folder: Path | None = None  # the cache folder

    @property
    def message(self) -> str:
        """One plain sentence for the user: what the repository and the cache hold."""
        if self.repo is None:
            return self.note
        return f"{len(self.remote)} model(s) in {self.repo}; {_cached_words(self.folder, self.cached)}"

    @property
    def names(self) -> tuple[str, ...]:
        """Every model a user can pick: the repository's and the cached ones, the default first."""
        names = sorted(set(self.remote) | set(self.cached) | {DEFAULT_MODEL})
        return tuple(sorted(names, key=lambda n: (n != DEFAULT_MODEL, n)))


def _env_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set as huggingface_hub reads it."""
    return any(
        os.environ.get(k, "").upper() in ("1", "ON", "YES", "TRUE") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _hub_address() -> tuple[str, int]:
    """Host and port a hub request connects to first: the HTTPS proxy, else ``$HF_ENDPOINT`` or huggingface.co."""
    proxy = next(
        (os.environ[k] for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy") if os.environ.get(k)), ""
    )
    url = urlsplit(
        proxy
        if "://" in proxy
        else f"http://{proxy}"
        if proxy
        else os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    )
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)


def probe_hub(timeout: float = PROBE_TIMEOUT) -> str | None:
    """``None`` when a TCP connection to the hub opens within ``timeout`` seconds, else why not.

    The connection (name lookup included) runs on a daemon thread, so a hanging lookup cannot
    hold the caller past ``timeout``.
    """
    host, port = _hub_address()
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"{host}: {exc.strerror or exc or type(exc).__name__}")

    worker = threading.Thread(target=connect, name="nninteractive-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    return outcome[0] if outcome else f"{host}: no answer within {timeout:g} s"


def offline_reason(hub_fn: object = None, probe: Callable[[], str | None] | None = None) -> str | None:
    """Why Hugging Face must not or cannot be contacted now, or ``None`` to go ahead.

    ``HF_HUB_OFFLINE`` answers without touching the network. Otherwise ``probe`` is asked; it
    defaults to :func:`probe_hub` when ``hub_fn`` is huggingface_hub's own function (which retries
    for ~25 s offline) and to no probe for a replacement (tests).
    """
    if _env_offline():
        return "HF_HUB_OFFLINE is set"
    if probe is None and str(getattr(hub_fn, "__module__", "")).startswith("huggingface_hub"):
        probe = probe_hub
    return probe() if probe is not None else None


@contextmanager
def _quiet_hub() -> Iterator[None]:
    """Silence the retry warnings huggingface_hub and its HTTP stack log while it runs."""
    loggers = [logging.getLogger(name) for name in _HUB_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _cached_words(folder: Path | None, cached: tuple[str, ...]) -> str:
    if cached:
        return "cached: " + ", ".join(name if folder is None else f"{name} ({folder / name})" for name in cached) + "."
    return (
        f"no model is cached in {folder}; the weight-free engine works meanwhile, or download "
        f"{DEFAULT_MODEL} on a connected machine (nninteractive-download-model) and copy it there."
    )


def list_models(
    root: str | Path | None = None,
    list_files: Callable[..., Iterable[str]] | None = None,
    probe: Callable[[], str | None] | None = None,
) -> ModelListing:
    """List the repository's model folders (those with a ``plans.json``) and the complete cached ones.

    Never raises for network problems: offline (see :func:`offline_reason`), the listing has the
    cached models and a note, within a few seconds and without retry warnings. Raises
    :class:`DownloadError` when the cache path is not a folder. ``list_files`` replaces
    ``huggingface_hub.list_repo_files`` and ``probe`` :func:`probe_hub` (tests).
    """
    folder = _check_cache(cache_dir(root))
    try:
        cached = (
            tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and is_complete(p))) if folder.is_dir() else ()
        )
    except OSError as exc:
        raise DownloadError(f"Cannot read the model cache {folder} ({exc.strerror or exc}); {_CACHE_FIX}.") from None

    def unreachable(why: str) -> ModelListing:
        return ModelListing(
            (),
            cached,
            None,
            f"Hugging Face cannot be reached (offline? {why}); " + _cached_words(folder, cached),
            folder,
        )

    if list_files is None:
        from huggingface_hub import list_repo_files

        list_files = list_repo_files
    why = offline_reason(list_files, probe)
    if why is not None:
        return unreachable(why)
    errors = []
    for repo in REPO_IDS:
        try:
            with _quiet_hub():
                files = list_files(repo_id=repo)
        except Exception as exc:
            if _is_offline(exc):
                return unreachable(type(exc).__name__)
            errors.append(f"{repo}: {type(exc).__name__}")
            continue
        remote = sorted({f.split("/")[0] for f in files if f.count("/") == 1 and f.endswith("/plans.json")})
        return ModelListing(tuple(remote), cached, repo, folder=folder)
    return ModelListing(
        (),
        cached,
        None,
        "Could not list the repository (" + "; ".join(errors) + "); " + _cached_words(folder, cached),
        folder,
    )


def _progress_class(
    progress: Callable[[int, int | None], None] | None, should_cancel: Callable[[], bool] | None
) -> type[tqdm_asyncio[Any]]:
    """A tqdm class for huggingface_hub that forwards bytes and checks for cancellation."""
    from tqdm.auto import tqdm

    # tqdm is generic only in its stubs (types-tqdm); the runtime class cannot be subscripted
    class Reporter(tqdm):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True  # no console bar; a disabled bar does not count, so we do
            super().__init__(*args, **kwargs)
            self.done = 0

        def update(self, n: float | None = 1) -> None:
            if should_cancel is not None and should_cancel():
                raise DownloadCancelled("download cancelled")
            self.done += int(n or 0)
            if progress is not None:
                progress(self.done, int(self.total) if self.total else None)

    return Reporter


def _is_offline(exc: Exception) -> bool:
    names = {type(e).__name__ for e in (exc, exc.__cause__, exc.__context__) if e is not None}
    offline = {
        "ConnectionError",
        "OfflineModeIsEnabled",
        "LocalEntryNotFoundError",
        "Timeout",
        "ConnectTimeout",
        "ReadTimeout",
        "ProxyError",
        "SSLError",
        "ConnectError",
        "TimeoutException",
    }
    return bool(names & offline) or isinstance(exc, (ConnectionError, TimeoutError))


def download_model(
    name: str = DEFAULT_MODEL,
    root: str | Path | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    snapshot: Callable[..., object] | None = None,
    probe: Callable[[], str | None] | None = None,
) -> Path:
    """The model folder, from the cache or downloaded into it (partial downloads resume).

    Offline (see :func:`offline_reason`) it fails within seconds. ``snapshot`` replaces
    ``huggingface_hub.snapshot_download`` and ``probe`` :func:`probe_hub` (tests).
    Raises :class:`DownloadError` when offline, the files are broken (a corrupt checkpoint is
    deleted so the next call fetches it again), ``name`` is not a folder name or the cache folder
    cannot be written, and :class:`DownloadCancelled` on cancel.
    """
    found = cached_model(_check_name(name), root)
    if found is not None:
        return found
    target = _make_cache(cache_dir(root))

    def unreachable(why: str) -> DownloadError:
        return DownloadError(
            f"Cannot reach Hugging Face to download {name} ({why}). The weight-free engine works "
            f"meanwhile; to use the network, download on a connected machine "
            f"(nninteractive-download-model) and copy the folder to {target / name}."
        )

    if snapshot is None:
        from huggingface_hub import snapshot_download

        snapshot = snapshot_download
    why = offline_reason(snapshot, probe)
    if why is not None:
        raise unreachable(why)
    errors = []
    for repo in REPO_IDS:
        try:
            snapshot(
                repo_id=repo,
                allow_patterns=[f"{name}/*"],
                local_dir=str(target),
                tqdm_class=_progress_class(progress, should_cancel),
            )
        except DownloadCancelled:
            raise
        except Exception as exc:
            if _is_offline(exc):
                raise unreachable(type(exc).__name__) from None
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
    """A downloaded checkpoint is intact (checked without loading it: Initialize loads it once)."""
    from .checkpoint import verify_checkpoint_file
    from .errors import ModelFolderError, UnsafeCheckpointError
    from .model import find_checkpoint

    path = find_checkpoint(folder)
    try:
        verify_checkpoint_file(path)
    except UnsafeCheckpointError:
        return  # readable, but refused until the user trusts it: keep it, loading says why
    except ModelFolderError:
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"The downloaded checkpoint {path} is corrupt and was deleted; run the download again."
        ) from None
