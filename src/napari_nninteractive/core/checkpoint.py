"""Loading checkpoints without running code from them.

A ``.pth`` file is a pickle, and unpickling can run any code its author chose. Checkpoints are
therefore read with ``torch.load(weights_only=True)``, which only rebuilds tensors and plain
containers, plus :data:`SAFE_GLOBALS`: exactly the extra types an nnU-Net / nnInteractive
checkpoint holds (numpy scalars, dtypes and arrays in its training log). A file that names any
other global is refused with :class:`UnsafeCheckpointError` naming that global. Only when the
caller passes ``trust=True`` (``--trust-checkpoint`` on the command line, a confirmation in the
widget) are exactly those named globals added to the allowlist for that file; the load stays
weights-only, so nothing beyond the names the user was shown can be called.
"""

from __future__ import annotations

import importlib
import logging
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import CheckpointError, UnsafeCheckpointError

log = logging.getLogger(__name__)


def _numpy_globals() -> list[Any]:
    """numpy's scalar, dtype and array reconstructors under their numpy 2 and numpy 1 names."""
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    dtype_classes = []
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        for name in (
            "Float16DType",
            "Float32DType",
            "Float64DType",
            "Int8DType",
            "Int16DType",
            "Int32DType",
            "Int64DType",
            "UInt8DType",
            "UInt16DType",
            "UInt32DType",
            "UInt64DType",
            "BoolDType",
            "LongDType",
            "ULongDType",
            "LongLongDType",
            "ULongLongDType",
        ):
            if hasattr(dtypes, name):
                dtype_classes.append(getattr(dtypes, name))
    return [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype, *dtype_classes]


#: The globals a checkpoint may name beyond torch's own weights-only set (tensors, containers,
#: ``torch.device``): numpy scalars such as ``np.float64`` in ``logging`` / ``_best_ema`` and their
#: dtypes; names written by numpy 1 (``numpy.core``) too. numpy arrays are not allowed: their
#: constructor can be made to allocate any amount of memory from a few bytes of pickle.
SAFE_GLOBALS = _numpy_globals()
#: The pickle inside a checkpoint (``data.pkl``) is small (tensors are stored beside it); a larger
#: one, e.g. a compressed pickle that unpacks to gigabytes, is refused before unpickling.
MAX_PICKLE_BYTES = 64 << 20


def allowed_names() -> list[str]:
    """The allowlist as dotted names (for documentation and messages)."""
    out = []
    for g in SAFE_GLOBALS:
        _obj, name = g if isinstance(g, tuple) else (g, f"{g.__module__}.{g.__qualname__}")
        out.append(name)
    return sorted(set(out))


def _refused_names(exc: Exception, path: Path) -> list[str] | None:
    """The globals a weights-only load refused, or None when ``exc`` is not such a refusal."""
    if not isinstance(exc, Exception) or ("weights_only" not in str(exc) and "Unsupported global" not in str(exc)):
        return None
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:
        return None
    allowed = set(allowed_names())
    return [n for n in names if n not in allowed] or None


def _resolve(name: str, path: Path) -> Any:
    """The object a dotted global name in a trusted checkpoint refers to (``module.attr[.attr]``)."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj
    raise CheckpointError(f"{path} refers to {name}, which does not exist here; the checkpoint cannot be loaded.")


def _check_pickle_size(path: Path) -> None:
    """Refuse a zip checkpoint whose pickle unpacks to more than :data:`MAX_PICKLE_BYTES`."""
    if not zipfile.is_zipfile(path):
        return  # legacy format: torch streams it from the file itself
    try:
        with zipfile.ZipFile(path) as z:
            sizes = [i.file_size for i in z.infolist() if i.filename.endswith("data.pkl")]
    except (zipfile.BadZipFile, OSError):
        return  # torch.load reports the broken file
    if any(size > MAX_PICKLE_BYTES for size in sizes):
        raise CheckpointError(
            f"{path}: its pickle unpacks to {max(sizes) / 2**20:.0f} MiB, far more than a model "
            "checkpoint holds; it was not loaded. Download the model folder again."
        )


def verify_checkpoint_file(path: str | Path) -> None:
    """Check that ``path`` is a complete, intact checkpoint file without unpickling or loading it.

    For the zip format every member's CRC is checked (a truncated or corrupted download fails
    here); a legacy (non-zip) file is read once by :func:`load_checkpoint`. Raises
    :class:`CheckpointError`. Cheap next to loading: nothing is deserialised or allocated.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist or is not a file; download the model folder again.")
    if not zipfile.is_zipfile(path):
        load_checkpoint(path)
        return
    try:
        with zipfile.ZipFile(path) as z:
            if not any(name.endswith("data.pkl") for name in z.namelist()):
                raise CheckpointError(f"{path} is a zip file without a checkpoint in it; download the model again.")
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(
            f"{path} cannot be read ({type(exc).__name__}); the file is truncated or corrupt. "
            "Delete it and download the model again."
        ) from None
    if bad is not None:
        raise CheckpointError(f"{path}: its member {bad} is corrupt; delete the file and download the model again.")
    _check_pickle_size(path)


def load_checkpoint(path: str | Path, trust: bool = False) -> dict[str, Any]:
    """Read ``path`` on the CPU without running code from it; ``trust=True`` allows the globals it names.

    Raises :class:`UnsafeCheckpointError` for a file that names globals outside
    :data:`SAFE_GLOBALS` (nothing from it is executed) and :class:`CheckpointError` for a broken
    file or one that is not an nnInteractive checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist or is not a file; download the model folder again.")
    _check_pickle_size(path)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        names = _refused_names(exc, path)
        if names is None:
            raise CheckpointError(
                f"{path} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                "the file is truncated or corrupt. Delete it and download the model again."
            ) from None
        if not trust:
            raise UnsafeCheckpointError(path, names) from None
        warnings.warn(f"{path}: loading with {', '.join(names)} allowed (trusted by the user).", stacklevel=2)
        try:
            # still weights-only: exactly the globals the user was shown are added, nothing else
            with torch.serialization.safe_globals([*SAFE_GLOBALS, *(_resolve(n, path) for n in names)]):
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except CheckpointError:
            raise
        except Exception as exc2:
            raise CheckpointError(
                f"{path} cannot be read ({type(exc2).__name__}: {str(exc2).splitlines()[0][:200]}); the file is "
                "truncated or corrupt. Delete it and download the model again."
            ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("network_weights"), dict):
        raise CheckpointError(
            f"{path} is not an nnInteractive checkpoint (it has no 'network_weights' dictionary of tensors)."
        )
    bad = [k for k, v in ckpt["network_weights"].items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"{path}: 'network_weights' holds {bad[0]!r}, which is not a named tensor; the checkpoint is damaged."
        )
    init_args = ckpt.get("init_args")
    if init_args is not None and not isinstance(init_args, dict):
        raise CheckpointError(f"{path}: 'init_args' must be a dictionary, not {type(init_args).__name__}.")
    return ckpt


__all__ = [
    "SAFE_GLOBALS",
    "CheckpointError",
    "UnsafeCheckpointError",
    "allowed_names",
    "load_checkpoint",
    "verify_checkpoint_file",
]
