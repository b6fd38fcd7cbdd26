"""A procedural CT-like abdomen phantom with an organ label map (generated, nothing is downloaded).

:func:`abdomen_phantom` draws a contrast-enhanced (portal-venous) upper-abdomen CT in Hounsfield
units from a seed: a body outline with skin, subcutaneous fat and a muscle wall, ribs, the lung
bases over a domed diaphragm, liver, spleen, stomach with air, kidneys with cortex, medulla and
sinus fat, aorta, inferior vena cava, vertebrae with discs, spinal canal and paraspinal muscles,
bowel loops with gas, correlated noise and a little blur. Shapes are smooth implicit surfaces
deformed by a low-frequency random field, so each seed gives a slightly different patient and
the same seed the same voxels. Pure numpy and scipy; the volume is generated, so there is no
licence question beyond this package's own.

Axes are (z, y, x) = (inferior -> superior, anterior -> posterior, patient right -> left), the
radiological display convention; the field of view is fixed in millimetres and ``shape`` sets
the voxel size (:func:`spacing`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FOV_MM = (240.0, 288.0, 384.0)  # z, y, x
LABELS = {
    1: "liver",
    2: "spleen",
    3: "right kidney",
    4: "left kidney",
    5: "aorta",
    6: "inferior vena cava",
    7: "vertebrae",
    8: "right lung",
    9: "left lung",
}
HU = {
    "air": -1000,
    "lung": -860,
    "fat": -100,
    "fluid": 10,
    "bowel": 35,
    "muscle": 55,
    "skin": 40,
    "liver": 110,
    "spleen": 120,
    "kidney": 190,
    "medulla": 120,
    "aorta": 170,
    "ivc": 140,
    "bone": 650,
    "marrow": 220,
    "disc": 85,
    "csf": 15,
    "stomach": 45,
}


def spacing(shape=(96, 144, 192)) -> tuple[float, float, float]:
    """Voxel size in mm (z, y, x) for a volume of ``shape`` over the fixed field of view."""
    return tuple(f / s for f, s in zip(FOV_MM, shape))


def _smooth_field(rng, shape, sigma_vox, amplitude) -> np.ndarray:
    """Gaussian-smoothed white noise scaled to ``amplitude`` standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox, mode="wrap")
    return field * np.float32(amplitude / (field.std() + 1e-6))


def _ellipsoid(z, y, x, centre, radii, warp) -> np.ndarray:
    """The implicit level of an ellipsoid (``< 1`` inside), its surface deformed by ``warp``."""
    (cz, cy, cx), (rz, ry, rx) = centre, radii
    return ((z - cz) / rz) ** 2 + ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 + warp


