"""The package's user-error base class and the limits every reader applies before allocating.

Every problem a user can fix (a bad file, a bad prompt, a missing model, an output that would
destroy data) raises a subclass of :class:`UserError` whose message names the file or value at
fault and what to do. Entry points (the command lines, the widget's workers) catch
``UserError`` and show its message in one line; anything else is a bug and keeps its traceback,
followed by :data:`REPORT_BUG`.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""


class OutputError(UserError, OSError):
    """An output that cannot or must not be written (it is an input, a folder, the disk is full, ...)."""


class ModelFolderError(UserError, RuntimeError):
    """A model folder that cannot be used; the message names the file and the fix."""


class CheckpointError(ModelFolderError):
    """A checkpoint that cannot be read (missing, truncated, not a checkpoint)."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint naming globals outside the allowlist; loading it would run code from the file."""

    def __init__(self, path: Path, names: list[str]):
        self.path, self.names = Path(path), list(names)
        shown = ", ".join(self.names[:5]) + (" ..." if len(self.names) > 5 else "")
        super().__init__(
            f"{path} refers to {shown}, which a model checkpoint does not need; loading it could run code "
            "from the file, so it was not loaded. Use checkpoints from a source you trust; to load this one "
            "anyway, pass --trust-checkpoint (trust_checkpoint=True in Python, a confirmation in the widget)."
        )


#: What every entry point shows as a message (never a traceback): the user's to fix, including the
#: file system's refusals (permissions, a full disk, a missing file). ``MemoryError`` gets its own advice.
USER_ERRORS: tuple[type[Exception], ...] = (UserError, OSError)


def user_message(exc: BaseException) -> str:
    """One line for a user error: its message; for a file-system error its reason and the file."""
    if isinstance(exc, OSError) and not isinstance(exc, UserError) and exc.strerror:
        return f"{exc.strerror} ({exc.filename})" if exc.filename else exc.strerror
    return str(exc)


#: Printed under the traceback of an unexpected error (a bug, not the user's doing).
REPORT_BUG = (
    "This is a bug in napari-nninteractive, not something you did: please report it to the "
    "developers with the traceback above and the command or steps that led to it."
)

#: JSON files this package reads (plans, metadata, prompt files, session documents) are refused
#: beyond these limits before they are parsed or walked.
MAX_JSON_DEPTH = 64
MAX_JSON_BYTES = {"model": 16 << 20, "prompts": 512 << 20, "session": 256 << 20}

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "REPORT_BUG",
    "USER_ERRORS",
    "CheckpointError",
    "ModelFolderError",
    "OutputError",
    "UnsafeCheckpointError",
    "UserError",
    "user_message",
]
