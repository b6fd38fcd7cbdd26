"""Synthetic training/test sets for ``nninteractive-train``: crowded objects, one label per object.

Two domains, both deterministic for a seed:

``base``
    Several blobs (rotated ellipsoids, radius about 4-10 voxels, so an object fits a 32^3 patch)
    placed in clusters where each touches or overlaps a neighbour of almost the same brightness,
    like crowded cells or adjacent organs. Overlaps are split by the nearest normalised distance, so
    the border between two touching objects is visible only as shape (a weak dark seam at most): a
    watershed on image gradients leaks into the neighbour, while a network can learn the convex-blob
    prior. Granular texture inside the objects adds internal edges; around them: unlabelled clutter
    of another intensity, a smooth multiplicative bias field, partial-volume blur and noise.
``shifted``
    What a base-trained model has not seen: inverted contrast (dark objects on bright background)
    *and* other shapes (capsules and rounded boxes) of the same sizes, in the same crowded layout.
    Fine-tuning on it should help; the weight-free engine is indifferent to contrast.

:func:`write_training_set` writes an nnU-Net raw dataset (``dataset.json``, ``imagesTr``,
``labelsTr``, ``imagesTs``, ``labelsTs``); the folder is replaced only once it is complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..core import atomic
from ..core.errors import UserError

DOMAINS = ("base", "shifted")
MAX_OBJECTS = 8
#: (background, object, clutter) intensities per domain before bias field and noise.
_LEVELS = {"base": (0.2, 1.0, 0.55), "shifted": (1.0, 0.2, 0.6)}
_NOISE = 0.18


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _shape(domain: str, rng: np.random.Generator) -> tuple[str, np.ndarray, float, float]:
    """A random shape: (kind, parameters, bounding radius, typical radius used to make objects touch)."""
    if domain == "base":
        radii = rng.uniform(4.5, 9.0) * rng.uniform(0.75, 1.25, 3)
        return "ellipsoid", radii, float(radii.max()), float(radii.mean())
    if rng.random() < 0.5:  # capsule: radius, half length of the axis segment
        r, h = rng.uniform(3.0, 5.0), rng.uniform(5.0, 9.0)
        return "capsule", np.array([r, h]), r + h, r + 0.4 * h
    half = rng.uniform(4.0, 8.0, 3)  # rounded box: half sides
    return "box", half, float(np.linalg.norm(half)), float(half.mean())


def _distance(kind: str, params: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Normalised distance (1 on the surface) of points ``local`` (3, ...) in the shape's frame."""
    if kind == "ellipsoid":
        return np.sqrt(sum((local[i] / params[i]) ** 2 for i in range(3)))
    if kind == "capsule":
        r, h = params
        along = np.clip(local[0], -h, h)
        return np.sqrt((local[0] - along) ** 2 + local[1] ** 2 + local[2] ** 2) / r
    return sum(np.abs(local[i] / params[i]) ** 6 for i in range(3)) ** (1 / 6)


def _place(shape, objects, size, reach, rng) -> np.ndarray | None:
    """A centre touching an earlier object (mostly) or free; None when nothing fits."""
    lo = np.full(3, 2.0 + 0.6 * size)
    hi = np.array(shape, float) - lo
    for _ in range(60):
        if objects and rng.random() < 0.9:
            parent = objects[int(rng.integers(len(objects)))]
            u = rng.normal(size=3)
            u /= np.linalg.norm(u)
            c = parent[0] + u * (parent[4] + reach) * rng.uniform(0.5, 0.8)
        else:
            c = rng.uniform(lo, hi)
        if np.any(c < lo) or np.any(c > hi):
            continue
        if all(np.linalg.norm(c - o[0]) > 0.55 * (o[4] + reach) for o in objects):
            return c
    return None


def _objects(shape, domain, rng) -> np.ndarray:
    """Labels 1..n of crowded objects, overlaps split by the nearest normalised distance."""
    labels = np.zeros(shape, np.uint8)
    best = np.full(shape, np.inf, np.float32)
    objects: list[tuple] = []
    for _ in range(int(rng.integers(5, MAX_OBJECTS + 1))):
        kind, params, size, reach = _shape(domain, rng)
        centre = _place(shape, objects, size, reach, rng)
        if centre is None:
            continue
        rot = _rotation(rng)
        objects.append((centre, kind, params, size, reach))
        box = tuple(slice(max(0, int(c - size - 1)), min(n, int(c + size + 2))) for c, n in zip(centre, shape))
        grid = np.stack(np.meshgrid(*[np.arange(s.start, s.stop) for s in box], indexing="ij"), 0).astype(np.float32)
        local = np.tensordot(rot.T, grid - centre[:, None, None, None], axes=1)
        d = _distance(kind, params, local)
        win = (d <= 1) & (d < best[box])
        best[box][win] = d[win]
        labels[box][win] = len(objects)
    out = np.zeros_like(labels)
    value = 0
    for v, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        comp, n = ndimage.label(labels[sl] == v)
        if n == 0:
            continue
        keep = comp == 1 + int(np.argmax(np.bincount(comp.ravel())[1:])) if n > 1 else comp == 1
        if keep.sum() >= 30:  # drop slivers swallowed by neighbours
            value += 1
            out[sl][keep] = value
    return out


