"""Read volumes and write masks: NIfTI, NRRD, TIFF, NumPy (.npy / .npz with array ``image``).

Arrays keep the file's own axis order and dtype (except that a 4-D NIfTI's last axis, its
channels, comes first); nothing is reoriented. A mask written for an
image keeps the image's geometry (NIfTI affine/header, NRRD space fields). The suffixes of
each format are those of :data:`.formats.FORMATS`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.encoding import RGB_NOTE, luminance
from ..core.errors import UserError
from ..core.npyfile import declared_nbytes, member_header, read_header
from . import formats

#: The suffixes :func:`read_volume` accepts (from :data:`.formats.FORMATS`).
SUFFIXES = formats.suffixes("read_volume")


class VolumeIOError(UserError, ValueError):
    """A file that cannot be read or written; the message says why."""


@dataclass
class Volume:
    """An array plus what is needed to write results on the same grid."""

    array: np.ndarray
    path: Path | None = None
    fmt: str = "npy"
    meta: dict[str, Any] = field(default_factory=dict)


def _lookup(path: str | Path, use: formats.Use) -> tuple[formats.FileFormat, str]:
    """The format serving ``use`` that ``path`` names, and its suffix; else :class:`VolumeIOError`."""
    found = formats.match(path, use)
    if found is None:
        raise VolumeIOError(f"{path}: unknown file type; use one of {formats.suffix_list(use)}.")
    return found


def file_suffix(path: str | Path, use: formats.Use = "read_volume") -> str:
    """The known suffix ``path`` ends with, lower-case (``.NII.GZ`` -> ``.nii.gz``).

    Only the formats serving ``use`` count; the :class:`VolumeIOError` for another name lists their suffixes.
    """
    return _lookup(path, use)[1]


def file_format(path: str | Path, use: formats.Use = "read_volume") -> str:
    """``nifti``, ``nrrd``, ``tiff``, ``npy`` or ``npz`` from the file name (any letter case)."""
    return _lookup(path, use)[0].name


#: deflate expands data at most about 1032-fold: a .nii.gz whose header promises more is not a volume
_DEFLATE_MAX_RATIO = 1032


def _read_nifti(path: Path) -> Volume:
    """A NIfTI volume: singleton axes after the third dropped, a remaining 4th axis moved first (channels).

    The data size the header promises is checked against the file's size before any voxel is read.
    """
    import nibabel as nib

    img = nib.load(str(path))
    shape = tuple(int(s) for s in img.shape)
    nbytes = math.prod(shape) * img.get_data_dtype().itemsize
    size = path.stat().st_size
    if nbytes > size * (_DEFLATE_MAX_RATIO if path.name.lower().endswith(".gz") else 1):
        raise _truncated(path, shape, nbytes, size)
    keep = shape[:3] + tuple(s for s in shape[3:] if s != 1)
    if len(keep) > 4:
        raise VolumeIOError(
            f"{path} has axes {shape}; give a 3-D volume (x, y, z), or 4-D (x, y, z, channel) "
            f"with the channels on the 4th axis."
        )
    arr = np.asanyarray(img.dataobj).reshape(keep)
    return Volume(
        np.moveaxis(arr, 3, 0) if arr.ndim == 4 else arr, path, "nifti", {"affine": img.affine, "header": img.header}
    )


def _truncated(path: Path, shape, nbytes: int, size: int) -> VolumeIOError:
    return VolumeIOError(
        f"{path}: its header promises {shape} voxels ({nbytes / 2**20:.0f} MiB) but the file has "
        f"{size} bytes; it is truncated or damaged. Save the volume again."
    )


def read_volume(path: str | Path) -> Volume:
    """Read an image or label volume (a 4-D NIfTI comes channel-first: :func:`_read_nifti`)."""
    path = Path(path)
    fmt = file_format(path)
    if path.is_dir():
        raise VolumeIOError(f"{path} is a folder, not a volume file; pass the file itself.")
    if not path.is_file():
        raise VolumeIOError(
            f"{path} is not a regular file (a device, pipe or socket); pass a volume file."
            if path.exists()
            else f"{path} does not exist."
        )
    try:
        if fmt == "nifti":
            return _read_nifti(path)
        if fmt == "nrrd":
            import nrrd

            data, header = nrrd.read(str(path))
            return Volume(data, path, fmt, {"header": header})
        if fmt == "tiff":
            return _read_tiff(path)
        if fmt == "npy":
            with open(path, "rb") as f:
                head = read_header(f)
            if head is not None and head[2] + declared_nbytes(*head[:2]) > path.stat().st_size:
                raise _truncated(path, head[0], declared_nbytes(*head[:2]), path.stat().st_size)
            return Volume(np.load(path, allow_pickle=False), path, fmt)
        with np.load(path, allow_pickle=False) as npz:
            if "image" not in npz.files:
                raise VolumeIOError(f"{path} has arrays {npz.files} but no 'image'; save the volume as image=...")
            head = member_header(npz, "image")
            if head is not None and head[2] + declared_nbytes(*head[:2]) > head[3]:
                raise _truncated(path, head[0], declared_nbytes(*head[:2]), head[3])
            return Volume(npz["image"], path, fmt)
    except VolumeIOError:
        raise
    except Exception as exc:
        raise VolumeIOError(f"{path} cannot be read as {fmt}: {exc}") from None


def _read_tiff(path: Path) -> Volume:
    """A TIFF; one tagged RGB (its colour samples on any axis: interleaved or planar, 2-D or a stack) as its
    luminance, with a note saying so."""
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        series = tif.series[0]
        array, axes = series.asarray(), series.axes
        rgb = tif.pages[0].photometric == tifffile.PHOTOMETRIC.RGB
    if rgb and "S" in axes and array.shape[axes.index("S")] in (3, 4):
        return Volume(luminance(np.moveaxis(array, axes.index("S"), -1)), path, "tiff", {"note": RGB_NOTE})
    return Volume(array, path, "tiff")


_NRRD_GEOMETRY = ("space", "space directions", "space origin", "space units")


def _without_date(nrrd_bytes: bytes) -> bytes:
    """pynrrd's output less its ``# on <date>`` comment line: the same mask gives the same bytes on every run."""
    lines = nrrd_bytes.split(b"\n", 3)
    if len(lines) == 4 and lines[2].startswith(b"# on "):
        return b"\n".join(lines[:2] + lines[3:])
    return nrrd_bytes


