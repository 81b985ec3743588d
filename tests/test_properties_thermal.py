"""Property tests of the 3D engine over random probe layouts (hypothesis).

Two laws that hold for *any* layout, protocol and wall condition, checked on small, coarse
grids with few examples (the whole file runs in well under 30 s):

* **First law.** In tissue without perfusion or metabolism the heat drawn by the probes equals
  the fall of the tissue's enthalpy plus the heat that entered through the outer walls:
  ``Q_probes = -ΔH + Q_walls``. ``Q_walls`` is computed here, independently of the engine's own
  bookkeeping, from the temperature history of every wall cell: a body-temperature (Dirichlet)
  wall sits half a voxel from the cell centre, so the face conducts ``2 k(T) (T_body - T) / dx``
  per unit area (Patankar 1980, *Numerical Heat Transfer and Fluid Flow*, §4.2-4.3 — the
  half-cell boundary conductance). With forward Euler the step uses the temperature at its
  start, so sampling the wall cells after every step gives the flux the scheme used, and the
  balance closes to round-off. Tolerance, derived: each of the ``n`` steps adds at most a few
  rounding errors of relative size ε = 2.2e-16 per cell on enthalpies of at most
  ``h_cell = (c ΔT + L) V``; the sum over ``N`` cells and ``n`` steps is bounded by
  ``8 n N ε h_cell`` (measured residuals are 5-50× below it).
* **Mirror symmetry.** The engine's stencil has no preferred direction, so a layout mirrored
  about a grid mid-plane gives the mirrored temperature field: ``T'(i) = T(n-1-i)`` along the
  mirrored axis. Tolerance 1e-6 K: the two runs differ only in the order of floating-point
  additions (round-off ~1e-12 K after a few hundred steps), while any asymmetry in the
  rasteriser or stencil shows as a difference of 0.01-10 K.

Probe tips are drawn on a lattice offset by an irrational fraction of a voxel so that no tip
sits exactly on an attachment threshold (where mirroring could flip a voxel by round-off).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryoneuro.thermal import Grid, Phase, ProbeGeometry, ThermalModel, constant, simulate
from cryoneuro.tissue import get_tissue

GEL = get_tissue("gel")  # perfusion 0, metabolism 0: conduction and latent heat only
VOXEL_MM = 0.5
SIZE_MM = (6.0, 6.0, 6.0)
BODY_C = 37.0
SETTINGS = settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def _grid() -> Grid:
    return Grid.from_size(SIZE_MM, VOXEL_MM)


@st.composite
def probe_layouts(draw) -> list[tuple[ProbeGeometry, float]]:
    """One or two probes: tip on an offset lattice inside the domain, a direction within the
    upper hemisphere (the shaft leaves through the top), diameter 1.0-1.5 mm, and a tip
    temperature from -150 to -40 °C."""
    n = draw(st.integers(1, 2))
    out = []
    for k in range(n):
        cells = [draw(st.integers(3, int(s / VOXEL_MM) - 4)) for s in SIZE_MM]
        tip = tuple((c + 0.3183 + 0.1 * k) * VOXEL_MM for c in cells)
        direction = (draw(st.integers(-2, 2)) / 4, draw(st.integers(-2, 2)) / 4, 1.0)
        diameter = draw(st.sampled_from([1.0, 1.2, 1.5]))
        active = draw(st.sampled_from([1.5, 2.0, 3.0]))
        tip_c = float(draw(st.integers(-150, -40)))
        out.append((ProbeGeometry(tip, direction, diameter, active, name=f"p{k}"), tip_c))
    return out


def _model(layout, boundary: str) -> ThermalModel:
    grid = _grid()
    return ThermalModel(
        grid,
        np.zeros(grid.shape, np.uint8),
        [GEL],
        [p for p, _ in layout],
        [constant(t) for _, t in layout],
        body_temperature_c=BODY_C,
        boundary=boundary,
    )


def _wall_cells(shape: tuple[int, ...]) -> np.ndarray:
    """Index of every (cell, wall face) pair: a corner cell appears once per wall it touches."""
    idx = np.indices(shape).reshape(3, -1).T
    return np.concatenate([idx[idx[:, a] == end] for a in range(3) for end in (0, shape[a] - 1)])


def _conductivity(t_c: np.ndarray) -> np.ndarray:
    """k(T) of the gel: linear in the liquid fraction across the mushy range (tissue.py)."""
    liquid = np.clip((t_c - GEL.t_solidus) / (GEL.t_liquidus - GEL.t_solidus), 0.0, 1.0)
    return GEL.k_frozen + (GEL.k_unfrozen - GEL.k_frozen) * liquid


@SETTINGS
@given(
    layout=probe_layouts(),
    boundary=st.sampled_from(["body", "adiabatic"]),
    thaw=st.booleans(),
)
def test_heat_drawn_by_probes_equals_enthalpy_fall_plus_wall_inflow(layout, boundary, thaw):
    grid = _grid()
    walls = _wall_cells(grid.shape)
    points = {f"w{i}": tuple((c + 0.5) * VOXEL_MM) for i, c in enumerate(walls)}
    protocol = [Phase("freeze", 4.0)] + ([Phase("thaw-passive", 1.0)] if thaw else [])
    res = simulate(
        _model(layout, boundary),
        protocol,
        scheme="euler",
        points_mm=points,
        sample_interval_s=1e-3,  # shorter than any step: one sample after every step
    )
    assert len(res.point_times_s) == res.steps + 1  # the history of every step is there
    dx_m = VOXEL_MM * 1e-3
    q_walls = 0.0
    if boundary == "body":
        free = res.raster.kind[tuple(walls.T)] == 0  # probe/shaft cells do not conduct
        t_start = res.point_temperatures_c[:-1, free]  # each step's starting temperature
        flux_w = (2.0 * _conductivity(t_start) * (BODY_C - t_start) / dx_m * dx_m**2).sum(axis=1)
        q_walls = float(flux_w @ np.diff(res.point_times_s))
        assert q_walls >= 0.0  # the body is warmer than anything inside: heat only enters
    q_probes = float(res.probe_heat_j.sum())
    assert q_probes > 0.0  # the probes really drew heat
    coldest = min(t for _, t in layout)
    h_cell = (GEL.c_unfrozen * (BODY_C - coldest) + GEL.latent) * dx_m**3
    tol = 8 * res.steps * math.prod(grid.shape) * np.finfo(float).eps * h_cell
    assert abs(q_probes - (-res.enthalpy_change_j + q_walls)) <= tol, (
        q_probes,
        -res.enthalpy_change_j,
        q_walls,
        tol,
    )


def _mirror(layout, axis: int):
    out = []
    for probe, tip_c in layout:
        tip = list(probe.tip_mm)
        tip[axis] = SIZE_MM[axis] - tip[axis]
        direction = list(probe.direction)
        direction[axis] = -direction[axis]
        mirrored = ProbeGeometry(
            tuple(tip), tuple(direction), probe.diameter_mm, probe.active_length_mm, probe.name
        )
        out.append((mirrored, tip_c))
    return out


@SETTINGS
@given(
    layout=probe_layouts(),
    axis=st.sampled_from([0, 1]),  # the shafts leave through z = top, so mirror x or y
    boundary=st.sampled_from(["body", "adiabatic"]),
)
def test_mirrored_layout_gives_the_mirrored_field(layout, axis, boundary):
    protocol = [Phase("freeze", 5.0), Phase("thaw-passive", 1.0)]
    a = simulate(_model(layout, boundary), protocol)
    b = simulate(_model(_mirror(layout, axis), boundary), protocol)
    assert np.array_equal(np.flip(b.raster.kind, axis), a.raster.kind)  # same voxels attached
    assert np.nanmin(a.min_temperature_c) < 0.0  # something froze: the test is not vacuous
    np.testing.assert_allclose(np.flip(b.temperature_c, axis), a.temperature_c, atol=1e-6)
    np.testing.assert_allclose(np.flip(b.min_temperature_c, axis), a.min_temperature_c, atol=1e-6)
    np.testing.assert_allclose(b.probe_heat_j, a.probe_heat_j, rtol=1e-9)
