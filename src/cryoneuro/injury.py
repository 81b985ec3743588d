"""Nerve and tissue injury from the thermal history: grades, nerve profile, coverage, safety.

All functions are pure over arrays indexed [x, y, z] on a :class:`~cryoneuro.thermal.Grid`
(cell-centred, mm). Temperatures are °C (usually ``ThermalResult.min_temperature_c``).

Thresholds (defaults; all are parameters):

* Nerve (Sunderland classification): minimum temperature above about −20 °C → 1st degree,
  neurapraxia (transient conduction block); −20 to −100 °C → 2nd degree, axonotmesis (axons
  undergo Wallerian degeneration, endo-/peri-/epineurium intact, regeneration along the tubes);
  colder than about −100 °C → risk of 3rd degree and worse, neurotmesis. Source: Ilfeld,
  Preciado & Trescot 2016, Expert Rev Med Devices 13:713 (table of temperature vs. injury), as
  summarised in the cryoneurolysis literature; −55 °C gave axonotmesis with intact sheaths in
  rat sciatic nerve (Hsu & Stevenson 2015, Muscle Nerve 51:268). A **complete block** requires
  the *whole* cross-section (its warmest point) to reach the axonotmesis threshold — at a station
  that is a real, sampled cross-section of the nerve (≥ 50 % of the nerve's median section, ≥ 90 %
  of its tissue sampled; for a stump neuroma proximal to or through the bulb's widest section):
  see :func:`nerve_profile`. Unsampled (NaN) points never decide a block or hide a cold spot.
* Tissue lethal ice: −20 to −40 °C for cell death (Gage & Baust 1998, Cryobiology 37:171);
  coverage is reported at both.
* Skin: stay above 0 °C (no freezing → no cold injury/frostbite of skin). Arteries: flowing
  blood is a heat source that protects the wall; reported, not forbidden. Bone: reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from cryoneuro.errors import InputError
from cryoneuro.thermal.geometry import Grid

NEURAPRAXIA_C = -20.0  # warmer than this: 1st degree only (Ilfeld et al. 2016)
NEUROTMESIS_C = -100.0  # colder than this: risk of 3rd degree or worse (Ilfeld et al. 2016)
LETHAL_C = (-20.0, -40.0)  # tissue lethal-ice band (Gage & Baust 1998)
SKIN_SAFE_C = 0.0


def sunderland_grade(
    min_temperature_c: np.ndarray | float,
    axonotmesis_c: float = NEURAPRAXIA_C,
    neurotmesis_c: float = NEUROTMESIS_C,
) -> np.ndarray:
    """Per-voxel grade: 0 none (above 0 °C), 1 neurapraxia, 2 axonotmesis, 3 neurotmesis risk.

    Grade 1 is given for any temperature ≤ 0 °C but warmer than ``axonotmesis_c``; 2 for
    ``neurotmesis_c < T ≤ axonotmesis_c``; 3 for ``T ≤ neurotmesis_c``.
    """
    t = np.asarray(min_temperature_c, float)
    g = np.zeros(t.shape, np.int8)
    g[t <= 0.0] = 1
    g[t <= axonotmesis_c] = 2
    g[t <= neurotmesis_c] = 3
    return g


def _interp(field_c: np.ndarray, grid: Grid, pts: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of a cell-centred field at points (N, 3) mm, ignoring NaN cells.

    NaN cells (the insulated shaft, or anything that is not tissue) are left out of each point's
    stencil and the remaining weights renormalised (normalised convolution, Knutsson & Westin
    1993, CVPR 515); a point whose whole stencil is NaN is NaN. Hand-written because
    ``scipy.ndimage.map_coordinates`` spreads a NaN to every point whose stencil touches it.
    """
    idx = (pts - np.asarray(grid.origin_mm)) / grid.voxel_mm - 0.5
    finite = np.isfinite(field_c)
    num = ndimage.map_coordinates(np.where(finite, field_c, 0.0), idx.T, order=1, mode="nearest")
    den = ndimage.map_coordinates(finite.astype(float), idx.T, order=1, mode="nearest")
    out = np.full(len(pts), np.nan)
    ok = den > 1e-9
    out[ok] = num[ok] / den[ok]
    return out


