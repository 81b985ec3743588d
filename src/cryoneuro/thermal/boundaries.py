"""Surface boundaries inside the domain: skin warming, skin convection, flowing blood.

Why: the outer faces of the domain are either held at body temperature or adiabatic
(:mod:`cryoneuro.thermal.solver`), and the skin/air interface inside the domain is adiabatic in
effect (air conducts 0.026 W/m/K). A clinician protects the skin with warm saline or gauze, the
skin loses heat to the room, and an artery's blood keeps flowing and brings heat while its
lumen is open. Each is a boundary condition on a surface *inside* the grid.

Model. A :class:`SurfaceBoundary` names a set of cells *outside* the conducting tissue (the air
cells touching the skin, or the cells of an artery's lumen) that carry the boundary. Each such
cell becomes a **reservoir**: its temperature is fixed at ``temperature_c`` and its conductivity
is ``k_b``. A tissue cell ``i`` beside it exchanges heat through their common face with the
engine's usual harmonic face mean (kernels.py), which gives the flux per unit face area

    q = 2 k_i k_b / (k_i + k_b) · (T_b − T_i) / Δx.

With ``k_b = h Δx / 2`` this is exactly ``(T_b − T_i) / (Δx / (2 k_i) + 1 / h)``: conduction
through the half cell to the surface in series with a film coefficient ``h`` — the Robin
(convective) condition ``−k ∂T/∂n = h (T − T_b)`` at the cell face. With ``h = None`` the
reservoir gets the engine's wall conductivity (``kernels.K_WALL``), i.e. the surface is held at
``T_b`` (Dirichlet, as the domain's outer faces are).

Energy. A reservoir is a material whose temperature does not depend on its enthalpy (the
three slopes of T(H) are zero), so the stencil leaves its temperature alone while its enthalpy
accumulates exactly the heat that crossed its faces: ``ThermalResult.boundary_heat_j`` is that
sum (positive: heat taken from the tissue), and tissue enthalpy + boundary heat + probe heat
balance to round-off (tests/test_thermal_boundaries.py). No kernel changes were needed: the
reservoir is one extra row of the material table, so the Numba and array (GPU) backends treat
it alike.

Typical values (each a parameter):

* Skin to still room air: natural convection plus radiation, ``h ≈ 10 W/m²/K`` (free convection
  of gases 2–25 W/m²/K, Incropera & DeWitt, *Fundamentals of Heat and Mass Transfer*, 6th ed.,
  Table 1.1; linearised radiation at skin temperature ≈ 6 W/m²/K, ibid. eq. 1.9 with ε ≈ 0.98),
  ambient 22 °C (a user setting: the room's temperature).
* Warm saline or a saline-soaked gauze on the skin: the skin surface held at the saline's
  temperature (37 °C by default, a user setting) — a Dirichlet surface, the limit ``h → ∞``.
* Flowing blood in an artery: ``h = Nu k_blood / D`` with the laminar thermal-entry Nusselt
  number of Hausen (constant wall temperature; Incropera & DeWitt eq. 8.57)
  ``Nu = 3.66 + 0.0668 Gz / (1 + 0.04 Gz^(2/3))``, ``Gz = (D / L) Re Pr``, and Dittus–Boelter
  ``Nu = 0.023 Re^0.8 Pr^0.4`` (ibid. eq. 8.60) above Re = 2300; see :func:`vessel_h_w_m2k`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cryoneuro.errors import InputError
from cryoneuro.thermal import kernels

#: Skin to still room air, W/m²/K (see the module docstring for the source).
SKIN_AIR_H_W_M2K = 10.0
#: Room temperature, °C: a user setting (the room's own temperature).
ROOM_TEMPERATURE_C = 22.0
#: Warm saline on the skin, °C: a user setting (saline warmed to body temperature).
WARM_SALINE_C = 37.0

#: Blood (IT'IS database v4, Hasgall et al., doi:10.13099/VIP21000-04-0): density, specific
#: heat, conductivity; dynamic viscosity of whole blood at high shear ≈ 3.5 mPa·s (*check*:
#: the usual Newtonian value for large-vessel flow).
BLOOD_RHO = 1050.0
BLOOD_C = 3617.0
BLOOD_K = 0.52
BLOOD_MU = 3.5e-3
#: Blood enters at body temperature (°C) and starts to freeze at the blood liquidus of
#: :data:`cryoneuro.tissue.TISSUES` ("blood", −0.6 °C).
BLOOD_C_IN = 37.0
BLOOD_FREEZING_ONSET_C = -0.6


@dataclass(frozen=True)
class SurfaceBoundary:
    """A reservoir at ``temperature_c`` coupled to its tissue neighbours by ``h_w_m2k``.

    ``cells``: boolean array on the grid, the cells that carry the boundary (outside the
    conducting tissue: air beside the skin, an artery's lumen). ``h_w_m2k``: film coefficient
    (W/m²/K); ``None`` holds the surface at ``temperature_c`` (Dirichlet).
    """

    name: str
    cells: np.ndarray
    temperature_c: float
    h_w_m2k: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not math.isfinite(self.temperature_c):
            raise InputError(f"boundary '{self.name}': temperature_c must be a finite number")
        if self.h_w_m2k is not None and not (math.isfinite(self.h_w_m2k) and self.h_w_m2k > 0):
            raise InputError(
                f"boundary '{self.name}': h_w_m2k must be a positive number "
                f"(got {self.h_w_m2k}); leave it out to hold the surface at its temperature"
            )

    def conductivity(self, voxel_mm: float) -> float:
        """``k_b`` of the reservoir cells: ``h Δx / 2`` (Robin) or the wall value (Dirichlet)."""
        if self.h_w_m2k is None:
            return kernels.K_WALL
        return self.h_w_m2k * voxel_mm * 1e-3 / 2.0


def check(surfaces, shape: tuple[int, ...]) -> None:
    """Refuse surfaces on another grid or claiming the same cells (one clear line each)."""
    taken = np.zeros(shape, bool)
    for s in surfaces:
        if s.cells.shape != tuple(shape):
            raise InputError(
                f"boundary '{s.name}': cells {s.cells.shape} do not match the grid {tuple(shape)}"
            )
        if (taken & s.cells).any():
            raise InputError(
                f"boundary '{s.name}' claims cells another boundary already holds; "
                "give each cell to one boundary"
            )
        taken |= s.cells


def reservoir_rows(surfaces, voxel_mm: float) -> np.ndarray:
    """Material-table rows (kernels.py layout) of the reservoirs, one per surface.

    ``T(H) = T_b`` whatever ``H`` (zero slopes), ``k = k_b`` in both phases, no perfusion or
    metabolism: the cell keeps its temperature and collects the heat that crosses its faces.
    """
    rows = np.zeros((len(surfaces), kernels.N_COLUMNS))
    for r, s in enumerate(surfaces):
        kb = s.conductivity(voxel_mm)
        rows[r, kernels.TS] = s.temperature_c
        rows[r, kernels.TL] = s.temperature_c + 1.0
        rows[r, kernels.CF] = rows[r, kernels.CU] = 1.0
        rows[r, kernels.HL] = 0.0
        rows[r, kernels.KF] = rows[r, kernels.KU] = kb
        rows[r, kernels.INV_DT] = 1.0
        # INV_CF, INV_CU, SLOPE_M, PERF, MET, SINK stay 0
    return rows


def extra_face_sum(surfaces, free: np.ndarray) -> int:
    """The most reservoir faces any free non-reservoir cell has (each adds at most one to the
    per-cell face-multiplier sum of the stability limit: the harmonic mean is below ``2 k_i``)."""
    if not surfaces:
        return 0
    res = np.zeros(free.shape, bool)
    for s in surfaces:
        res |= s.cells
    res &= free
    count = np.zeros(free.shape, np.int8)
    for axis in range(3):
        for shift in (1, -1):
            count += np.roll(res, shift, axis=axis) & ~_edge(free.shape, axis, shift)
    count[~free | res] = 0
    return int(count.max())


def _edge(shape, axis: int, shift: int) -> np.ndarray:
    """Cells whose rolled-in neighbour wrapped around the array (not a real neighbour)."""
    m = np.zeros(shape, bool)
    sl: list[slice | int] = [slice(None)] * 3
    sl[axis] = 0 if shift == 1 else -1
    m[tuple(sl)] = True
    return m


# --- ready-made surfaces ----------------------------------------------------------------------
def outer_shell(body: np.ndarray) -> np.ndarray:
    """Cells outside ``body`` that share a face with it (where the skin meets the air)."""
    body = np.asarray(body, bool)
    grown = ndimage.binary_dilation(body, structure=ndimage.generate_binary_structure(3, 1))
    return grown & ~body


def skin_convection(
    body: np.ndarray,
    h_w_m2k: float = SKIN_AIR_H_W_M2K,
    ambient_c: float = ROOM_TEMPERATURE_C,
) -> SurfaceBoundary:
    """Skin exposed to room air: Robin with ``h`` and the room temperature (module docstring)."""
    return SurfaceBoundary(
        "skin-air convection",
        outer_shell(body),
        float(ambient_c),
        float(h_w_m2k),
        source="h: free convection + radiation, Incropera & DeWitt Table 1.1 / eq. 1.9; "
        "ambient: user setting",
    )


def skin_warming(
    body: np.ndarray,
    temperature_c: float = WARM_SALINE_C,
    *,
    centres_mm=None,
    radius_mm: float | None = None,
    grid=None,
) -> SurfaceBoundary:
    """Warm saline / gauze on the skin: the skin surface held at ``temperature_c``.

    With ``centres_mm`` and ``radius_mm`` (and the ``grid``) only the surface within that
    distance of any centre (e.g. the needle's entry point) is covered; otherwise all of it.
    """
    cells = outer_shell(body)
    if centres_mm is not None and radius_mm is not None:
        if grid is None:
            raise InputError("skin_warming: give the grid with centres_mm and radius_mm")
        x, y, z = grid.centres_mm()
        near = np.zeros(cells.shape, bool)
        for c in np.atleast_2d(np.asarray(centres_mm, float)):
            near |= (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= radius_mm**2
        cells &= near
    return SurfaceBoundary(
        "warm saline on the skin",
        cells,
        float(temperature_c),
        None,
        source="skin protection by warm saline/gauze: surface held at the saline temperature "
        "(user setting)",
    )


def vessel_h_w_m2k(diameter_mm: float, velocity_m_s: float, length_mm: float) -> dict:
    """Blood-side film coefficient of a vessel of ``diameter_mm`` at mean ``velocity_m_s`` over a
    cooled length ``length_mm`` (module docstring: Hausen laminar entry / Dittus–Boelter).

    Returns ``{"h_w_m2k", "nusselt", "reynolds", "prandtl", "graetz", "correlation"}``.
    """
    for label, v in (
        ("diameter_mm", diameter_mm),
        ("velocity_m_s", velocity_m_s),
        ("length_mm", length_mm),
    ):
        if not (math.isfinite(v) and v > 0):
            raise InputError(f"vessel: {label} must be a positive number (got {v})")
    d = diameter_mm * 1e-3
    re = BLOOD_RHO * velocity_m_s * d / BLOOD_MU
    pr = BLOOD_MU * BLOOD_C / BLOOD_K
    gz = d / (length_mm * 1e-3) * re * pr
    if re < 2300.0:
        nu = 3.66 + 0.0668 * gz / (1.0 + 0.04 * gz ** (2.0 / 3.0))
        corr = "Hausen laminar thermal entry (Incropera & DeWitt eq. 8.57)"
    else:
        nu = 0.023 * re**0.8 * pr**0.4
        corr = "Dittus-Boelter turbulent (Incropera & DeWitt eq. 8.60)"
    return {
        "h_w_m2k": nu * BLOOD_K / d,
        "nusselt": nu,
        "reynolds": re,
        "prandtl": pr,
        "graetz": gz,
        "correlation": corr,
    }


def _faces(a: np.ndarray, b: np.ndarray) -> int:
    """Number of cell faces between the masks ``a`` and ``b`` (face neighbours)."""
    n = 0
    for axis in range(3):
        x, y = np.moveaxis(a, axis, 0), np.moveaxis(b, axis, 0)
        n += int((x[1:] & y[:-1]).sum() + (x[:-1] & y[1:]).sum())
    return n


def equivalent_diameter_mm(lumen: np.ndarray, voxel_mm: float) -> float:
    """Diameter of a tubular mask from its volume and its voxel face area: for a cylinder
    ``D = 4 V / S``, and the staircase of a round section has ``4/π`` times the true wall area
    (a pixelated circle's outline is its bounding square's), so ``D = 16 V / (π S_faces)``."""
    lumen = np.asarray(lumen, bool)
    if not lumen.any():
        raise InputError("vessel: the lumen mask is empty")
    faces = _faces(lumen, ~lumen)
    if faces == 0:
        raise InputError("vessel: the lumen has no wall inside the grid")
    volume = float(lumen.sum()) * voxel_mm**3
    return max(16.0 * volume / (math.pi * faces * voxel_mm**2), voxel_mm)


def flowing_vessel(
    name: str,
    lumen: np.ndarray,
    free: np.ndarray,
    voxel_mm: float,
    *,
    velocity_m_s: float,
    diameter_mm: float | None = None,
    blood_c: float = BLOOD_C_IN,
) -> tuple[SurfaceBoundary, dict]:
    """An artery as a flowing vessel: its lumen cells a reservoir at blood temperature with the
    Nusselt film coefficient (:func:`vessel_h_w_m2k`).

    The voxel staircase of a round lumen has more face area than the true wall: ``h`` is scaled
    by (true wall area ``4 V / D``) / (voxel face area), so the heat per unit length is that of
    the real cylinder. Returns the boundary and its parameters (for the plan's record).
    """
    lumen = np.asarray(lumen, bool) & np.asarray(free, bool)
    d_mm = diameter_mm or equivalent_diameter_mm(lumen, voxel_mm)
    volume_mm3 = float(lumen.sum()) * voxel_mm**3
    length_mm = max(volume_mm3 / (math.pi * d_mm**2 / 4.0), voxel_mm)
    film = vessel_h_w_m2k(d_mm, velocity_m_s, length_mm)
    faces = _faces(lumen, np.asarray(free, bool) & ~lumen)
    wall_mm2 = 4.0 * volume_mm3 / d_mm
    scale = wall_mm2 / (faces * voxel_mm**2) if faces else 1.0
    h = film["h_w_m2k"] * scale
    info = {
        **film,
        "diameter_mm": d_mm,
        "length_mm": length_mm,
        "velocity_m_s": velocity_m_s,
        "flow_ml_s": velocity_m_s * math.pi * (d_mm * 1e-3) ** 2 / 4.0 * 1e6,
        "staircase_area_scale": scale,
        "h_applied_w_m2k": h,
    }
    bc = SurfaceBoundary(
        name,
        lumen,
        float(blood_c),
        float(h),
        source=f"flowing blood, {film['correlation']}",
    )
    return bc, info


def blood_temperature_drop_c(heat_w: float, flow_ml_s: float) -> float:
    """Mixing-cup temperature drop of the blood that carries ``heat_w`` away: ``Q / (ρ c V̇)``."""
    return heat_w / (BLOOD_RHO * BLOOD_C * flow_ml_s * 1e-6)
