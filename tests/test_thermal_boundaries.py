"""Surface boundaries inside the domain (thermal/boundaries.py) against analytic solutions.

1D steady conduction through a slab held at T0 on one face with a convective (Robin) surface
on the other: the temperature is linear, ``T(x) = T0 − q x / k`` with
``q = (T0 − T∞) / (L / k + 1 / h)`` (series thermal resistances, Incropera & DeWitt §3.1).
The finite-volume scheme reproduces a linear profile exactly, so the check is to solver
tolerance. Energy: tissue enthalpy change + heat taken by the boundary = 0 in a closed box.
"""

from __future__ import annotations

import numpy as np
import pytest

from cryoneuro.errors import InputError
from cryoneuro.thermal import Grid, Phase, ThermalModel, simulate
from cryoneuro.thermal import boundaries as bd
from cryoneuro.tissue import get_tissue

# muscle without perfusion or metabolism: pure conduction, no phase change between 20 and 37 C
SLAB = get_tissue("muscle").with_overrides(perfusion=0.0, metabolism=0.0)
DX_MM = 0.5
N = 20  # 19 tissue cells + 1 reservoir column: slab thickness L = 19 dx


def _slab(h, t_inf, t0=37.0, initial=None):
    grid = Grid((N, 3, 3), DX_MM)
    cells = np.zeros(grid.shape, bool)
    cells[-1] = True
    surface = bd.SurfaceBoundary("test surface", cells, t_inf, h)
    return ThermalModel(
        grid,
        np.zeros(grid.shape, np.uint8),
        [SLAB],
        [],
        [],
        body_temperature_c=t0,
        dirichlet_faces=(True, False, False, False, False, False),
        initial_temperature_c=initial,
        surfaces=[surface],
    )


def _analytic(h, t_inf, t0=37.0):
    k = SLAB.k_unfrozen
    length = (N - 1) * DX_MM * 1e-3
    resistance = length / k + (0.0 if h is None else 1.0 / h)
    q = (t0 - t_inf) / resistance
    x = (np.arange(N - 1) + 0.5) * DX_MM * 1e-3
    return t0 - q * x / k, q


@pytest.mark.parametrize(("h", "t_inf"), [(50.0, 20.0), (10.0, 22.0), (None, 25.0)])
def test_steady_slab_matches_the_series_resistance_solution(h, t_inf):
    res = simulate(
        _slab(h, t_inf, initial=np.full((N, 3, 3), 30.0)),
        [Phase("thaw-passive", 4000.0)],  # > 15 slowest-mode decay times
        time_step_s=25.0,
        sample_interval_s=100.0,
    )
    expected, q = _analytic(h, t_inf)
    got = res.temperature_c[:-1, 1, 1]
    assert np.abs(got - expected).max() < 1e-3
    # the reservoir keeps its temperature
    assert np.allclose(res.temperature_c[-1], t_inf)
    # steady flux: restart from the steady state and count the heat the surface takes
    again = simulate(
        _slab(h, t_inf, initial=res.temperature_c),
        [Phase("thaw-passive", 100.0)],
        time_step_s=25.0,
        sample_interval_s=100.0,
    )
    area = 9 * (DX_MM * 1e-3) ** 2
    assert again.boundary_heat_j["test surface"] == pytest.approx(q * area * 100.0, rel=1e-3)


def test_closed_box_conserves_energy_with_a_convective_surface():
    """Adiabatic box, a warm block of tissue in air, its surface cooled by convection: what the
    tissue lost is what the boundary took (to round-off)."""
    grid = Grid((12, 12, 12), 1.0)
    body = np.zeros(grid.shape, bool)
    body[3:9, 3:9, 3:9] = True
    labels = np.where(body, 0, 1).astype(np.uint8)
    air = get_tissue("air")
    surface = bd.skin_convection(body, h_w_m2k=200.0, ambient_c=0.0)
    model = ThermalModel(
        grid, labels, [SLAB, air], [], [], boundary="adiabatic", surfaces=[surface]
    )
    res = simulate(model, [Phase("thaw-passive", 600.0)], sample_interval_s=10.0)
    taken = res.boundary_heat_j[surface.name]
    assert taken > 0  # the body cooled
    assert res.temperature_c[body].max() < 37.0
    assert res.enthalpy_change_j + taken == pytest.approx(0.0, abs=1e-9 * taken)


