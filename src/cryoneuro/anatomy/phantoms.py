"""Procedural, seeded anatomical phantoms (CT-like HU image + label map + sidecar JSON).

Phantom frame (mm, origin at the volume corner; LPS-like but anatomical axes are named below):

* :func:`morton_forefoot` — 50 × 40 × 30 mm at 0.5 mm. x: mediolateral across metatarsals 2–5
  (3rd at x = 16, 4th at x = 33), y: proximal → distal along the metatarsals, z: plantar →
  dorsal. Common plantar digital nerve of the 3rd interspace with a fusiform neuroma 5.5 × 5.5 ×
  10 mm just distal and plantar to the deep transverse metatarsal ligament. Size: mean 4.9 mm
  (US) / 5.1 mm (MRI) in Lee et al. 2007 (Korean J Radiol 8:148); resected neuromas averaged
  6.2 mm on US (Pollak et al. 1992, J Foot Surg 31:534). End organ: the 3rd web space skin,
  where the common nerve divides into the proper digital nerves (the nearest point it supplies).
* :func:`amputation_stump` — 60 × 60 × 60 mm at 0.5 mm around a transtibial stump end. x:
  mediolateral, y: anterior → posterior, z: proximal → distal. Tibial nerve with a ~10 mm bulb
  neuroma in the posterior scar; tibia and fibula ends, posterior myoplasty flap, fat, skin,
  posterior tibial artery (ligated). End organ: the nerve's territory (the sole) is amputated, so
  regrowth that matters is the axons re-entering the bulb: we use the neuroma's **distal pole**
  (a lower bound on the relief distance; give your own point to :func:`predict_relief` otherwise).
"""

from __future__ import annotations

import warnings
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from cryoneuro.anatomy.io import Anatomy
from cryoneuro.anatomy.patient_anatomy import PatientAnatomy, load_patient_anatomy

VOXEL_MM = 0.5

#: CT-like Hounsfield values per label name.
HU = {
    "background": -1000,
    "skin": 40,
    "plantar_fat": -100,
    "subcutaneous_fat": -110,
    "muscle": 50,
    "muscle_flap": 45,
    "tendon": 90,
    "ligament": 90,
    "metatarsal": 1250,
    "metatarsal_marrow": 300,
    "phalanx": 1100,
    "tibia": 1300,
    "fibula": 1200,
    "bone_marrow": 280,
    "digital_nerve": 35,
    "tibial_nerve": 35,
    "neuroma": 45,
    "digital_artery": 50,
    "posterior_tibial_artery": 50,
    "scar": 70,
}


#: Read a phantom written by :meth:`PatientAnatomy.write` (the same reader as a patient's).
load_phantom = load_patient_anatomy


def __getattr__(name: str) -> Any:
    """``Phantom``: the former name of :class:`PatientAnatomy`, kept working with a warning."""
    if name == "Phantom":
        warnings.warn(
            "cryoneuro.anatomy.phantoms.Phantom is deprecated: use "
            "cryoneuro.anatomy.PatientAnatomy (the same class)",
            DeprecationWarning,
            stacklevel=2,
        )
        return PatientAnatomy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- helpers -------------------------------------------------------------------------------------