def resample_polyline(
    points_mm: np.ndarray, step_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stations every ``step_mm`` along a polyline: (positions N×3, arc length N, unit tangents
    N×3)."""
    p = np.asarray(points_mm, float)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) < 2:
        raise InputError(
            f"nerve centreline must be an N×3 polyline with N ≥ 2 (got shape {p.shape})"
        )
    if not step_mm > 0:
        raise InputError(f"station spacing must be positive (got {step_mm} mm)")
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    keep = np.concatenate([[True], seg > 1e-9])
    p, seg = p[keep], seg[seg > 1e-9]
    s_nodes = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.arange(0.0, s_nodes[-1] + 1e-9, step_mm)
    pos = np.stack([np.interp(s, s_nodes, p[:, a]) for a in range(3)], axis=1)
    k = np.clip(np.searchsorted(s_nodes, s, side="right") - 1, 0, len(seg) - 1)
    tang = (p[k + 1] - p[k]) / seg[k, None]
    return pos, s, tang


#: A station counts for the block only where its nerve cross-section is at least this fraction
#: of the nerve's typical (median) cross-section: a plane that only grazes the nerve (the cap of
#: a bulb neuroma, the end of a mask) is not a cross-section of the nerve, and its few cold
#: points say nothing about the axons that pass elsewhere.
MIN_SECTION_FRACTION = 0.5
#: ... and at least this fraction of the nerve *tissue* in that section must have a temperature
#: (not outside the grid or without a tissue neighbour). Unsampled axons may be warm, so a
#: station sampled less than this is not called blocked. 0.9: a straight nerve cut obliquely by
#: the grid edge loses a few per cent; a half-sampled section is refused.
MIN_SAMPLED_FRACTION = 0.9


@dataclass
class NerveInjuryProfile:
    """Temperatures along a nerve and the derived block.

    Arrays per station (arc length ``s_mm`` from the first centreline point, which is the
    proximal end): ``warmest_c`` — the warmest minimum temperature over the sampled
    cross-section (what decides a complete block), ``coldest_c`` — the coldest (NaN where
    nothing was sampled), ``section_mm2`` — the nerve's cross-section area at the station
    (tissue and probe-occupied), ``sampled_fraction`` — the fraction of its nerve tissue that
    has a temperature, ``eligible`` — the station may count for the block (section and sampling
    rules, and proximal to ``block_proximal_to_mm``), ``grade`` — Sunderland grade of the
    station (3 if any sampled point ≤ ``neurotmesis_c``; else 2 if blocked; else 1).
    """

    s_mm: np.ndarray
    warmest_c: np.ndarray
    coldest_c: np.ndarray
    grade: np.ndarray
    axonotmesis_c: float
    neurotmesis_c: float
    step_mm: float
    eligible: np.ndarray | None = None
    section_mm2: np.ndarray | None = None
    sampled_fraction: np.ndarray | None = None
    block_proximal_to_mm: float | None = None
    blocked: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        ok = (
            np.ones(len(self.s_mm), bool)
            if self.eligible is None
            else np.asarray(self.eligible, bool)
        )
        with np.errstate(invalid="ignore"):
            self.blocked = ok & np.isfinite(self.warmest_c) & (self.warmest_c <= self.axonotmesis_c)

    @property
    def complete_block(self) -> bool:
        return bool(self.blocked.any())

    @property
    def neurotmesis_risk(self) -> bool:
        c = self.coldest_c[np.isfinite(self.coldest_c)]
        return bool((c <= self.neurotmesis_c).any())

    @property
    def blocked_length_mm(self) -> float:
        """Length of the longest run of blocked stations (count × step)."""
        runs = _runs(self.blocked)
        return float(max((b - a) * self.step_mm for a, b in runs)) if runs else 0.0

    @property
    def lesion_proximal_end_mm(self) -> float | None:
        """Arc length of the most proximal blocked station, or None.

        Every axon is interrupted there, and an axon regrows from the proximal edge of its
        lesion, so regrowth (and the relief estimate) starts here: the lesion's own length is
        regrown too (docs/domain-facts.md).
        """
        i = np.flatnonzero(self.blocked)
        return float(self.s_mm[i[0]]) if i.size else None

    @property
    def lesion_distal_end_mm(self) -> float | None:
        """Arc length of the most distal blocked station, or None (reported, not used for
        relief)."""
        i = np.flatnonzero(self.blocked)
        return float(self.s_mm[i[-1]]) if i.size else None

    def summary(self) -> dict:
        warm = self.warmest_c[np.isfinite(self.warmest_c)]
        cold = self.coldest_c[np.isfinite(self.coldest_c)]
        out = {
            "complete_block": self.complete_block,
            "blocked_length_mm": self.blocked_length_mm,
            "neurotmesis_risk": self.neurotmesis_risk,
            "lesion_proximal_end_mm": self.lesion_proximal_end_mm,
            "lesion_distal_end_mm": self.lesion_distal_end_mm,
            "warmest_min_c": float(warm.min()) if warm.size else None,
            "coldest_min_c": float(cold.min()) if cold.size else None,
            "unsampled_stations": int((~np.isfinite(self.warmest_c)).sum()),
        }
        if self.eligible is not None:
            out["stations_not_counted"] = int((~np.asarray(self.eligible, bool)).sum())
        if self.block_proximal_to_mm is not None:
            out["block_proximal_to_mm"] = float(self.block_proximal_to_mm)
        return out

    def plot(self, ax=None):
        """Warmest/coldest minimum temperature vs arc length, threshold bands, blocked segment."""
        if ax is None:  # a Figure without pyplot: no backend is chosen
            from matplotlib.figure import Figure

            ax = Figure(figsize=(7, 3.5), layout="constrained").add_subplot()
        cold = self.coldest_c[np.isfinite(self.coldest_c)]
        lo = min(float(cold.min()) if cold.size else 0.0, self.neurotmesis_c) - 10
        ax.axhspan(self.axonotmesis_c, 0, color="gold", alpha=0.15, label="neurapraxia")
        ax.axhspan(
            self.neurotmesis_c,
            self.axonotmesis_c,
            color="tab:blue",
            alpha=0.12,
            label="axonotmesis",
        )
        ax.axhspan(lo, self.neurotmesis_c, color="tab:red", alpha=0.12, label="neurotmesis risk")
        for a, b in _runs(self.blocked):
            ax.axvspan(self.s_mm[a], self.s_mm[b - 1], color="tab:green", alpha=0.25)
        ax.plot(self.s_mm, self.warmest_c, label="warmest in section")
        ax.plot(self.s_mm, self.coldest_c, "--", label="coldest in section")
        if self.block_proximal_to_mm is not None:
            ax.axvline(
                self.block_proximal_to_mm, color="k", lw=0.8, ls=":", label="bulb's widest section"
            )
        ax.set(
            xlabel="arc length along nerve (mm)", ylabel="minimum temperature (°C)", ylim=(lo, 40)
        )
        ax.legend(fontsize=7, loc="lower right")
        return ax


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True))


def disc_radius_mm(nerve_mask: np.ndarray, voxel_mm: float) -> float:
    """The default radius of :func:`nerve_profile`'s discs: 3× the nerve's largest half-width
    (distance transform) plus a voxel. A caller judging many fields on one nerve computes it
    once (a distance transform of the whole grid per call was a fifth of the judging)."""
    return 3.0 * float(ndimage.distance_transform_edt(nerve_mask, sampling=voxel_mm).max()) + (
        voxel_mm
    )


def nerve_profile(
    min_temperature_c: np.ndarray,
    grid: Grid,
    nerve_mask: np.ndarray,
    centreline_mm: np.ndarray,
    step_mm: float = 0.25,
    radius_mm: float | None = None,
    axonotmesis_c: float = NEURAPRAXIA_C,
    neurotmesis_c: float = NEUROTMESIS_C,
    sample_mm: float | None = None,
    tissue_mask: np.ndarray | None = None,
    block_proximal_to_mm: float | None = None,
    min_section_fraction: float = MIN_SECTION_FRACTION,
    min_sampled_fraction: float = MIN_SAMPLED_FRACTION,
) -> NerveInjuryProfile:
    """Sample cross-sections perpendicular to the centreline every ``step_mm``.

    The centreline runs **proximal → distal** (its first point is the proximal end). At each
    station a disc of points (spacing ``sample_mm``, default voxel/2) in the plane normal to the
    local tangent, out to ``radius_mm`` (default :func:`disc_radius_mm`: 3× the largest
    nerve-mask distance transform),
    is tested against ``nerve_mask`` (nearest voxel; points beyond the grid take the nearest edge
    voxel). The nerve points split into

    * **occupied** — in a voxel that is not tissue (``tissue_mask`` False; default: the
      temperature is NaN, e.g. the insulated shaft of a needle through the nerve). The needle has
      displaced that tissue: these points are neither sampled nor missing;
    * **sampled** — in a tissue voxel inside the grid, temperature by trilinear interpolation
      over the tissue voxels only (:func:`_interp`), so a NaN never enters a station's value;
    * **unsampled** — nerve tissue beyond the grid.

    A station **may count for the block** only if (1) its nerve cross-section (occupied + tissue)
    is at least ``min_section_fraction`` of the median cross-section over all stations,
    (2) at least ``min_sampled_fraction`` of its nerve tissue is sampled, and (3) for a stump
    neuroma, its arc length is ≤ ``block_proximal_to_mm`` (the bulb's widest section: axons
    blocked only distal to it still fire from the bulb's main body). It is **blocked** when it
    may count and its warmest sampled point is ≤ ``axonotmesis_c``. Neurotmesis risk uses every
    sampled point of every station (a cold spot injures the sheaths wherever it is).
    """
    if min_temperature_c.shape != grid.shape or nerve_mask.shape != grid.shape:
        raise InputError(
            f"temperature {min_temperature_c.shape} / nerve mask {nerve_mask.shape} "
            f"do not match the grid {grid.shape}"
        )
    if tissue_mask is not None and tissue_mask.shape != grid.shape:
        raise InputError(f"tissue mask {tissue_mask.shape} does not match the grid {grid.shape}")
    if not nerve_mask.any():
        raise InputError("nerve mask is empty")
    if not (0.0 <= min_section_fraction <= 1.0 and 0.0 < min_sampled_fraction <= 1.0):
        raise InputError(
            f"min_section_fraction must be in [0, 1] and min_sampled_fraction in (0, 1] "
            f"(got {min_section_fraction}, {min_sampled_fraction})"
        )
    h = grid.voxel_mm
    tissue = (
        np.isfinite(min_temperature_c)
        if tissue_mask is None
        else (tissue_mask & np.isfinite(min_temperature_c))
    )
    if radius_mm is None:
        radius_mm = disc_radius_mm(nerve_mask, h)
    ds = sample_mm or h / 2
    pos, s, tang = resample_polyline(centreline_mm, step_mm)
    r = np.arange(-radius_mm, radius_mm + 1e-9, ds)
    a, b = np.meshgrid(r, r, indexing="ij")
    in_disc = a.ravel() ** 2 + b.ravel() ** 2 <= radius_mm**2
    disc = a.ravel()[in_disc], b.ravel()[in_disc]
    n = len(s)
    warm, cold = np.full(n, np.nan), np.full(n, np.nan)
    section, sampled_frac = np.zeros(n), np.zeros(n)
    lo = np.asarray(grid.origin_mm)
    shape = np.asarray(grid.shape)
    # Every station's disc at once (blocks of stations, to bound the memory): a Python loop
    # over stations, with one interpolation call each, cost more than the judging around it.
    # Unit vectors spanning each station's plane: u ⟂ the tangent, v = t × u.
    helper = np.where((np.abs(tang[:, 0]) < 0.9)[:, None], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    u = np.cross(tang, helper)
    u /= np.linalg.norm(u, axis=1)[:, None]
    v = np.cross(tang, u)
    block = max(1, 250_000 // len(disc[0]))
    for start in range(0, n, block):
        sl = slice(start, min(start + block, n))
        pts = (
            pos[sl, None, :]
            + disc[0][None, :, None] * u[sl, None, :]
            + disc[1][None, :, None] * v[sl, None, :]
        )  # (stations, disc points, 3)
        raw = np.floor((pts - lo) / h).astype(int)
        in_grid = np.all((raw >= 0) & (raw < shape), axis=2)
        ijk = np.clip(raw, 0, shape - 1)
        inside = nerve_mask[ijk[..., 0], ijk[..., 1], ijk[..., 2]]
        # beyond the grid counts as tissue, unsampled
        is_tissue = tissue[ijk[..., 0], ijk[..., 1], ijk[..., 2]] | ~in_grid
        nerve_tissue = inside & is_tissue
        sampled = nerve_tissue & in_grid
        section[sl] = inside.sum(axis=1) * ds * ds
        n_nerve = nerve_tissue.sum(axis=1)
        sampled_frac[sl] = np.where(n_nerve > 0, sampled.sum(axis=1) / np.maximum(n_nerve, 1), 0.0)
        vals = np.full(sampled.shape, np.nan)
        vals[sampled] = _interp(min_temperature_c, grid, pts[sampled])
        has = np.asarray(np.isfinite(vals).any(axis=1))
        with np.errstate(invalid="ignore"):
            warm[sl] = np.where(has, np.nanmax(np.where(has[:, None], vals, 0.0), axis=1), np.nan)
            cold[sl] = np.where(has, np.nanmin(np.where(has[:, None], vals, 0.0), axis=1), np.nan)
    typical = float(np.median(section[section > 0])) if (section > 0).any() else 0.0
    eligible = (
        (section > 0)
        & (section >= min_section_fraction * typical)
        & (sampled_frac >= min_sampled_fraction)
    )
    eligible &= np.isfinite(warm)
    if block_proximal_to_mm is not None:
        eligible &= s <= block_proximal_to_mm + 1e-9
    with np.errstate(invalid="ignore"):
        blocked = eligible & (warm <= axonotmesis_c)
        grade = np.where(
            np.isfinite(cold) & (cold <= neurotmesis_c), 3, np.where(blocked, 2, 1)
        ).astype(np.int8)
    return NerveInjuryProfile(
        s,
        warm,
        cold,
        grade,
        axonotmesis_c,
        neurotmesis_c,
        step_mm,
        eligible=eligible,
        section_mm2=section,
        sampled_fraction=sampled_frac,
        block_proximal_to_mm=block_proximal_to_mm,
    )


@dataclass(frozen=True)
class Coverage:
    """Fraction of a target's volume at or below each threshold, and its temperature range."""

    volume_ml: float
    fractions: dict[float, float]
    min_c: float
    max_c: float


def target_coverage(
    min_temperature_c: np.ndarray,
    grid: Grid,
    target_mask: np.ndarray,
    thresholds_c: tuple[float, ...] = LETHAL_C,
) -> Coverage:
    """Coverage of a target (e.g. the neuroma): ``fraction(T_min ≤ θ)`` for each θ."""
    if not target_mask.any():
        raise InputError("target mask is empty")
    t = min_temperature_c[target_mask]
    return Coverage(
        volume_ml=float(target_mask.sum() * grid.voxel_mm**3 / 1000.0),
        fractions={float(th): float((t <= th).mean()) for th in thresholds_c},
        min_c=float(t.min()),
        max_c=float(t.max()),
    )


@dataclass(frozen=True)
class StructureSafety:
    """Minimum temperature in a structure, margin to its safety limit, isotherm distances."""

    name: str
    min_c: float
    limit_c: float | None
    margin_c: float | None
    distance_mm: dict[float, float]
    warning: str | None


def isotherm_distance_mm(
    min_temperature_c: np.ndarray, grid: Grid, mask: np.ndarray, isotherm_c: float
) -> float:
    """Closest distance (mm) from the region ``T_min ≤ isotherm_c`` to a structure (0 if they
    overlap, inf if no ice)."""
    ice = min_temperature_c <= isotherm_c
    if not ice.any():
        return float("inf")
    if (ice & mask).any():
        return 0.0
    d = ndimage.distance_transform_edt(~ice, sampling=grid.voxel_mm)
    return float(d[mask].min())


def structure_safety(
    min_temperature_c: np.ndarray,
    grid: Grid,
    structures: dict[str, np.ndarray],
    limits_c: dict[str, float | None] | None = None,
    isotherms_c: tuple[float, ...] = (0.0, -20.0),
) -> list[StructureSafety]:
    """Safety report for named structures (skin, artery, bone, other nerves …).

    ``limits_c`` gives the temperature each structure must stay above (default: skin 0 °C,
    other nerves −20 °C (no axonotmesis), artery/bone ``None`` = report only). A structure whose
    minimum is at or below its limit gets a one-line warning.
    """
    default = {"skin": SKIN_SAFE_C, "nerve": NEURAPRAXIA_C}
    out = []
    for name, mask in structures.items():
        if not mask.any():
            continue
        lim = (limits_c or {}).get(
            name, next((v for k, v in default.items() if k in name.lower()), None)
        )
        tmin = float(min_temperature_c[mask].min())
        margin = None if lim is None else tmin - lim
        dist = {th: isotherm_distance_mm(min_temperature_c, grid, mask, th) for th in isotherms_c}
        warn = None
        if lim is not None and tmin <= lim:
            warn = f"{name}: reached {tmin:.1f} °C, at or below its limit {lim:.0f} °C"
        elif lim is None and tmin <= 0.0:
            warn = f"{name}: frozen (minimum {tmin:.1f} °C); reported, no limit set"
        out.append(StructureSafety(name, tmin, lim, margin, dist, warn))
    return out


def warnings(safety: list[StructureSafety]) -> list[str]:
    """The one-line warnings of a safety report."""
    return [s.warning for s in safety if s.warning]
