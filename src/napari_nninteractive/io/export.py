"""Export annotated objects as one label map: NIfTI (with the source's affine), TIFF, zarr or npz.

``instance`` maps give the objects the values 1..N in their order; ``semantic`` maps keep each
object's label value (its class id when annotating a semantic map). Where objects overlap, the
later one wins, and :func:`label_map_with_losses` reports every object that lost voxels that way
(an object covered whole by later ones is named, never dropped silently). Files are written under a temporary name and renamed (:func:`..core.atomic.replacing`),
so an export that fails (disk full, no permission) never damages an earlier export of the same name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.atomic import replacing
from ..core.errors import OutputError
from . import formats
from .volumes import VolumeIOError

#: Each label-map format and the suffix it is written with (from :data:`.formats.FORMATS`).
FORMATS = {f.name: f.suffix for f in formats.formats("write_label_map")}
KINDS = ("instance", "semantic")


@dataclass(frozen=True)
class OverlapLoss:
    """Object ``index`` (in the order given) shows ``lost`` of its ``voxels`` under a later object's value."""

    index: int
    lost: int
    voxels: int

    @property
    def gone(self) -> bool:
        """The object is not in the map at all."""
        return self.lost == self.voxels


def label_map_with_losses(
    masks: Sequence[np.ndarray], labels: Sequence[int], kind: str = "instance"
) -> tuple[np.ndarray, tuple[OverlapLoss, ...]]:
    """One label map from boolean ``masks`` (all one shape) and their ``labels``, plus what overlaps cost.

    ``instance``: the objects get 1..N in the order given; ``semantic``: each its label value.
    A voxel claimed by several objects gets the value of the **last** of them (objects are listed
    oldest first, so the newer annotation wins, as when painting them one after another). A label map
    holds one value per voxel, so the earlier object loses that voxel: the returned
    :class:`OverlapLoss` list names each object that lost voxels to a different value, with how many
    (``gone`` when none of its voxels is left), so the caller can tell the user. Overlaps of objects
    with the same value (one class of a semantic map) lose nothing. Empty masks are no loss.

    Raises :class:`~.volumes.VolumeIOError` for an unknown ``kind``, no masks, masks of different
    shapes, a missing semantic value, or values outside 1 .. 2**32 - 1.
    """
    if kind not in KINDS:
        raise VolumeIOError(f"The label map kind must be one of {', '.join(KINDS)}, not {kind!r}.")
    if not masks:
        raise VolumeIOError("There are no objects to export yet: segment an object first.")
    shapes = {tuple(np.shape(m)) for m in masks}
    if len(shapes) > 1:
        raise VolumeIOError(
            f"The objects' masks have different shapes {sorted(shapes)}; a label map needs every "
            "object on one image grid. Export the objects of each image separately."
        )
    if kind == "semantic" and len(labels) != len(masks):
        raise VolumeIOError(f"{len(masks)} masks but {len(labels)} label values; give one value per object.")
    values = list(range(1, len(masks) + 1)) if kind == "instance" else [int(v) for v in labels]
    if min(values) < 1 or max(values) >= 2**32:
        raise VolumeIOError(f"Label values must be 1 to {2**32 - 1}; got {min(values)} to {max(values)}.")
    dtype = np.uint8 if max(values) < 256 else np.uint16 if max(values) < 65536 else np.uint32
    out = np.zeros(masks[0].shape, dtype=dtype)
    for mask, value in zip(masks, values):
        out[np.asarray(mask, dtype=bool)] = value
    losses = []
    for i, (mask, value) in enumerate(zip(masks, values)):
        mask = np.asarray(mask, dtype=bool)
        voxels = int(np.count_nonzero(mask))
        lost = voxels - int(np.count_nonzero(out[mask] == value)) if voxels else 0
        if lost:
            losses.append(OverlapLoss(i, lost, voxels))
    return out, tuple(losses)


def label_map(masks: Sequence[np.ndarray], labels: Sequence[int], kind: str = "instance") -> np.ndarray:
    """The label map of :func:`label_map_with_losses` (later objects win where objects overlap)."""
    return label_map_with_losses(masks, labels, kind)[0]


def describe_losses(losses: Sequence[OverlapLoss], names: Sequence[str]) -> str:
    """A sentence for the user naming each object that lost voxels to overlaps (``""`` when none did)."""
    if not losses:
        return ""
    parts = [
        f"'{names[x.index]}' is not in it at all (all {x.voxels} voxels lie under later objects)"
        if x.gone
        else f"'{names[x.index]}' lost {x.lost} of {x.voxels} voxels"
        for x in losses
    ]
    return (
        "Objects overlap and a label map holds one value per voxel, so later objects won: "
        + "; ".join(parts)
        + ". Refine the objects so that they do not overlap to keep every voxel."
    )