def abdomen_phantom(shape=(96, 144, 192), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A CT-like abdomen volume (int16, Hounsfield units) and its uint8 labels (:data:`LABELS`).

    Parameters
    ----------
    shape : tuple of int
        Voxels (z, y, x) over the fixed field of view :data:`FOV_MM`; see :func:`spacing`.
    seed : int
        Seeds the shape deformation, the bowel loops and the noise; the same seed gives the
        same volume.
    """
    rng = np.random.default_rng(seed)
    sz, sy, sx = spacing(shape)
    z = (np.arange(shape[0], dtype=np.float32) * sz)[:, None, None]  # 0 .. 240 mm, inferior up
    y = (np.arange(shape[1], dtype=np.float32) * sy - 140.0)[None, :, None]  # anterior negative
    x = (np.arange(shape[2], dtype=np.float32) * sx - FOV_MM[2] / 2)[None, None, :]  # patient right negative
    warp = _smooth_field(rng, shape, (12 / sz, 12 / sy, 12 / sx), 0.12)
    bumps = _smooth_field(rng, shape, (6 / sz, 6 / sy, 6 / sx), 1.0)
    image = np.full(shape, HU["air"], dtype=np.float32)
    labels = np.zeros(shape, dtype=np.uint8)

    # body: a rounded rectangle (superellipse) that widens slightly downwards, flatter at the back
    half_x = 165.0 - 0.06 * (z - 120)
    half_y = np.where(y > 0, 105.0, 118.0) - 0.03 * (z - 120)
    depth = 1 - (np.abs(x / half_x) ** 2.6 + np.abs((y - 10) / half_y) ** 2.2) + 0.03 * warp  # > 0 inside
    radius = np.minimum(half_x, half_y)
    inside_mm = depth * radius / 2.4  # approximate distance from the skin in mm
    body = inside_mm > 0
    image[body] = HU["skin"]
    fat_depth = 14 + 6 * (y < 0) + 2 * bumps
    image[inside_mm > 2] = HU["fat"]
    wall = (inside_mm > fat_depth) & (inside_mm <= fat_depth + 11)
    image[wall] = HU["muscle"]
    cavity = inside_mm > fat_depth + 11
    image[cavity] = HU["fat"] + 10

    # ribs: bone bands in the wall of the upper half, sloping down towards the front
    angle = np.arctan2(x, -y)
    rib_phase = np.sin(2 * np.pi * (z - 30 * np.cos(angle)) / 28.0)
    ribs = (inside_mm > fat_depth + 3) & (inside_mm <= fat_depth + 8) & (rib_phase > 0.9) & (z > 110)
    ribs &= np.abs(angle) > 0.45
    image[ribs] = HU["bone"]

    # lungs over a domed diaphragm (higher on the right, under the liver)
    dome = 212 - 40 * (x / 150) ** 2 - 30 * np.clip(y / 100, 0, 1) - 20 * (y / 130) ** 2 + np.where(x < 0, 8.0, 0.0)
    thorax = cavity & (z > dome + 6 * warp)
    heart = (np.hypot((y + 30) / 55, (x - 25) / 65) < 1) | ((np.abs(x) < 30) & (y > 20))  # and mediastinum
    lung = thorax & ~heart
    image[thorax & heart] = HU["muscle"] - 15
    image[lung] = HU["lung"] + 40 * bumps[lung]
    labels[lung & (x < 0)] = 8
    labels[lung & (x >= 0)] = 9
    belly = cavity & ~thorax

    # bowel loops in the lower abdomen: soft tissue tubes of random blobs, some with gas
    loops = np.zeros(shape, dtype=bool)
    for _ in range(36):
        c = (rng.uniform(0, 125), rng.uniform(-90, 20), rng.uniform(-110, 110))
        r = rng.uniform(14, 24, 3)
        loops |= _ellipsoid(z, y, x, c, r, warp * 2) < 1
        gas = _ellipsoid(z, y, x, (c[0], c[1] - r[1] * 0.4, c[2]), r * 0.4, warp) < 1
        image[belly & gas & (rng.random() < 0.5)] = HU["air"] + 150
    image[belly & loops & (image > -500)] = HU["bowel"]

    # organs, drawn in order so that later ones win where they touch
    def organ(mask, hu, label=0):
        mask &= belly
        image[mask] = hu + 6 * bumps[mask]
        if label:
            labels[mask] = label
        return mask

    liver = _ellipsoid(z, y, x, (165, 5, -62), (62, 80, 78), warp) < 1
    liver |= (_ellipsoid(z, y, x, (175, -55, 10), (38, 35, 62), warp) < 1) & (x < 55)
    stomach = _ellipsoid(z, y, x, (160, -40, 70), (38, 42, 38), warp) < 1
    organ(stomach, HU["stomach"])
    organ(stomach & (_ellipsoid(z, y, x, (160, -40, 70), (30, 34, 30), warp) < 1), HU["fluid"])
    organ(stomach & (_ellipsoid(z, y, x, (168, -58, 70), (22, 18, 22), warp) < 1), HU["air"] + 100)
    organ(liver & ~stomach, HU["liver"], 1)
    organ(_ellipsoid(z, y, x, (150, 45, 95), (45, 32, 28), warp) < 1, HU["spleen"], 2)
    for label, cx, cz in ((3, -68, 108), (4, 70, 120)):
        kidney = _ellipsoid(z, y, x, (cz, 58, cx), (48, 26, 24), warp) < 1
        hilum = _ellipsoid(z, y, x, (cz, 48, cx - np.sign(cx) * 18), (20, 12, 14), 0 * warp) < 1
        organ(kidney, HU["kidney"], label)
        organ(kidney & (_ellipsoid(z, y, x, (cz, 58, cx), (38, 18, 16), warp) < 1), HU["medulla"], label)
        image[kidney & hilum & belly] = HU["fat"] + 50

    # spine: vertebral bodies with discs, canal, posterior elements, paraspinal muscles
    spine_y = 58.0
    body_r = np.hypot(y - spine_y, x)
    vertebra = body_r < 20
    disc = vertebra & (np.abs(((z + 6) % 30) - 15) < 3)
    arch_r = np.hypot(y - (spine_y + 30), x)
    canal = (arch_r < 9) & body
    posterior = ((arch_r < 16) | ((np.abs(x) < 5) & (y > spine_y + 30) & (y < spine_y + 55))) & ~canal
    posterior |= (np.abs(y - (spine_y + 26)) < 3) & (np.abs(x) < 30)  # transverse processes
    muscle = (np.hypot((y - (spine_y + 38)) / 26, (np.abs(x) - 34) / 26) < 1) & body
    image[muscle] = HU["muscle"] + 5 * bumps[muscle]
    psoas = (np.hypot((y - spine_y) / 18, (np.abs(x) - 38) / 16) < 1) & (z < 130) & belly
    image[psoas] = HU["muscle"]
    bone = (vertebra | posterior) & body
    image[bone] = HU["marrow"] + 30 * bumps[bone]
    shell = bone & ~ndimage.binary_erosion(bone, iterations=1)
    image[shell] = HU["bone"]
    image[disc] = HU["disc"]
    image[canal] = HU["csf"]
    labels[bone & ~disc] = 7

    # great vessels in front of the spine
    aorta = np.hypot(y - (spine_y - 32), x - 18) < 11 + 2 * warp
    ivc = (np.hypot((y - (spine_y - 30)) / 10, (x + 24) / 14) < 1) & (z < 180)
    image[aorta & body] = HU["aorta"]
    labels[aorta & body] = 5
    image[ivc & body] = HU["ivc"]
    labels[ivc & body] = 6

    # scanner: partial volume blur, correlated noise, rounded to integer HU
    image = ndimage.gaussian_filter(image, 0.6)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 0.7)
    image += noise * np.float32(18 / noise.std())
    image[~body] = HU["air"] + rng.normal(0, 10, int((~body).sum()))
    return np.clip(np.rint(image), -1024, 3071).astype(np.int16), labels
