"""Training data from an nnU-Net raw dataset folder, and the objects a simulated user segments.

The folder holds ``dataset.json`` (``channel_names``, ``labels``, ``file_ending``), ``imagesTr/``
(``<case>_0000<file_ending>``, one file per channel) and ``labelsTr/<case><file_ending>``; a test
split lives in ``imagesTs/`` and ``labelsTs/``. Any volume format :func:`..io.volumes.read_volume`
reads may be the ``file_ending``. :func:`load_dataset` checks every case before returning and
raises one :class:`DatasetError` listing every problem; :class:`ObjectTable` lists the objects
(label values or their connected components) and draws random training targets from them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ..core.errors import UserError
from ..core.geometry import BBox, bbox_to_slices
from ..core.jsonio import read_json
from ..io import formats
from ..io.volumes import Volume, VolumeIOError, read_volume

log = logging.getLogger(__name__)

_SPLITS = {"train": ("imagesTr", "labelsTr"), "test": ("imagesTs", "labelsTs")}
_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
_MAX_LINES = 20
_AFFINE_TOLERANCE = 1e-3
_INT32_MAX = int(np.iinfo(np.int32).max)


class DatasetError(UserError, ValueError):
    """A dataset folder that cannot be used for training; the message names the case(s) and the fix."""


@dataclass
class Case:
    """One training case: a channel-first float32 image (C, Z, Y, X) and integer labels (Z, Y, X)."""

    name: str
    image: np.ndarray
    labels: np.ndarray


@dataclass
class TrainingData:
    """The cases of one split of a dataset, with the names from its ``dataset.json``."""

    name: str
    channel_names: dict[str, str]
    label_names: dict[int, str]
    file_ending: str
    cases: list[Case]

    @property
    def n_channels(self) -> int:
        """The number of image channels (``channel_names`` entries)."""
        return len(self.channel_names)


def _read_description(folder: Path) -> tuple[dict[str, str], dict[int, str], set[int], str, Any]:
    """``dataset.json``: channel names, label names (no background), declared values, file ending, numTraining."""
    path = folder / "dataset.json"
    meta = read_json(path, DatasetError, missing="Give the nnU-Net dataset folder that holds dataset.json.")
    if not isinstance(meta, dict):
        raise DatasetError(f"{path} must hold a JSON object with channel_names, labels and file_ending.")
    absent = [k for k in ("channel_names", "labels", "file_ending") if k not in meta]
    if absent:
        raise DatasetError(f"{path} lacks {', '.join(absent)}; add them as in an nnU-Net v2 dataset.json.")
    channels, labels, ending = meta["channel_names"], meta["labels"], meta["file_ending"]
    if not isinstance(channels, dict) or sorted(channels) != [str(i) for i in range(len(channels))] or not channels:
        raise DatasetError(f'{path}: channel_names must map "0", "1", ... to names, e.g. {{"0": "CT"}}.')
    if not isinstance(ending, str) or ending.lower() not in formats.suffixes("read_volume"):
        raise DatasetError(
            f"{path}: file_ending {ending!r} is not a format this plugin reads; use one of "
            f"{formats.suffix_list('read_volume')}."
        )
    if not isinstance(labels, dict) or not labels:
        raise DatasetError(f'{path}: labels must map names to values, e.g. {{"background": 0, "liver": 1}}.')
    if any(isinstance(v, (list, dict)) for v in labels.values()):
        raise DatasetError(
            f"{path} declares region-based labels (lists of values); training on regions is not supported. "
            "Give one value per label."
        )
    if all(type(v) is int for v in labels.values()):  # nnU-Net v2: name -> value
        values = dict(labels)
    elif all(re.fullmatch(r"-?\d+", k) and isinstance(v, str) for k, v in labels.items()):  # v1: value -> name
        values = {name: int(k) for k, name in labels.items()}
    else:
        raise DatasetError(f'{path}: labels must map names to integer values, e.g. {{"background": 0, "liver": 1}}.')
    bad = sorted(v for v in values.values() if not 0 <= v <= _INT32_MAX)
    if bad or len(set(values.values())) != len(values):
        raise DatasetError(f"{path}: label values must be distinct integers from 0 to {_INT32_MAX}; fix {labels}.")
    names = {v: n for n, v in values.items() if v != 0 and n != "ignore"}
    return {str(k): str(v) for k, v in channels.items()}, names, set(values.values()), ending, meta.get("numTraining")


def _list_split(
    folder: Path, split: str, ending: str
) -> tuple[Path, Path, dict[str, dict[int, Path]], dict[str, Path]]:
    """The image files per case and channel, and the label file per case, of ``split``."""
    if split not in _SPLITS:
        raise DatasetError(f"unknown split {split!r}; use 'train' or 'test'.")
    images_dir, labels_dir = (folder / d for d in _SPLITS[split])
    if not images_dir.is_dir():
        raise DatasetError(
            f"{images_dir} does not exist; the {split} split needs {images_dir.name}/ and {labels_dir.name}/."
        )

    def files(d: Path) -> dict[str, Path]:
        found = d.iterdir() if d.is_dir() else []
        return {
            f.name[: -len(ending)]: f
            for f in found
            if f.name.lower().endswith(ending.lower()) and not f.name.startswith(".")
        }

    images: dict[str, dict[int, Path]] = {}
    for stem, path in files(images_dir).items():
        m = _CHANNEL_FILE.match(stem)
        case, channel = (m["case"], int(m["channel"])) if m else (stem, -1)
        images.setdefault(case, {})[channel] = path
    return images_dir, labels_dir, images, files(labels_dir)


def _geometry_differs(a: Volume, b: Volume) -> bool:
    """Whether both volumes carry an affine (NIfTI) and they differ by more than the tolerance."""
    if "affine" not in a.meta or "affine" not in b.meta:
        return False
    return not np.allclose(np.asarray(a.meta["affine"]), np.asarray(b.meta["affine"]), atol=_AFFINE_TOLERANCE)


def _label_dtype(top: int) -> type:
    return np.uint8 if top <= 0xFF else np.uint16 if top <= 0xFFFF else np.int32


def _read_case(
    name: str, channels: dict[int, Path], label_path: Path, n_channels: int, declared: set[int], problems: list[str]
) -> Case | None:
    """Read and check one case; its problems are appended to ``problems`` (then ``None``)."""
    before = len(problems)

    def bad(msg: str) -> None:
        problems.append(f"case {name}: {msg}")

    vols: list[Volume] = []
    for path in [channels[c] for c in range(n_channels)] + [label_path]:
        try:
            vols.append(read_volume(path))
        except (VolumeIOError, OSError) as exc:
            bad(f"cannot read {path.name} ({exc}); replace the file.")
    if len(problems) > before:
        return None
    *images, label_vol = vols
    for vol in images:
        arr = vol.array
        if arr.dtype.kind not in "biuf":
            bad(f"{vol.path.name} has data type {arr.dtype}; give real-valued (integer or float) images.")
        elif arr.ndim != 3:
            bad(
                f"{vol.path.name} has shape {arr.shape}; each channel file must hold one 3-D volume "
                "(put channels in separate _0000, _0001, ... files)."
            )
        elif arr.dtype.kind == "f" and not np.isfinite(arr.astype(np.float32, copy=False)).all():
            bad(f"{vol.path.name} has NaN or infinite values (as float32); replace them with finite values.")
    if len(problems) > before:
        return None
    shapes = {v.array.shape for v in images}
    if len(shapes) > 1:
        bad(f"its channel files have different shapes {sorted(shapes)}; resample them onto one grid.")
        return None
    lab = label_vol.array
    if lab.dtype.kind not in "biuf":
        bad(f"{label_path.name} has data type {lab.dtype}; give integer labels.")
        return None
    if lab.shape != images[0].array.shape:
        bad(f"labels {label_path.name} have shape {lab.shape}, the image {images[0].array.shape}; resample the labels.")
        return None
    if any(_geometry_differs(v, label_vol) for v in images):
        bad(f"labels {label_path.name} and the image have different affines; resample the labels onto the image grid.")
    if lab.dtype.kind == "f" and not (np.isfinite(lab).all() and (lab == np.round(lab)).all()):
        bad(f"labels {label_path.name} have non-integer values; labels must be whole numbers.")
        return None
    values = np.unique(lab).astype(np.int64)
    if values.size and values[0] < 0:
        bad(f"labels {label_path.name} have negative values {values[values < 0][:5].tolist()}; use 0 for background.")
    undeclared = [int(v) for v in values if v >= 0 and int(v) not in declared]
    if undeclared:
        bad(
            f"labels {label_path.name} have values {undeclared[:10]} that dataset.json does not declare "
            f"(declared: {sorted(declared)}); declare them or relabel."
        )
    if len(problems) > before:
        return None
    image = np.stack([v.array.astype(np.float32, copy=False) for v in images])
    return Case(name, image, lab.astype(_label_dtype(int(values[-1]) if values.size else 0)))


def _raise(folder: Path, problems: list[str]) -> None:
    shown = problems[:_MAX_LINES] + (
        [f"... and {len(problems) - _MAX_LINES} more"] if len(problems) > _MAX_LINES else []
    )
    raise DatasetError(
        f"{folder}: {len(problems)} problem(s) in the dataset; fix them and load again:\n  " + "\n  ".join(shown)
    )


def load_dataset(folder: str | Path, split: str = "train", max_cases: int | None = None) -> TrainingData:
    """Read and check every case of ``split`` (``"train"`` or ``"test"``), sorted by name.

    ``max_cases`` keeps the first cases (by name); only those are checked. Cases whose labels
    are all zero are skipped with a warning. Every problem found is reported in one
    :class:`DatasetError`.
    """
    folder = Path(folder)
    if max_cases is not None and max_cases < 1:
        raise ValueError(f"max_cases must be at least 1, not {max_cases}")
    channel_names, label_names, declared, ending, num_training = _read_description(folder)
    images_dir, labels_dir, images, labels = _list_split(folder, split, ending)
    names = sorted(set(images) | set(labels))
    if not names:
        raise DatasetError(f"{images_dir} has no files ending in {ending}; add the cases or fix file_ending.")
    if split == "train" and num_training is not None and num_training != len(names):
        log.warning("%s: dataset.json says numTraining=%r but %d cases were found.", folder, num_training, len(names))
    n_channels = len(channel_names)
    problems: list[str] = []
    cases: list[Case] = []
    empty: list[str] = []
    for name in names[:max_cases]:
        channels = images.get(name, {})
        before = len(problems)
        if not channels:
            problems.append(
                f"case {name}: {labels_dir.name}/{labels[name].name} has no image {images_dir.name}/{name}_0000{ending}; "
                "add the image or remove the label file."
            )
        elif -1 in channels:
            problems.append(
                f"case {name}: {channels[-1].name} lacks the _0000 channel suffix; rename it {name}_0000{ending}."
            )
        else:
            missing = [f"{name}_{c:04d}{ending}" for c in range(n_channels) if c not in channels]
            extra = [channels[c].name for c in sorted(channels) if c >= n_channels]
            if missing:
                problems.append(
                    f"case {name}: missing channel file(s) {', '.join(missing)} in {images_dir.name}/ "
                    f"(dataset.json names {n_channels} channels); add them."
                )
            if extra:
                problems.append(
                    f"case {name}: {', '.join(extra)} beyond the {n_channels} channel(s) of dataset.json; "
                    "remove them or add the channels to channel_names."
                )
            if name not in labels:
                problems.append(
                    f"case {name}: no label file {labels_dir.name}/{name}{ending}; add it or remove the case's images."
                )
        if len(problems) > before:
            continue
        case = _read_case(name, channels, labels[name], n_channels, declared, problems)
        if case is not None and not case.labels.any():
            log.warning("case %s: its labels are all zero; skipped.", name)
            empty.append(name)
        elif case is not None:
            cases.append(case)
    if problems:
        _raise(folder, problems)
    if not cases:
        raise DatasetError(f"{folder}: the labels of every case ({len(empty)}) are all zero; nothing to train on.")
    return TrainingData(folder.name, channel_names, label_names, ending, cases)


@dataclass(frozen=True)
class ObjectRef:
    """One object: its case, label value(s), component index (instances mode), bounding box and size."""

    case: int
    values: tuple[int, ...]
    instance: int | None
    bbox: BBox
    size: int


def _touch(a: BBox, b: BBox) -> bool:
    """Whether half-open box ``a`` dilated by one voxel overlaps box ``b``."""
    return all(alo <= bhi and blo <= ahi for (alo, ahi), (blo, bhi) in zip(a, b))


def _bbox(slices: tuple[slice, ...]) -> BBox:
    return tuple((int(s.start), int(s.stop)) for s in slices)


class ObjectTable:
    """Every object of every case, and random targets for training.

    ``objects="labels"``: one object per label value present in a case; ``"instances"``: one per
    6-connected component of each value. Objects under ``min_size`` voxels are skipped.
    """

    def __init__(self, data: TrainingData, objects: str = "labels", min_size: int = 10):
        if objects not in ("labels", "instances"):
            raise ValueError(f"objects must be 'labels' or 'instances', not {objects!r}")
        self.data, self.objects, self.min_size = data, objects, min_size
        self.refs: list[ObjectRef] = []
        self._components: dict[int, np.ndarray] = {}  # case -> map of component ids (instances mode)
        self._ids: dict[tuple[int, int, int], int] = {}  # (case, value, instance) -> component id
        for i, case in enumerate(data.cases):
            lab = case.labels.astype(np.int32, copy=False)
            sizes = np.bincount(lab.ravel())
            for value, sl in enumerate(ndimage.find_objects(lab), start=1):
                if sl is None or value not in data.label_names or sizes[value] < min_size:
                    continue
                if objects == "labels":
                    self.refs.append(ObjectRef(i, (value,), None, _bbox(sl), int(sizes[value])))
                    continue
                comp = ndimage.label(lab[sl] == value)[0]
                comp_sizes = np.bincount(comp.ravel())
                for k, csl in enumerate(ndimage.find_objects(comp), start=1):
                    if comp_sizes[k] < min_size:
                        continue
                    full = tuple(slice(s.start + c.start, s.start + c.stop) for s, c in zip(sl, csl))
                    cmap = self._components.setdefault(i, np.zeros(lab.shape, np.int32))
                    gid = len(self._ids) + 1
                    cmap[sl][comp == k] = gid
                    self._ids[(i, value, k)] = gid
                    self.refs.append(ObjectRef(i, (value,), k, _bbox(full), int(comp_sizes[k])))
        if not self.refs:
            raise DatasetError(
                f"dataset {data.name}: no case has an object of at least {min_size} voxels; lower min_size or check the labels."
            )
        self._by_case: dict[int, list[int]] = {}
        for j, ref in enumerate(self.refs):
            self._by_case.setdefault(ref.case, []).append(j)

    def __len__(self) -> int:
        return len(self.refs)

    def _paint(self, ref: ObjectRef, out: np.ndarray) -> None:
        sl = bbox_to_slices(ref.bbox)
        if ref.instance is None:
            out[sl] |= np.isin(self.data.cases[ref.case].labels[sl], ref.values)
        else:
            out[sl] |= self._components[ref.case][sl] == self._ids[(ref.case, ref.values[0], ref.instance)]

    def mask(self, ref: ObjectRef) -> np.ndarray:
        """The bool (Z, Y, X) mask of ``ref`` in its case."""
        out = np.zeros(self.data.cases[ref.case].labels.shape, bool)
        self._paint(ref, out)
        return out

    def sample(self, rng: np.random.Generator, merge_probability: float = 0.0) -> tuple[int, np.ndarray]:
        """A uniformly drawn object as ``(case index, bool target mask)``.

        With ``merge_probability`` the target is the union with 1-2 other objects of the same
        case whose boxes touch it (any other object of the case when none touch): random label
        variations, so that a model learns to resolve ambiguity. Deterministic given ``rng``.
        """
        k = int(rng.integers(len(self.refs)))
        ref = self.refs[k]
        target = self.mask(ref)
        if rng.random() < merge_probability:
            others = [j for j in self._by_case[ref.case] if j != k]
            pool = [j for j in others if _touch(ref.bbox, self.refs[j].bbox)] or others
            if pool:
                n = min(int(rng.integers(1, 3)), len(pool))
                for p in rng.choice(len(pool), size=n, replace=False):
                    self._paint(self.refs[pool[int(p)]], target)
        return ref.case, target


__all__ = ["Case", "DatasetError", "ObjectRef", "ObjectTable", "TrainingData", "load_dataset"]
