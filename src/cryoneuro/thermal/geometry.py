"""Grid and cryoprobe geometry: where the probe is, at sub-voxel accuracy.

Conventions (shared with the axisymmetric reference solver):

* The grid is cell-centred: cell ``(i, j, k)`` has its centre at
  ``origin + (i + 1/2, j + 1/2, k + 1/2) * voxel``; arrays are indexed ``[x, y, z]``.
* A probe has a tip point ``P``, a unit direction ``d`` from the tip towards the handle, a radius
  ``a`` and an active length ``L``. Its **active (freezing) surface** is the capsule of all points
  within ``a`` of the segment from ``P + a d`` to ``P + L d`` — a cylinder with a hemispherical
  end whose apex is exactly the tip point. Beyond ``P + L d`` the probe continues as an
  **insulated shaft** (radius ``a``) to the edge of the domain; its surface is adiabatic.

Sub-voxel accuracy (the ghost-fluid treatment of a Dirichlet boundary, Gibou et al. 2002,
J Comput Phys 176:205): cells whose centre lies within half a voxel of the active surface are
*attached* to the probe and take its temperature. A free cell next to an attached cell exchanges
heat with the probe through a face whose conductance uses the true distance ``theta * dx`` from
the cell centre to the probe surface along that axis (found by sphere tracing the exact signed
distance), so the boundary sits where the probe really is, not on the voxel staircase.
Because a free cell is at least half a voxel from the surface, ``theta >= 1/2`` and the explicit
time step shrinks by at most a bounded factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cryoneuro.errors import GeometryError

#: Cell kinds.
FREE, ACTIVE, INSULATED = np.uint8(0), np.uint8(1), np.uint8(2)

#: Cells within this many voxels of the active surface are attached to the probe.
ATTACH_FRACTION = 0.5
#: Largest ray length (in voxels) searched for the probe surface from a free cell.
MAX_THETA = 2.0


@dataclass(frozen=True)
class Grid:
    """A uniform cell-centred 3D grid in millimetres."""

    shape: tuple[int, int, int]
    voxel_mm: float
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @classmethod
    def from_size(cls, size_mm: tuple[float, float, float], voxel_mm: float) -> Grid:
        shape = tuple(round(s / voxel_mm) for s in size_mm)
        for axis, (s, n) in enumerate(zip(size_mm, shape, strict=True)):
            if n < 3:
                raise GeometryError(
                    f"domain.size_mm[{axis}] = {s} mm gives only {n} voxels of {voxel_mm} mm; "
                    "make the domain larger or the voxels smaller"
                )
            if abs(n * voxel_mm - s) > 1e-6 * max(1.0, s):
                raise GeometryError(
                    f"domain.size_mm[{axis}] = {s} mm is not a whole number of {voxel_mm} mm "
                    "voxels; round the size or change voxel_mm"
                )
        return cls(shape=shape, voxel_mm=float(voxel_mm))  # type: ignore[arg-type]

    @property
    def size_mm(self) -> tuple[float, float, float]:
        return tuple(n * self.voxel_mm for n in self.shape)  # type: ignore[return-value]

    @property
    def n_cells(self) -> int:
        return int(np.prod(self.shape))

    def axis_mm(self, axis: int) -> np.ndarray:
        """Cell-centre coordinates along one axis."""
        return self.origin_mm[axis] + (np.arange(self.shape[axis]) + 0.5) * self.voxel_mm

    def centres_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable cell-centre coordinate arrays (x[:,None,None], y[None,:,None], z)."""
        x, y, z = (self.axis_mm(a) for a in range(3))
        return x[:, None, None], y[None, :, None], z[None, None, :]

    def contains(self, point_mm: np.ndarray) -> bool:
        lo = np.asarray(self.origin_mm)
        hi = lo + np.asarray(self.size_mm)
        return bool(np.all(point_mm >= lo) and np.all(point_mm <= hi))


