"""The file formats this package reads and writes, in one table.

Each :class:`FileFormat` lists its suffixes (the first is the one written by default) and what it
is used for: reading a volume (:func:`.volumes.read_volume`), writing a mask
(:func:`.volumes.write_mask`) or writing a label map (:func:`.export.write_label_map`). Names
are matched in any letter case, the longest suffix first (``.seg.nrrd`` before ``.nrrd``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

#: What a format is asked to do: each is a ``can_<use>`` flag of :class:`FileFormat`.
Use = Literal["read_volume", "write_mask", "write_label_map"]


@dataclass(frozen=True)
class FileFormat:
    """One file format: its name, its suffixes (lower-case, default first) and what it can do."""

    name: str
    suffixes: tuple[str, ...]
    can_read_volume: bool
    can_write_mask: bool
    can_write_label_map: bool
    description: str

    @property
    def suffix(self) -> str:
        """The suffix written when only the format is chosen."""
        return self.suffixes[0]

    def can(self, use: Use | None) -> bool:
        """Whether the format serves ``use`` (``None``: any)."""
        return use is None or getattr(self, f"can_{use}")


#: Every format, in the order menus and messages list them.
FORMATS: tuple[FileFormat, ...] = (
    FileFormat("nifti", (".nii.gz", ".nii"), True, True, True, "NIfTI (masks and label maps keep the image's affine)"),
    FileFormat("nrrd", (".nrrd", ".seg.nrrd"), True, True, False, "NRRD (masks keep the image's space fields)"),
    FileFormat("tiff", (".tif", ".tiff"), True, True, True, "TIFF"),
    FileFormat("zarr", (".zarr",), False, False, True, "zarr store (a folder)"),
    FileFormat("npy", (".npy",), True, True, False, "NumPy array"),
    FileFormat("npz", (".npz",), True, True, True, "NumPy archive (volumes in array 'image', label maps in 'labels')"),
)


def formats(use: Use | None = None) -> tuple[FileFormat, ...]:
    """The formats that serve ``use`` (``None``: all), in table order."""
    return tuple(f for f in FORMATS if f.can(use))


def by_name(name: str) -> FileFormat:
    """The format called ``name``; :class:`KeyError` names the known ones."""
    for f in FORMATS:
        if f.name == name:
            return f
    raise KeyError(f"unknown format {name!r}; use one of {', '.join(f.name for f in FORMATS)}")


def suffixes(use: Use | None = None) -> tuple[str, ...]:
    """Every suffix of the formats that serve ``use``, in table order."""
    return tuple(s for f in formats(use) for s in f.suffixes)


def suffix_list(use: Use | None = None) -> str:
    """The accepted suffixes for a message: ``".nii.gz, .nii, ..."``."""
    return ", ".join(suffixes(use))


def match(path: str | Path, use: Use | None = None) -> tuple[FileFormat, str] | None:
    """The format serving ``use`` whose suffix ``path`` ends with, and that suffix; ``None`` when none.

    Any letter case; a trailing slash (a folder such as a zarr store) is ignored.
    """
    name = str(path).lower().rstrip("/\\")
    found = [(len(s), f, s) for f in formats(use) for s in f.suffixes if name.endswith(s)]
    if not found:
        return None
    _, fmt, suffix = max(found, key=lambda t: t[0])
    return fmt, suffix


def strip_suffix(name: str) -> str:
    """``name`` without the suffix of any known format (``ct.nii.gz`` -> ``ct``)."""
    name = name.rstrip("/\\")
    found = match(name)
    return name[: -len(found[1])] if found else name


def dialog_filter(use: Use, title: str) -> str:
    """A file-dialog filter for ``use``: ``"Label map (*.nii.gz *.nii ...)"``."""
    return f"{title} ({' '.join('*' + s for s in suffixes(use))})"


__all__ = [
    "FORMATS",
    "FileFormat",
    "Use",
    "by_name",
    "dialog_filter",
    "formats",
    "match",
    "strip_suffix",
    "suffix_list",
    "suffixes",
]