def write_mask(
    path: str | Path, mask: np.ndarray, like: Volume | None = None, inputs: Sequence[str | Path | None] = ()
) -> Path:
    """Write ``mask`` (uint8) to ``path``; geometry is taken from ``like`` when formats allow.

    The file is replaced only when complete (:func:`..core.atomic.replacing`); an output that is
    one of ``inputs`` (or ``like``'s file), or an existing folder, is refused with
    :class:`~..core.errors.OutputError`. Missing parent folders are created.
    """
    from ..core.atomic import replacing

    path = Path(path)
    fmt, suffix = _lookup(path, "write_mask")
    mask = np.asarray(mask, dtype=np.uint8)
    sources = [*inputs, like.path if like is not None else None]
    with replacing(path, inputs=sources, temp_name=f"mask{suffix}", make_parents=True) as tmp:
        _write(tmp, fmt.name, mask, like)
    return path


def _write(tmp: Path, fmt: str, mask: np.ndarray, like: Volume | None) -> None:
    if fmt == "nifti":
        import nibabel as nib

        if like is not None and like.fmt == "nifti":
            header = like.meta["header"].copy()
            header.set_data_dtype(np.uint8)
            img = nib.Nifti1Image(mask, like.meta["affine"], header)
            img.header.set_slope_inter(1, 0)
        else:
            img = nib.Nifti1Image(mask, np.eye(4))
        nib.save(img, str(tmp))
    elif fmt == "nrrd":
        import nrrd

        header = {}
        if like is not None and like.fmt == "nrrd":
            header = {k: v for k, v in like.meta["header"].items() if k in _NRRD_GEOMETRY}
        buffer = io.BytesIO()
        nrrd.write(buffer, mask, header)
        tmp.write_bytes(_without_date(buffer.getvalue()))
    elif fmt == "tiff":
        import tifffile

        tifffile.imwrite(str(tmp), mask, photometric="minisblack")  # grey, whatever its last axis
    elif fmt == "npy":
        np.save(tmp, mask)
    else:
        np.savez_compressed(tmp, image=mask)