def _coords(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(
        ((np.arange(n) + 0.5) * VOXEL_MM).reshape([-1 if a == i else 1 for a in range(3)])
        for i, n in enumerate(shape)
    )  # type: ignore[return-value]


def _segment_dist(x, y, z, p0, p1) -> np.ndarray:
    """Distance from grid points to the segment p0–p1."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    t = np.clip(((x - p0[0]) * d[0] + (y - p0[1]) * d[1] + (z - p0[2]) * d[2]) / (d @ d), 0, 1)
    return np.sqrt(
        (x - p0[0] - t * d[0]) ** 2 + (y - p0[1] - t * d[1]) ** 2 + (z - p0[2] - t * d[2]) ** 2
    )


def _tube(x, y, z, pts, radius) -> np.ndarray:
    m = np.zeros(np.broadcast_shapes(x.shape, y.shape, z.shape), bool)
    for a, b in pairwise(pts):
        m |= _segment_dist(x, y, z, a, b) <= radius
    return m


def _finish(name: str, names: list[str], lab: np.ndarray, rng: np.random.Generator) -> Anatomy:
    hu = np.array([HU[n] for n in names], np.float32)[lab]
    hu = ndimage.gaussian_filter(hu, 0.6) + rng.normal(0, 8, lab.shape).astype(np.float32)
    return Anatomy(
        labels=lab.astype(np.uint8),
        label_names=dict(enumerate(names)),
        spacing_mm=(VOXEL_MM,) * 3,
        origin_mm=(VOXEL_MM / 2,) * 3,
        image=hu.astype(np.float32),
        source=name,
    )


#: Web space to the tip of a lesser toe along its proper digital nerve (mm): the farthest skin
#: the common digital nerve supplies, where regrowing axons end. Adult lesser-toe length,
#: proximal + middle + distal phalanx with soft tissue, ≈ 40–50 mm (*check* against an
#: anatomical series); the phantom's toes stop at the web, so this stretch lies outside it.
TOE_LENGTH_MM = 45.0


def _skin(body: np.ndarray, thickness_mm: float) -> np.ndarray:
    return body & (ndimage.distance_transform_edt(body, sampling=VOXEL_MM) <= thickness_mm)


# --- Morton's neuroma forefoot --------------------------------------------------------------------
def morton_forefoot(out_dir: str | Path | None = None, seed: int = 0) -> PatientAnatomy:
    """Forefoot with a 3rd-interspace Morton's neuroma (see module docstring for the frame)."""
    names = [
        "background",
        "skin",
        "plantar_fat",
        "subcutaneous_fat",
        "muscle",
        "tendon",
        "ligament",
        "metatarsal",
        "metatarsal_marrow",
        "phalanx",
        "digital_nerve",
        "neuroma",
        "digital_artery",
    ]
    L = {n: i for i, n in enumerate(names)}
    shape = (100, 80, 60)
    x, y, z = _coords(shape)
    toes_x = (0.0, 16.0, 33.0, 49.5)
    # body: forefoot slab (plantar surface z=2, dorsum z=27) then toes beyond the web (y > 34)
    dorsum = 27.0 - 0.004 * (x - 25) ** 2
    slab = (z >= 2.0 + 0.1 * np.maximum(y - 30, 0) ** 1.2) & (z <= dorsum) & (y <= 34.5)
    toes = np.zeros(shape, bool)
    for tx in toes_x:
        toes |= (((x - tx) / 7.8) ** 2 + ((z - 12.5) / 8.5) ** 2 <= 1) & (y > 30)
    body = np.broadcast_to(slab, shape) | toes
    lab = np.zeros(shape, np.uint8)
    lab[body] = L["plantar_fat"]
    lab[body & (z > 22)] = L["subcutaneous_fat"]
    # interosseous muscles between shafts, flexor/extensor tendons, metatarsals and heads
    lab[body & (z > 11.5) & (z <= 22) & (y < 19)] = L["muscle"]
    lab[body & (z > 14) & (z <= 21) & (y < 26)] = L["muscle"]

    def bone_z(yy):
        return 17.0 - 0.1 * yy

    for tx in toes_x:
        r_shaft = 4.2 - 0.03 * y
        shaft = ((x - tx) ** 2 + (z - bone_z(y)) ** 2 <= r_shaft**2) & (y <= 22)
        head = ((x - tx) / 5.0) ** 2 + ((y - 22) / 6.5) ** 2 + ((z - bone_z(22)) / 7.0) ** 2 <= 1
        bone = shaft | head
        marrow = ((x - tx) ** 2 + (z - bone_z(y)) ** 2 <= (r_shaft - 1.2) ** 2) & (y <= 22) | (
            ((x - tx) / 3.8) ** 2 + ((y - 22) / 5.3) ** 2 + ((z - bone_z(22)) / 5.8) ** 2 <= 1
        )
        phal = (((x - tx) / 3.4) ** 2 + ((z - 13.0) / 3.6) ** 2 <= 1) & (y >= 30.5)
        lab[_tube(x, y, z, [(tx, 0, bone_z(0) - 6.3), (tx, 40, 9.0)], 1.6) & body] = L[
            "tendon"
        ]  # flexor
        lab[_tube(x, y, z, [(tx, 0, bone_z(0) + 6.5), (tx, 40, 20.0)], 1.1) & body] = L[
            "tendon"
        ]  # extensor
        lab[bone] = L["metatarsal"]
        lab[marrow & bone] = L["metatarsal_marrow"]
        lab[phal & body] = L["phalanx"]
    # deep transverse metatarsal ligament between the 3rd and 4th heads, dorsal to the nerve
    lab[(x > 20) & (x < 29) & (y > 17) & (y < 24) & (z > 12.8) & (z < 15.5)] = L["ligament"]
    nx, nz = 24.5, 10.0
    centre = np.array(
        [
            [nx, 0.0, nz + 1.0],
            [nx, 14.0, nz + 0.5],
            [nx, 27.0, nz],
            [nx, 33.0, nz + 0.5],
            [nx, 35.0, 11.0],
        ]
    )
    artery = [(nx + 2.6, 0.0, nz + 2.6), (nx + 2.4, 33.0, nz + 2.3), (nx + 3.5, 38.0, 12.0)]
    lab[_tube(x, y, z, artery, 0.75) & body] = L["digital_artery"]
    lab[_tube(x, y, z, centre[:4], 1.0)] = L["digital_nerve"]
    for bx in (nx - 4.5, nx + 4.5):  # proper digital nerves into the toes
        lab[_tube(x, y, z, [centre[3], (bx, 40.0, 12.0)], 0.7) & body] = L["digital_nerve"]
    neuroma = ((x - nx) / 2.75) ** 2 + ((y - 27.0) / 5.0) ** 2 + ((z - nz) / 2.75) ** 2 <= 1
    lab[neuroma] = L["neuroma"]
    lab[_skin(body, 1.5) & (z < 4.5)] = L["skin"]  # thick plantar skin
    lab[_skin(body, 1.0)] = L["skin"]
    rng = np.random.default_rng(seed)
    ph = PatientAnatomy(
        "morton_forefoot",
        _finish("morton_forefoot", names, lab, rng),
        L["neuroma"],
        L["digital_nerve"],
        [L["digital_artery"]],
        L["skin"],
        [L["metatarsal"], L["metatarsal_marrow"], L["phalanx"]],
        centre,
        np.array([nx + 4.5, 35.0 + TOE_LENGTH_MM, 12.0]),
        notes="3rd intermetatarsal space; end organ = tip of the 4th toe's medial side, "
        f"{TOE_LENGTH_MM:g} mm beyond the web (outside the volume)",
    )
    if out_dir is not None:
        ph.write(out_dir)
    return ph


# --- transtibial amputation stump -----------------------------------------------------------------
def amputation_stump(out_dir: str | Path | None = None, seed: int = 0) -> PatientAnatomy:
    """Transtibial stump end with a tibial-nerve bulb neuroma (see module docstring)."""
    names = [
        "background",
        "skin",
        "subcutaneous_fat",
        "muscle",
        "muscle_flap",
        "scar",
        "tibia",
        "fibula",
        "bone_marrow",
        "tibial_nerve",
        "neuroma",
        "posterior_tibial_artery",
    ]
    L = {n: i for i, n in enumerate(names)}
    shape = (120, 120, 120)
    x, y, z = _coords(shape)
    cx, cy = 30.0, 30.0
    r = np.sqrt((x - cx) ** 2 + ((y - cy) / 0.92) ** 2)
    radius = 28.0 - 0.06 * z  # slightly tapered residual limb
    cap_z = 36.0
    body = np.where(z <= cap_z, r <= radius, (r / radius) ** 2 + ((z - cap_z) / 19.0) ** 2 <= 1)
    lab = np.zeros(shape, np.uint8)
    lab[body] = L["subcutaneous_fat"]
    inner = body & (ndimage.distance_transform_edt(body, sampling=VOXEL_MM) > 6.0)
    lab[inner] = L["muscle"]
    lab[inner & (z > 38)] = L["muscle_flap"]  # posterior myoplasty flap over the bone ends
    tx, ty = 27.0, 19.0  # tibia: anterior, triangular-ish, bevelled cut end
    tib = (
        ((x - tx) / 11.0) ** 2 + ((y - ty) / 9.0) ** 2 + 0.25 * (x - tx) * (y - ty) / 99 <= 1
    ) & (z <= 38 - 0.35 * (ty - y).clip(0))
    tib_m = (((x - tx) / 7.5) ** 2 + ((y - ty) / 5.5) ** 2 <= 1) & (
        z <= 36.5 - 0.35 * (ty - y).clip(0)
    )
    fib = ((x - 45.0) ** 2 + (y - 31.0) ** 2 <= 5.0**2) & (z <= 31.0)
    fib_m = ((x - 45.0) ** 2 + (y - 31.0) ** 2 <= 2.8**2) & (z <= 30.0)
    lab[tib] = L["tibia"]
    lab[fib] = L["fibula"]
    lab[(tib_m & tib) | (fib_m & fib)] = L["bone_marrow"]
    centre = np.array(
        [[29.0, 43.0, 0.0], [29.0, 43.0, 20.0], [29.5, 42.5, 34.0], [30.0, 42.0, 39.0]]
    )
    neuroma_c = np.array([30.0, 41.5, 43.5])
    scar = _tube(x, y, z, [neuroma_c, (30.0, 44.0, 52.0)], 2.0) & body
    lab[scar] = L["scar"]
    lab[_tube(x, y, z, [(34.0, 42.0, 0.0), (34.0, 42.0, 20.0), (34.5, 43.0, 38.0)], 1.5)] = L[
        "posterior_tibial_artery"
    ]
    lab[_tube(x, y, z, centre, 2.0)] = L["tibial_nerve"]
    bulb = ((x - neuroma_c[0]) / 5.0) ** 2 + ((y - neuroma_c[1]) / 4.5) ** 2 + (
        (z - neuroma_c[2]) / 5.5
    ) ** 2 <= 1
    lab[bulb] = L["neuroma"]
    lab[_skin(body, 2.0)] = L["skin"]
    end_organ = neuroma_c + np.array([0.0, 0.0, 5.5])  # distal pole of the bulb
    rng = np.random.default_rng(seed)
    ph = PatientAnatomy(
        "amputation_stump",
        _finish("amputation_stump", names, lab, rng),
        L["neuroma"],
        L["tibial_nerve"],
        [L["posterior_tibial_artery"]],
        L["skin"],
        [L["tibia"], L["fibula"], L["bone_marrow"]],
        np.vstack([centre, neuroma_c, end_organ]),
        end_organ,
        notes="end organ = distal pole of the bulb neuroma "
        "(original territory amputated; lower bound)",
        neuroma_type="stump",
    )
    # the bulb's widest section is the plane through its centre (an ellipsoid about neuroma_c):
    # its arc length along the centreline centre[0] -> ... -> centre[-1] -> neuroma_c
    line = np.vstack([centre, neuroma_c])
    ph.block_proximal_to_mm = float(np.linalg.norm(np.diff(line, axis=0), axis=1).sum())
    if out_dir is not None:
        ph.write(out_dir)
    return ph