def test_warm_saline_holds_the_skin_surface_against_a_probe():
    """A probe under a thin skin: the warmed surface keeps the skin warmer than adiabatic air."""
    from cryoneuro.thermal import ProbeGeometry, constant

    grid = Grid((24, 24, 24), 1.0)
    body = np.zeros(grid.shape, bool)
    body[:, :, :18] = True
    labels = np.where(body, 0, 1).astype(np.uint8)
    probe = ProbeGeometry((12.0, 12.0, 6.0), (0.0, 0.0, 1.0), 1.5, 6.0)

    def run(surfaces):
        model = ThermalModel(
            grid,
            labels,
            [SLAB, get_tissue("air")],
            [probe],
            [constant(-150.0)],
            surfaces=surfaces,
        )
        return simulate(model, [Phase("freeze", 120.0)])

    plain = run([])
    warmed = run([bd.skin_warming(body, 37.0)])
    top = (slice(None), slice(None), 17)  # the outermost tissue layer
    free = plain.tissue_mask[top]
    assert warmed.min_temperature_c[top][free].min() > plain.min_temperature_c[top][free].min()
    assert warmed.boundary_heat_j["warm saline on the skin"] < 0  # the saline gave heat


def test_vessel_film_coefficient_follows_the_correlations():
    # fully developed limit: a very long vessel tends to Nu = 3.66 (constant wall temperature)
    long = bd.vessel_h_w_m2k(2.0, 0.01, 1e6)
    assert long["nusselt"] == pytest.approx(3.66, abs=0.01)
    assert long["h_w_m2k"] == pytest.approx(3.66 * bd.BLOOD_K / 2e-3, rel=1e-2)
    # the entry region transfers more, and more flow transfers more
    short = bd.vessel_h_w_m2k(2.0, 0.1, 20.0)
    assert short["nusselt"] > long["nusselt"]
    assert bd.vessel_h_w_m2k(2.0, 0.2, 20.0)["h_w_m2k"] > short["h_w_m2k"]
    # turbulent above Re 2300: Dittus-Boelter
    fast = bd.vessel_h_w_m2k(10.0, 1.0, 50.0)
    assert fast["reynolds"] > 2300
    assert fast["nusselt"] == pytest.approx(
        0.023 * fast["reynolds"] ** 0.8 * fast["prandtl"] ** 0.4
    )


def test_bad_boundaries_are_refused_in_one_line():
    grid = Grid((4, 4, 4), 1.0)
    cells = np.zeros(grid.shape, bool)
    with pytest.raises(InputError, match="h_w_m2k"):
        bd.SurfaceBoundary("x", cells, 20.0, -1.0)
    a = bd.SurfaceBoundary("a", cells | True, 20.0, 5.0)
    b = bd.SurfaceBoundary("b", cells | True, 20.0, 5.0)
    with pytest.raises(InputError, match="another boundary"):
        ThermalModel(grid, np.zeros(grid.shape, np.uint8), [SLAB], [], [], surfaces=[a, b])
    with pytest.raises(InputError, match="do not match the grid"):
        ThermalModel(
            grid,
            np.zeros(grid.shape, np.uint8),
            [SLAB],
            [],
            [],
            surfaces=[bd.SurfaceBoundary("c", np.zeros((2, 2, 2), bool), 20.0)],
        )


def test_vessel_diameter_from_a_voxelised_tube():
    """D = 16 V / (π S_faces) recovers a straight tube's diameter when it spans several voxels."""
    v = 0.5
    x = (np.arange(40) + 0.5) * v - 10
    xx, yy = np.meshgrid(x, x, indexing="ij")
    tube = np.repeat(((xx**2 + yy**2) <= 3.0**2)[:, :, None], 20, axis=2)
    assert bd.equivalent_diameter_mm(tube, v) == pytest.approx(6.0, rel=0.05)


def test_a_probe_beside_a_held_surface_is_not_pinned_to_it():
    """A probe whose active part reaches the air cells of a warm-saline surface: the reservoir
    (conductivity 1e12) must not exchange with the probe, or the heat would be ~1e12 J."""
    from cryoneuro.thermal import ProbeGeometry, constant

    grid = Grid((12, 12, 12), 1.0)
    body = np.zeros(grid.shape, bool)
    body[:, :, :6] = True
    labels = np.where(body, 0, 1).astype(np.uint8)
    probe = ProbeGeometry((6.0, 6.0, 2.5), (0.0, 0.0, 1.0), 1.5, 6.0)  # active to z = 8.5
    model = ThermalModel(
        grid,
        labels,
        [SLAB, get_tissue("air")],
        [probe],
        [constant(-150.0)],
        surfaces=[bd.skin_warming(body, 37.0)],
    )
    res = simulate(model, [Phase("freeze", 30.0)])
    # a 1.5 mm probe at -150 C drawing heat from tissue for 30 s: hundreds of joules at most
    # (before the fix: ~1e12 J through the reservoir's wall conductivity)
    assert 0 < res.probe_heat_j[0] < 1000.0
    assert abs(res.boundary_heat_j["warm saline on the skin"]) < 1000.0
