"""Read volumes and write masks: NIfTI, NRRD, TIFF, NumPy (.npy / .npz with array ``image``).

Arrays keep the file's own axis order and dtype; nothing is reoriented. A mask written for an
image keeps the image's geometry (NIfTI affine/header, NRRD space fields).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".seg.nrrd", ".tif", ".tiff", ".npy", ".npz")


class VolumeIOError(ValueError):
    """A file that cannot be read or written; the message says why."""


@dataclass
class Volume:
    """An array plus what is needed to write results on the same grid."""

    array: np.ndarray
    path: Path | None = None
    fmt: str = "npy"
    meta: dict[str, Any] = field(default_factory=dict)


def file_format(path: str | Path) -> str:
    """``nifti``, ``nrrd``, ``tiff``, ``npy`` or ``npz`` from the file name."""
    name = str(path).lower()
    for suffix, fmt in ((".nii.gz", "nifti"), (".nii", "nifti"), (".nrrd", "nrrd"), (".tiff", "tiff"),
                        (".tif", "tiff"), (".npy", "npy"), (".npz", "npz")):
        if name.endswith(suffix):
            return fmt
    raise VolumeIOError(
        f"{path}: unknown file type; use one of {', '.join(s for s in SUFFIXES if s != '.seg.nrrd')}."
    )


def read_volume(path: str | Path) -> Volume:
    """Read an image or label volume."""
    path = Path(path)
    fmt = file_format(path)
    if not path.is_file():
        raise VolumeIOError(f"{path} does not exist.")
    try:
        if fmt == "nifti":
            import nibabel as nib

            img = nib.load(str(path))
            return Volume(np.asanyarray(img.dataobj), path, fmt, {"affine": img.affine, "header": img.header})
        if fmt == "nrrd":
            import nrrd

            data, header = nrrd.read(str(path))
            return Volume(data, path, fmt, {"header": header})
        if fmt == "tiff":
            import tifffile

            return Volume(tifffile.imread(str(path)), path, fmt)
        if fmt == "npy":
            return Volume(np.load(path, allow_pickle=False), path, fmt)
        with np.load(path, allow_pickle=False) as npz:
            if "image" not in npz.files:
                raise VolumeIOError(f"{path} has arrays {npz.files} but no 'image'; save the volume as image=...")
            return Volume(npz["image"], path, fmt)
    except VolumeIOError:
        raise
    except Exception as exc:  # noqa: BLE001 - readers raise many types for broken files
        raise VolumeIOError(f"{path} cannot be read as {fmt}: {exc}") from None


_NRRD_GEOMETRY = ("space", "space directions", "space origin", "space units")


def write_mask(path: str | Path, mask: np.ndarray, like: Volume | None = None) -> Path:
    """Write ``mask`` (uint8) to ``path``; geometry is taken from ``like`` when formats allow."""
    path = Path(path)
    fmt = file_format(path)
    mask = np.asarray(mask, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "nifti":
        import nibabel as nib

        if like is not None and like.fmt == "nifti":
            header = like.meta["header"].copy()
            header.set_data_dtype(np.uint8)
            img = nib.Nifti1Image(mask, like.meta["affine"], header)
            img.header.set_slope_inter(1, 0)
        else:
            img = nib.Nifti1Image(mask, np.eye(4))
        nib.save(img, str(path))
    elif fmt == "nrrd":
        import nrrd

        header = {}
        if like is not None and like.fmt == "nrrd":
            header = {k: v for k, v in like.meta["header"].items() if k in _NRRD_GEOMETRY}
        nrrd.write(str(path), mask, header)
    elif fmt == "tiff":
        import tifffile

        tifffile.imwrite(str(path), mask)
    elif fmt == "npy":
        np.save(path, mask)
    else:
        np.savez_compressed(path, image=mask)
    return path
