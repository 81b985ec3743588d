"""The r–z reference solver (cryoneuro.thermal.axisymmetric) against analytic solutions.

Each test states its reference and tolerance. Coarse grids are used where the tolerance
allows so the file runs in well under a minute on one core; the converged figures for the
reference case (docs/contracts.md) are in docs/validation.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import i0, k0

from cryoneuro.errors import GeometryError, InputError
from cryoneuro.thermal.analytic import line_sink_isotherm_radius, water_ice
from cryoneuro.thermal.axisymmetric import (
    solve_axisymmetric,
    solve_infinite_cylinder,
    solve_line_sink,
)
from cryoneuro.tissue import get_tissue

# Validation of the independent reference solver (fine r-z meshes): the slow tier.
pytestmark = pytest.mark.slow

MUSCLE = get_tissue("muscle")
# reference-case geometry (docs/contracts.md) on a smaller domain (faster; the iceball stays inside
# at 120 s)
CASE = {
    "probe_diameter_mm": 1.5,
    "active_length_mm": 10.0,
    "tip_temperature_c": -150.0,
    "radius_mm": 16.0,
    "z_extent_mm": (0.0, 40.0),
    "tip_z_mm": 12.0,
}


def test_line_sink_matches_carslaw_jaeger() -> None:
    # Water/ice, Q = 400 W/m, 600 s: 0/−20/−40 °C radii from C&J §11.6 (9.763/4.794/2.379 mm;
    # docs/domain-facts.md 9.76/4.79/2.38), tolerance 0.1 mm. Mushy range ±0.05 °C about 0 °C.
    ice = water_ice()
    res = solve_line_sink(ice, sink_w_per_m=400.0, duration_s=600.0, cell_mm=0.1, dt_s=2.0)
    for iso in (0.0, -20.0, -40.0):
        exact_mm = 1e3 * line_sink_isotherm_radius(
            iso, 600.0, ice, sink_w_per_m=400.0, initial_temperature_c=37.0
        )
        got_mm = res.isotherms_final[str(int(iso))]["diameter_mm"] / 2
        assert got_mm == pytest.approx(exact_mm, abs=0.1), iso
    assert res.energy_residual_rel < 1e-6
    assert res.sink_j == pytest.approx(400.0 * 1e-3 * 600.0, rel=1e-12)  # Q × height × t


def test_steady_cylinder_matches_modified_bessel_profile() -> None:
    # Long probe at 10 °C in perfused muscle (no freezing, no metabolism), steady state:
    # T − T_b = (T_w − T_b) F(r)/F(a), F(r) = K0(r/δ) I0(R/δ) − I0(r/δ) K0(R/δ), δ = √(k/ω)
    # (Dirichlet at R). Tolerance 0.005 K at 0.2 and 0.1 mm cells (measured 0.0007 / 0.0002 K:
    # the logarithmic radial conductances are exact for the radial part of the profile).
    tissue = MUSCLE.with_overrides(metabolism=0.0)
    delta = math.sqrt(tissue.k_unfrozen / tissue.perfusion)
    a, big_r = 0.75e-3, 80e-3

    def f(r: np.ndarray) -> np.ndarray:
        return k0(r / delta) * i0(big_r / delta) - i0(r / delta) * k0(big_r / delta)

    errors = []
    for cell_mm in (0.2, 0.1):
        res = solve_infinite_cylinder(
            tissue,
            probe_diameter_mm=1.5,
            wall_temperature_c=10.0,
            duration_s=1e7,
            dt_s=1e7,
            cell_mm=cell_mm,
            radius_mm=80.0,
        )
        r = res.r_centres_mm * 1e-3
        outside = r > a
        exact = 37.0 + (10.0 - 37.0) * f(r[outside]) / f(a)
        errors.append(float(np.max(np.abs(res.temperature_c[0, outside] - exact))))
    assert max(errors) < 0.005
    assert errors[1] < errors[0]


def test_grid_and_time_step_convergence() -> None:
    # 120 s freeze: successive differences of the 0/−40 °C diameters and lengths shrink as the
    # cells (0.6/0.3/0.15 mm) and the time steps (8/4/2 s) are halved (Richardson-style).
    def iso(cell_mm: float, dt_s: float) -> dict[str, dict[str, float]]:
        res = solve_axisymmetric(
            MUSCLE,
            protocol=[("freeze", 120.0)],
            cell_mm=cell_mm,
            dt_s=dt_s,
            fine_margin_mm=10.0,
            **CASE,
        )
        assert res.energy_residual_rel < 1e-6
        return res.isotherms_final

    for runs in ([iso(h, 2.0) for h in (0.6, 0.3, 0.15)], [iso(0.3, dt) for dt in (8, 4, 2)]):
        for key in ("0", "-40"):
            for what in ("diameter_mm", "length_mm"):
                v = [r[key][what] for r in runs]
                assert abs(v[2] - v[1]) < abs(v[1] - v[0]), (key, what, v)
                assert abs(v[2] - v[1]) < 0.15, (key, what, v)


def test_energy_balance_over_freeze_thaw_freeze() -> None:
    # Enthalpy change = −probe heat + perfusion/metabolism + outer-boundary heat: residual
    # < 1 % of the extracted heat (it is at round-off: the scheme is conservative).
    res = solve_axisymmetric(
        MUSCLE,
        protocol=[
            ("freeze", 60.0),
            ("thaw-passive", 30.0),
            ("freeze", 60.0),
            ("thaw-active", 20.0, 20.0),
        ],
        cell_mm=0.5,
        dt_s=2.0,
        points_mm=[(3.0, 17.0)],
        **CASE,
    )
    assert res.heat_extracted_j > 0
    assert abs(res.energy_residual_j) < 0.01 * res.heat_extracted_j
    assert res.time_s == pytest.approx(170.0)
    # the minimum-temperature field is nowhere above the final one
    both = np.isfinite(res.min_temperature_c) & np.isfinite(res.temperature_c)
    assert np.all(res.min_temperature_c[both] <= res.temperature_c[both] + 1e-12)
    assert res.point_temperatures_c.shape == (res.steps + 1, 1)


def test_isotherm_measurement_of_a_known_shape() -> None:
    # Field T = −100 + 10 ρ/mm, ρ = distance to the axis segment [tip + a, tip + L_a]:
    # {T ≤ −40} is the ρ ≤ 6 mm capsule minus the shaft, so diameter 12 mm, length
    # (L_a − a) + D + √(D² − a²) = 21.203 mm (the shaft cuts the top of the cap), volume πD²(L_a −
    # a) + 4/3πD³ − 2π/3 (D³ − (D² − a²)^{3/2}).
    # Tolerances (0.2 mm cells): 0.02 mm, 0.05 mm, 1 %.
    res = solve_axisymmetric(MUSCLE, protocol=[("freeze", 2.0)], cell_mm=0.2, dt_s=2.0, **CASE)
    r, z = np.meshgrid(res.r_centres_mm, res.z_centres_mm)
    za, zb = CASE["tip_z_mm"] + 0.75, CASE["tip_z_mm"] + 10.0
    rho = np.hypot(r, z - np.clip(z, za, zb))
    out = res.isotherms_of(-100.0 + 10.0 * rho, (-40.0,), wall_temperature_c=-100.0)["-40"]
    d, a, la = 6.0, 0.75, 10.0
    vol_mm3 = (
        math.pi * d**2 * (la - a)
        + 4 / 3 * math.pi * d**3
        - 2 * math.pi / 3 * (d**3 - (d**2 - a**2) ** 1.5)
    )
    assert out["diameter_mm"] == pytest.approx(2 * d, abs=0.02)
    assert out["length_mm"] == pytest.approx(la - a + d + math.sqrt(d**2 - a**2), abs=0.05)
    assert out["volume_ml"] == pytest.approx(vol_mm3 * 1e-3, rel=0.01)


def test_callable_tip_temperature_equals_constant() -> None:
    kw = dict(CASE, protocol=[("freeze", 20.0)], cell_mm=0.6, dt_s=2.0)
    a = solve_axisymmetric(MUSCLE, **kw)
    kw["tip_temperature_c"] = lambda t_s: -150.0
    b = solve_axisymmetric(MUSCLE, **kw)
    assert np.array_equal(a.temperature_c, b.temperature_c, equal_nan=True)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"protocol": [("freeze", -5.0)]}, InputError),
        ({"protocol": [("boil", 5.0)]}, InputError),
        ({"protocol": [("thaw-active", 5.0)]}, InputError),
        ({"tip_z_mm": -3.0}, GeometryError),
        ({"z_extent_mm": (0.0, 20.0)}, GeometryError),
        ({"active_length_mm": 0.5}, GeometryError),
        ({"cell_mm": 0.0}, InputError),
        ({"points_mm": [(30.0, 10.0)]}, InputError),
    ],
)
def test_bad_input_raises(change: dict, error: type[Exception]) -> None:
    kw = dict(CASE, protocol=[("freeze", 10.0)], cell_mm=0.6, dt_s=2.0)
    kw.update(change)
    with pytest.raises(error):
        solve_axisymmetric(MUSCLE, **kw)