def make_case(shape=(64, 64, 64), domain: str = "base", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A float32 image (Z, Y, X) and uint8 labels (0 background, 1..n one value per object)."""
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    shape = tuple(int(s) for s in shape)
    rng = np.random.default_rng([int(seed), DOMAINS.index(domain)])
    labels = _objects(shape, domain, rng)
    bg, fg, clutter_level = _LEVELS[domain]
    image = np.full(shape, bg, np.float32)
    n = int(labels.max())
    offsets = np.concatenate([[0.0], fg + rng.uniform(-0.06, 0.06, n) * (1 if fg > bg else -1)])
    image[labels > 0] = offsets[labels[labels > 0]]
    # granular texture inside objects (like cytoplasm): internal gradients a watershed stops at
    texture = ndimage.gaussian_filter(rng.normal(0.0, 1.0, shape).astype(np.float32), 1.2)
    image += np.where(labels > 0, 0.25 * abs(fg - bg) * texture / texture.std(), 0.0).astype(np.float32)
    # a weak seam where two objects touch: the only image cue besides shape
    grown = ndimage.grey_dilation(labels, size=3)
    seam = (labels > 0) & (grown != labels)
    image[seam] += 0.15 * (bg - fg)
    # clutter: small unlabelled blobs of another intensity, may abut objects (never covers them)
    clutter = np.zeros(shape, bool)
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    for _ in range(int(rng.integers(8, 15))):
        c, r = rng.uniform(0, shape), rng.uniform(1.5, 4.0, 3)
        clutter |= sum(((g - ci) / ri) ** 2 for g, ci, ri in zip(grids, c, r)) <= 1
    clutter &= labels == 0
    image[clutter] = clutter_level
    image = ndimage.gaussian_filter(image, 0.7)
    bias = ndimage.zoom(
        rng.uniform(0.75, 1.25, (3, 3, 3)), [s / 3 for s in shape], order=1, mode="nearest", grid_mode=True
    )
    image *= bias[tuple(slice(0, s) for s in shape)].astype(np.float32)
    image += rng.normal(0.0, _NOISE, shape).astype(np.float32)
    return image.astype(np.float32), labels


def _save(path: Path, array: np.ndarray, file_ending: str) -> None:
    if file_ending == ".npy":
        np.save(path, array)
    else:
        import nibabel as nib

        nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))


def _is_dataset(folder: Path) -> bool:
    return (folder / "dataset.json").is_file() or not any(folder.iterdir())


def write_training_set(
    folder,
    n_train: int = 24,
    n_test: int = 6,
    shape=(64, 64, 64),
    domain: str = "base",
    seed: int = 0,
    file_ending: str = ".nii.gz",
) -> Path:
    """Write an nnU-Net raw dataset of ``make_case`` volumes; test cases use seeds disjoint from training.

    Training case ``i`` has seed ``seed * 100000 + i``, test case ``i`` ``seed * 100000 + 50000 + i``.
    An existing ``folder`` is replaced only when it is empty or a dataset (holds ``dataset.json``).
    """
    if file_ending not in (".nii.gz", ".nii", ".npy"):
        raise UserError(f"file_ending must be .nii.gz, .nii or .npy, got {file_ending!r}")
    if n_train < 1 or n_test < 0 or seed < 0:
        raise UserError("give n_train >= 1, n_test >= 0 and seed >= 0")
    folder = Path(folder)
    max_label = 0
    with atomic.replacing(folder, folder=True, may_replace_folder=_is_dataset, make_parents=True) as tmp:
        for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
            (tmp / sub).mkdir(parents=True)
        for split, count, base in (("Tr", n_train, 0), ("Ts", n_test, 50000)):
            for i in range(count):
                image, labels = make_case(shape, domain, seed * 100000 + base + i)
                max_label = max(max_label, int(labels.max()))
                _save(tmp / f"images{split}" / f"case_{i:03d}_0000{file_ending}", image, file_ending)
                _save(tmp / f"labels{split}" / f"case_{i:03d}{file_ending}", labels, file_ending)
        meta = {
            "channel_names": {"0": "synthetic"},
            "labels": {"background": 0, **{f"object_{v}": v for v in range(1, max_label + 1)}},
            "numTraining": n_train,
            "file_ending": file_ending,
            "name": f"synthetic_{domain}",
            "description": f"napari_nninteractive.samples.training_set, domain {domain}, seed {seed}",
        }
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return folder