def _lookup(path: str | Path) -> tuple[formats.FileFormat, str]:
    """The label-map format ``path`` names, and its suffix; else :class:`VolumeIOError` listing the suffixes."""
    found = formats.match(path, "write_label_map")
    if found is None:
        raise VolumeIOError(
            f"{path}: unknown export type; end the name with one of {formats.suffix_list('write_label_map')}."
        )
    return found


def canonical_suffix(path: str | Path) -> str:
    """The export suffix ``path`` ends with, lower-case (``.NII.GZ`` -> ``.nii.gz``)."""
    return _lookup(path)[1]


def format_of(path: str | Path) -> str:
    """``nifti``, ``tiff``, ``zarr`` or ``npz`` from the name (any letter case)."""
    return _lookup(path)[0].name


def default_path(image_name: str, source: str | Path | None, fmt: str, kind: str = "instance") -> Path:
    """``<image file stem>_<kind>.<ext>`` beside the image file; for an in-memory image, from its layer name."""
    from ..core.document import safe_name

    if source:
        source = Path(source)
        stem, folder = formats.strip_suffix(source.name), source.parent
    else:
        stem, folder = image_name, Path.cwd()
    return folder / f"{safe_name(stem)}_{kind}{FORMATS[fmt]}"


def nifti_affine(
    labels_shape: Sequence[int],
    source: str | Path | None,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    metadata: dict | None = None,
) -> tuple[np.ndarray, str]:
    """The affine for a NIfTI export and where it came from.

    The source NIfTI's own affine when its grid matches; else a 4x4 ``affine`` in the layer's
    metadata; else the layer's scale and translation.
    """
    named = formats.match(source) if source else None
    if named is not None and named[0].name == "nifti" and Path(source).is_file():
        try:
            import nibabel as nib

            img = nib.load(str(source))
            if tuple(img.shape[: len(labels_shape)]) == tuple(labels_shape):
                return np.asarray(img.affine, dtype=float), f"the affine of {Path(source).name}"
        except Exception:
            pass
    meta = (metadata or {}).get("affine")
    if meta is not None and np.shape(meta) == (4, 4):
        return np.asarray(meta, dtype=float), "the affine in the layer's metadata"
    nd = len(labels_shape)
    affine = np.eye(4)
    if scale is not None:
        affine[:nd, :nd] = np.diag(np.asarray(scale, dtype=float)[-nd:])
    if translate is not None:
        affine[:nd, 3] = np.asarray(translate, dtype=float)[-nd:]
    return affine, "the layer's scale and translation"


def _is_zarr_store(folder: Path) -> bool:
    return any((folder / name).exists() for name in (".zarray", ".zgroup", "zarr.json"))


def write_label_map(
    path: str | Path, labels: np.ndarray, affine: np.ndarray | None = None, inputs: Sequence[str | Path | None] = ()
) -> Path:
    """Write ``labels`` to ``path`` (format from the name, any letter case), atomically.

    Refused with :class:`~..core.errors.OutputError`: ``path`` is one of ``inputs`` (the image
    file), an existing folder (for zarr: a folder that is not a zarr store), or an existing file
    where a zarr folder would go.
    """
    path = Path(path)
    found, suffix = _lookup(path)
    fmt = found.name
    if not path.parent.is_dir():
        raise VolumeIOError(f"Cannot export to {path}: the folder {path.parent} does not exist.")
    try:
        with replacing(
            path,
            inputs=inputs,
            folder=fmt == "zarr",
            may_replace_folder=_is_zarr_store,
            temp_name=f"labels{suffix}",
            what="export",
        ) as tmp:
            if fmt == "nifti":
                import nibabel as nib

                img = nib.Nifti1Image(labels, np.eye(4) if affine is None else affine)
                img.header.set_data_dtype(labels.dtype)
                nib.save(img, str(tmp))
            elif fmt == "tiff":
                import tifffile

                tifffile.imwrite(str(tmp), labels, compression="zlib", photometric="minisblack")
            elif fmt == "zarr":
                import zarr

                chunks = tuple(min(n, 64 if labels.ndim == 3 else 512) for n in labels.shape)
                arr = zarr.open_array(str(tmp), mode="w", shape=labels.shape, dtype=labels.dtype, chunks=chunks)
                arr[...] = labels
            else:
                np.savez_compressed(tmp, labels=labels)
    except OutputError as exc:
        raise VolumeIOError(f"Export failed: {exc}") from None
    return path


__all__ = [
    "FORMATS",
    "KINDS",
    "OverlapLoss",
    "canonical_suffix",
    "default_path",
    "describe_losses",
    "format_of",
    "label_map",
    "label_map_with_losses",
    "nifti_affine",
    "write_label_map",
]