@dataclass(frozen=True)
class ProbeGeometry:
    """A straight cryoprobe: tip point, direction to the handle, diameter, active length."""

    tip_mm: tuple[float, float, float]
    direction: tuple[float, float, float]
    diameter_mm: float
    active_length_mm: float
    name: str = "probe"
    _unit: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        d = np.asarray(self.direction, dtype=float)
        norm = float(np.linalg.norm(d))
        if not math.isfinite(norm) or norm == 0.0:
            raise GeometryError(
                f"{self.name}.direction must be a non-zero vector (got {self.direction})"
            )
        if not (self.diameter_mm > 0 and math.isfinite(self.diameter_mm)):
            raise GeometryError(
                f"{self.name}.diameter_mm must be positive (got {self.diameter_mm})"
            )
        if not (
            self.active_length_mm >= self.diameter_mm / 2 and math.isfinite(self.active_length_mm)
        ):
            raise GeometryError(
                f"{self.name}.active_length_mm ({self.active_length_mm}) must be at least the "
                f"probe radius ({self.diameter_mm / 2} mm)"
            )
        object.__setattr__(self, "_unit", d / norm)

    @property
    def radius_mm(self) -> float:
        return self.diameter_mm / 2.0

    @property
    def unit(self) -> np.ndarray:
        return self._unit

    @property
    def segment_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """End points A (tip-side sphere centre) and B (end of the active part)."""
        p = np.asarray(self.tip_mm, dtype=float)
        return p + self.radius_mm * self.unit, p + self.active_length_mm * self.unit

    @property
    def active_volume_mm3(self) -> float:
        a, length = self.radius_mm, self.active_length_mm
        return math.pi * a * a * (length - a) + 2.0 / 3.0 * math.pi * a**3

    def active_sdf(self, x, y, z) -> np.ndarray:
        """Signed distance (mm) to the active surface: negative inside.

        The active part is the capsule cut flat at the end of the active length (where the
        shaft takes over): ``max(capsule, s - L)``, a lower bound of the Euclidean distance
        that is exact on the cylinder and the tip, so sphere tracing still converges.
        """
        return _active_sdf(x, y, z, self)

    def axial_and_radial(self, x, y, z) -> tuple[np.ndarray, np.ndarray]:
        """Coordinate along the axis from the tip (mm) and distance from the axis (mm)."""
        p = np.asarray(self.tip_mm, dtype=float)
        u = self.unit
        rx, ry, rz = x - p[0], y - p[1], z - p[2]
        s = rx * u[0] + ry * u[1] + rz * u[2]
        r2 = rx * rx + ry * ry + rz * rz - s * s
        return s, np.sqrt(np.maximum(r2, 0.0))

    def frame(self) -> np.ndarray:
        """Orthonormal probe frame (rows u, v, w) with w along the probe direction."""
        w = self.unit
        helper = np.array([1.0, 0.0, 0.0]) if abs(w[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        u = np.cross(helper, w)
        u /= np.linalg.norm(u)
        v = np.cross(w, u)
        return np.vstack([u, v, w])


def _active_sdf(x, y, z, probe: ProbeGeometry) -> np.ndarray:
    a_pt, b_pt = probe.segment_mm
    u = probe.unit
    p = np.asarray(probe.tip_mm, dtype=float)
    s = (x - p[0]) * u[0] + (y - p[1]) * u[1] + (z - p[2]) * u[2]
    return np.maximum(
        _capsule_sdf(x, y, z, a_pt, b_pt, probe.radius_mm), s - probe.active_length_mm
    )


def _capsule_sdf(x, y, z, a_pt: np.ndarray, b_pt: np.ndarray, radius: float) -> np.ndarray:
    ab = b_pt - a_pt
    ab2 = float(ab @ ab)
    px, py, pz = x - a_pt[0], y - a_pt[1], z - a_pt[2]
    t = 0.0 if ab2 == 0.0 else np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / ab2, 0.0, 1.0)
    dx, dy, dz = px - t * ab[0], py - t * ab[1], pz - t * ab[2]
    return np.sqrt(dx * dx + dy * dy + dz * dz) - radius


@dataclass
class ProbeRaster:
    """The probes on the grid: cell kinds, which probe each attached cell belongs to, and the
    ghost-fluid boundary faces.

    ``boundary_cells`` (n, 3) are free cells with an attached neighbour; ``boundary_inv_theta``
    (n, 6) holds ``1/theta`` for faces -x, +x, -y, +y, -z, +z (0 where the neighbour is not
    attached); ``boundary_probe`` (n, 6) the probe index of that neighbour.
    """

    kind: np.ndarray
    probe_index: np.ndarray
    boundary_cells: np.ndarray
    boundary_inv_theta: np.ndarray
    boundary_probe: np.ndarray

    @property
    def max_face_sum(self) -> float:
        """Largest sum over a cell's faces of the conductance multipliers (6 in the bulk)."""
        if len(self.boundary_cells) == 0:
            return 6.0
        n_probe_faces = (self.boundary_inv_theta > 0).sum(axis=1)
        return float(max(6.0, np.max(6 - n_probe_faces + self.boundary_inv_theta.sum(axis=1))))


_FACES = ((0, -1), (0, 1), (1, -1), (1, 1), (2, -1), (2, 1))


def rasterise_probes(
    grid: Grid, probes: list[ProbeGeometry], *, insulated_shaft: bool = True
) -> ProbeRaster:
    """Mark attached and insulated-shaft cells; compute ghost-fluid face distances.

    The shaft (beyond the active length, radius ``a``) is adiabatic by default: its voxels
    (centre inside the shaft cylinder) take no part in conduction. ``insulated_shaft=False``
    makes it thermally transparent instead (tissue conducts through it), which lengthens the
    iceball along the shaft by about 0.35 mm on the reference case (docs/contracts.md,
    docs/thermal.md).
    """
    h = grid.voxel_mm
    x, y, z = grid.centres_mm()
    kind = np.zeros(grid.shape, dtype=np.uint8)
    probe_index = np.full(grid.shape, -1, dtype=np.int8)
    sdfs = []
    for idx, probe in enumerate(probes):
        if not grid.contains(np.asarray(probe.tip_mm)):
            raise GeometryError(
                f"probes[{idx}].tip_mm {list(probe.tip_mm)} is outside the domain "
                f"(0..{list(grid.size_mm)} mm); move the tip inside"
            )
        if probe.diameter_mm < grid.voxel_mm:
            raise GeometryError(
                f"probes[{idx}].diameter_mm = {probe.diameter_mm} mm is smaller than voxel_mm = "
                f"{grid.voxel_mm} mm; use voxels of at most {probe.diameter_mm:g} mm"
            )
        sdf = probe.active_sdf(x, y, z)
        sdfs.append(sdf)
        s, r = probe.axial_and_radial(x, y, z)
        shaft = (s > probe.active_length_mm) & (r < probe.radius_mm)
        if insulated_shaft:
            kind[shaft & (kind == FREE)] = INSULATED
        attached = sdf < ATTACH_FRACTION * h
        if not attached.any():
            raise GeometryError(
                f"probes[{idx}] covers no voxel; check tip_mm and use smaller voxels"
            )
        kind[attached] = ACTIVE
        probe_index[attached] = idx
    # Ghost-fluid faces: for each free cell with an attached neighbour, the distance along the
    # axis to the probe surface (sphere tracing on the exact signed distance).
    is_active = kind == ACTIVE
    neighbour_active = np.zeros(grid.shape, dtype=bool)
    for axis, sign in _FACES:
        neighbour_active |= _shift(is_active, axis, sign)
    cells = np.argwhere(neighbour_active & (kind == FREE))
    inv_theta = np.zeros((len(cells), 6))
    which = np.full((len(cells), 6), -1, dtype=np.int64)
    if len(cells):
        centres = np.column_stack([grid.axis_mm(a)[cells[:, a]] for a in range(3)])
        for f, (axis, sign) in enumerate(_FACES):
            nb = cells.copy()
            nb[:, axis] += sign
            valid = (nb[:, axis] >= 0) & (nb[:, axis] < grid.shape[axis])
            nbv = np.where(valid[:, None], nb, 0)
            attached_nb = valid & is_active[nbv[:, 0], nbv[:, 1], nbv[:, 2]]
            if not attached_nb.any():
                continue
            pidx = probe_index[nbv[:, 0], nbv[:, 1], nbv[:, 2]].astype(np.int64)
            step = np.zeros(3)
            step[axis] = sign
            theta = np.empty(len(cells))
            for p in np.unique(pidx[attached_nb]):
                sel = attached_nb & (pidx == p)
                nb_sdf = sdfs[p][nbv[sel, 0], nbv[sel, 1], nbv[sel, 2]]
                theta[sel] = _ray_theta(probes[p], centres[sel], step, h, nb_sdf)
            inv_theta[attached_nb, f] = 1.0 / theta[attached_nb]
            which[attached_nb, f] = pidx[attached_nb]
    return ProbeRaster(kind, probe_index, cells.astype(np.int64), inv_theta, which)


def _ray_theta(
    probe: ProbeGeometry, start: np.ndarray, step: np.ndarray, h: float, nb_sdf: np.ndarray
) -> np.ndarray:
    """Distance (in voxels) along ``step`` from each start point to the active surface.

    Sphere tracing converges because the capsule's signed distance is exact. A ray that
    passes the probe tangentially (no hit within MAX_THETA voxels) takes the surface to lie
    beyond the attached neighbour by that neighbour's own distance to it.
    """
    t = np.zeros(len(start))
    hit = np.zeros(len(start), dtype=bool)
    for _ in range(64):
        p = start + t[:, None] * step[None, :]
        d = _active_sdf(p[:, 0], p[:, 1], p[:, 2], probe)
        hit |= d < 1e-7 * h
        t = np.where(hit, t, t + np.maximum(d, 0.0))
        if np.all(hit | (t > MAX_THETA * h)):
            break
    theta = np.where(hit, t / h, 1.0 + np.maximum(nb_sdf, 0.0) / h)
    return np.clip(theta, ATTACH_FRACTION, MAX_THETA)


def _shift(a: np.ndarray, axis: int, sign: int) -> np.ndarray:
    """``out[i] = a[i + sign]`` along ``axis`` (False beyond the edge)."""
    out = np.zeros_like(a)
    src = [slice(None)] * 3
    dst = [slice(None)] * 3
    if sign > 0:
        src[axis], dst[axis] = slice(1, None), slice(None, -1)
    else:
        src[axis], dst[axis] = slice(None, -1), slice(1, None)
    out[tuple(dst)] = a[tuple(src)]
    return out
