"""Needle trajectory: from a skin entry point to the target, checked against the anatomy.

The path is the straight segment from ``entry`` to the probe tip. It is sampled every quarter
voxel through the label map (nearest voxel); the check reports

* the structures the needle passes through, in order, with the depth at which it enters each;
* violations: the path crosses bone or an artery (a needle cannot pass bone, and puncturing an
  artery is a complication), or the first tissue it meets is not skin;
* the clearance of the path from each structure to avoid (Euclidean distance transform of
  that structure, sampled along the path), with a warning under ``min_clearance_mm``;
* depth (skin to tip), and the angle between the needle and the skin surface normal at the
  entry (0° = perpendicular), and to each grid axis.

All coordinates are the simulation grid's, in millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from cryoneuro.errors import GeometryError
from cryoneuro.thermal.geometry import Grid

#: Default clearance from arteries and bone below which the plan warns (mm): about two needle
#: diameters for a 17G probe — a planning convention, adjustable per case.
DEFAULT_MIN_CLEARANCE_MM = 3.0


@dataclass
class TrajectoryReport:
    entry_mm: list[float]
    tip_mm: list[float]
    depth_mm: float
    angle_to_skin_normal_deg: float | None
    angles_to_axes_deg: list[float]
    path: list[tuple[str, float]]  # (structure entered, depth in mm)
    clearance_mm: dict[str, float]
    violations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def _label_at(labels: np.ndarray, grid: Grid, pts: np.ndarray) -> np.ndarray:
    idx = np.floor((pts - np.asarray(grid.origin_mm)) / grid.voxel_mm).astype(int)
    inside = np.all((idx >= 0) & (idx < np.asarray(grid.shape)), axis=1)
    out = np.full(len(pts), -1, dtype=int)
    i = idx[inside]
    out[inside] = labels[i[:, 0], i[:, 1], i[:, 2]]
    return out


def _sample(field_: np.ndarray, grid: Grid, pts: np.ndarray) -> np.ndarray:
    coords = ((pts - np.asarray(grid.origin_mm)) / grid.voxel_mm - 0.5).T
    return ndimage.map_coordinates(field_, coords, order=1, mode="nearest")


def assess_trajectory(
    entry_mm,
    tip_mm,
    labels: np.ndarray,
    grid: Grid,
    names: dict[int, str],
    *,
    skin: str = "skin",
    avoid: dict[str, list[str]] | None = None,
    background: int = 0,
    min_clearance_mm: float = DEFAULT_MIN_CLEARANCE_MM,
) -> TrajectoryReport:
    """Check the straight needle path from ``entry_mm`` to ``tip_mm``.

    ``avoid`` maps a structure class (e.g. ``"bone"``, ``"artery"``) to the label names that
    belong to it; crossing one is a violation, passing closer than ``min_clearance_mm`` a
    warning.
    """
    entry = np.asarray(entry_mm, dtype=float)
    tip = np.asarray(tip_mm, dtype=float)
    seg = tip - entry
    depth = float(np.linalg.norm(seg))
    if depth < grid.voxel_mm:
        raise GeometryError(
            "trajectory: entry and tip are closer than one voxel; move the entry point"
        )
    if not grid.contains(tip):
        raise GeometryError(f"trajectory: tip {tip.round(2).tolist()} mm is outside the image")
    unit = seg / depth
    avoid = avoid or {}
    ids = {name: lab for lab, name in names.items()}
    n = max(2, int(np.ceil(depth / (grid.voxel_mm / 4))) + 1)
    s = np.linspace(0.0, depth, n)
    pts = entry + s[:, None] * unit
    along = _label_at(labels, grid, pts)

    path: list[tuple[str, float]] = []
    last = None
    for lab, d in zip(along, s, strict=True):
        if lab != last:
            name = (
                "outside"
                if lab < 0
                else ("air" if lab == background else names.get(int(lab), str(lab)))
            )
            path.append((name, round(float(d), 2)))
            last = lab
    violations, warnings = [], []
    first_tissue = next((p for p in path if p[0] not in ("outside", "air")), None)
    if first_tissue is None:
        violations.append("the path meets no tissue: the entry and tip are both outside the body")
    elif first_tissue[0] != skin:
        violations.append(
            f"the needle enters through '{first_tissue[0]}', not '{skin}': put the "
            "entry point outside the body so the path starts at the skin"
        )

    clearance: dict[str, float] = {}
    for cls, label_names in avoid.items():
        present = [ids[nm] for nm in label_names if nm in ids]
        if not present:
            continue
        mask = np.isin(labels, present)
        crossed = [(nm, d) for nm, d in path if nm in label_names]
        if crossed:
            violations.append(
                f"the needle crosses {cls} ('{crossed[0][0]}' at {crossed[0][1]:.1f} mm "
                "depth): choose another entry point"
            )
        dist = ndimage.distance_transform_edt(~mask, sampling=grid.voxel_mm)
        clearance[cls] = float(_sample(dist, grid, pts).min())
        if not crossed and clearance[cls] < min_clearance_mm:
            warnings.append(
                f"the needle passes {clearance[cls]:.1f} mm from {cls} (< {min_clearance_mm:g} mm)"
            )

    angle_skin = None
    skin_id = ids.get(skin)
    if skin_id is not None and first_tissue is not None and first_tissue[0] == skin:
        body = ndimage.gaussian_filter((labels != background).astype(float), 1.0)
        grads = [ndimage.sobel(body, axis=a) for a in range(3)]
        at = entry + first_tissue[1] * unit
        g = np.array([_sample(gr, grid, at[None, :])[0] for gr in grads])
        if np.linalg.norm(g) > 0:
            inward = g / np.linalg.norm(g)  # the body indicator increases inwards
            angle_skin = float(np.degrees(np.arccos(np.clip(abs(inward @ unit), 0.0, 1.0))))
    axes = [float(np.degrees(np.arccos(np.clip(abs(unit[a]), 0.0, 1.0)))) for a in range(3)]
    skin_depth = first_tissue[1] if first_tissue else 0.0
    return TrajectoryReport(
        entry_mm=entry.round(3).tolist(),
        tip_mm=tip.round(3).tolist(),
        depth_mm=round(depth - skin_depth, 2),
        angle_to_skin_normal_deg=angle_skin,
        angles_to_axes_deg=axes,
        path=path,
        clearance_mm=clearance,
        violations=violations,
        warnings=warnings,
    )


def tip_for_target(entry_mm, target_mm, active_length_mm: float) -> np.ndarray:
    """Tip position that centres the active length on the target along the entry→target line."""
    entry = np.asarray(entry_mm, dtype=float)
    target = np.asarray(target_mm, dtype=float)
    unit = (target - entry) / np.linalg.norm(target - entry)
    return target + 0.5 * active_length_mm * unit
