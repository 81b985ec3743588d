"""The device probe model (issue 11): wall energy balance, coupling to the 3D engine, the
catalogue, and case files that use it.

Independent expectations: the algebra of the balance itself; the Carslaw & Jaeger line heat
sink (a capacity-limited probe removes a fixed heat per unit length); the axisymmetric r-z
solver, which couples the same balance by a different discretisation (Kirchhoff form, implicit
in time, Brent's method for the wall); the J-T gas model for the gas temperature.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from cryoneuro import probe as probe_physics
from cryoneuro.case import load_case
from cryoneuro.cli import app
from cryoneuro.errors import InputError
from cryoneuro.thermal import Grid, Phase, ProbeGeometry, ThermalModel, analytic, constant, simulate
from cryoneuro.thermal.axisymmetric import solve_axisymmetric
from cryoneuro.thermal.drive import DeviceDrive
from cryoneuro.thermal.summary import isotherms
from cryoneuro.tissue import get_tissue

WATER = analytic.water_ice()


def test_wall_balance_gas_side_and_capacity_regimes() -> None:
    dev = DeviceDrive(gas_temperature_c=-185.8, capacity_w=20.0, gas_conductance_w_per_k=1.5)
    # Small load: the gas side limits; heat through the tissue faces = heat into the gas.
    g, t_eff = 0.05, -60.0
    t_w = dev.freeze_wall_c(g, t_eff)
    assert g * (t_eff - t_w) == pytest.approx(1.5 * (t_w + 185.8), rel=1e-12)
    assert 1.5 * (t_w + 185.8) < 20.0
    # Large load: the flow is exhausted; the tissue gives exactly the capacity.
    g, t_eff = 5.0, 30.0
    t_w = dev.freeze_wall_c(g, t_eff)
    assert g * (t_eff - t_w) == pytest.approx(20.0, rel=1e-12)
    assert -185.8 < t_w < t_eff
    # Never colder than the gas, never warmer than the tissue; no tissue: the gas temperature.
    assert dev.freeze_wall_c(1e-9, -185.0) >= -185.8
    assert dev.freeze_wall_c(0.0, 20.0) == -185.8
    # Active thaw: heating power up to the limit.
    heat = DeviceDrive(-185.8, 20.0, 1.5, thaw_power_w=10.0)
    assert heat.thaw_wall_c(2.0, -50.0, 20.0) == pytest.approx(-45.0)
    assert heat.thaw_wall_c(0.1, -50.0, 20.0) == 20.0
    with pytest.raises(InputError, match="capacity_w"):
        DeviceDrive(-185.8, 0.0, 1.5)
    with pytest.raises(InputError, match="gas_temperature_c"):
        DeviceDrive(float("nan"), 1.0, 1.5)


def _crossing(x: np.ndarray, t: np.ndarray, level: float) -> float:
    i = int(np.argmax(t > level))
    return float(x[i - 1] + (level - t[i - 1]) / (t[i] - t[i - 1]) * (x[i] - x[i - 1]))


def test_capacity_limited_probe_freezes_like_a_line_sink() -> None:
    """A thin probe whose flow is exhausted from the first step removes its capacity, a fixed
    heat per unit length: far from it the iceball is the Carslaw & Jaeger line heat sink
    (§11.6; docs/domain-facts.md: Q = 400 W/m in water at 37 °C, 600 s → 0/−20 °C at 9.76/4.79 mm).
    Probe 1 mm across through a 4 mm slab with adiabatic faces (an infinite probe), 0.5 mm
    voxels. Tolerance 0.3 mm (the probe's finite radius and the voxel).
    The heat drawn equals capacity × time within 1 %."""
    voxel, n, height = 0.5, 121, 8
    grid = Grid(shape=(n, n, height), voxel_mm=voxel)
    c = (n // 2 + 0.5) * voxel
    probe = ProbeGeometry((c, c, 0.0), (0, 0, 1), 1.0, 50.0)
    q_w_m = 400.0
    cap = q_w_m * height * voxel * 1e-3
    dev = DeviceDrive(gas_temperature_c=-273.0, capacity_w=cap, gas_conductance_w_per_k=1e6)
    model = ThermalModel(
        grid,
        np.zeros(grid.shape, np.uint8),
        [WATER],
        [probe],
        [constant(-273.0)],
        dirichlet_faces=(True, True, True, True, False, False),
        probe_devices=[dev],
    )
    res = simulate(model, [Phase("freeze", 600.0)], time_step_s=0.25)
    k = height - 2
    axis = res.temperature_c[n // 2 :, n // 2, k]
    r = np.arange(len(axis)) * voxel  # cell n//2 holds the probe axis
    finite = np.isfinite(axis) & (r > 0.5)
    for level, published in ((0.0, 9.76), (-20.0, 4.79)):
        exact = (
            analytic.line_sink_isotherm_radius(
                level, 600.0, WATER, sink_w_per_m=q_w_m, initial_temperature_c=37.0
            )
            * 1e3
        )
        assert exact == pytest.approx(published, abs=0.01)
        assert _crossing(r[finite], axis[finite], level) == pytest.approx(exact, abs=0.3)
    assert res.probe_heat_j[0] == pytest.approx(cap * 600.0, rel=0.01)
    assert np.nanmin(res.probe_wall_temperature_c) > -273.0


def test_device_coupling_agrees_with_the_axisymmetric_solver() -> None:
    """The same device (2.4 mm argon class, 20 mm active, capacity 8 W) in muscle for 180 s:
    3D engine at 0.5 mm against the r-z solver at 0.25 mm. Isotherm diameters within 0.6 mm
    and lengths within 0.8 mm (fixed-temperature probes agree to 0.16/0.35 mm, docs/validation.md;
    the device adds the lag of evaluating the wall once per step in each); final wall
    temperatures within 6 K; heat drawn within 8 %."""
    muscle = get_tissue("muscle")
    d, length, t_end = 2.4, 20.0, 180.0
    dev = DeviceDrive(
        gas_temperature_c=-185.8,
        capacity_w=8.0,
        gas_conductance_w_per_k=5000.0 * math.pi * d * length * 1e-6,
    )
    ax = solve_axisymmetric(
        muscle,
        probe_diameter_mm=d,
        active_length_mm=length,
        tip_temperature_c=0.0,
        protocol=[("freeze", t_end)],
        radius_mm=25,
        z_extent_mm=(0, 50),
        tip_z_mm=12,
        cell_mm=0.25,
        dt_s=0.5,
        device=dev,
    )
    grid = Grid.from_size((30, 30, 42), 0.5)
    probe = ProbeGeometry((15.0, 15.0, 10.0), (0, 0, 1), d, length)
    model = ThermalModel(
        grid,
        np.zeros(grid.shape, np.uint8),
        [muscle],
        [probe],
        [constant(0.0)],
        probe_devices=[dev],
    )
    res = simulate(model, [Phase("freeze", t_end)])
    iso = isotherms(res, (0.0, -20.0))
    for level in ("0", "-20"):
        ref = ax.isotherms_minimum[level]
        assert iso[level]["diameter_mm"] == pytest.approx(ref["diameter_mm"], abs=0.6)
        assert iso[level]["length_mm"] == pytest.approx(ref["length_mm"], abs=0.8)
    assert res.probe_wall_temperature_c[-1, 0] == pytest.approx(ax.wall_temperature_c[-1], abs=6.0)
    assert res.probe_heat_j[0] == pytest.approx(ax.heat_extracted_j, rel=0.08)


def test_gas_side_limit_holds_the_wall_above_the_gas() -> None:
    """With ample flow the wall settles where the gas side carries the load: above the gas's
    boiling point by load / (h A), never below it (argon −185.8 °C, gas model)."""
    m = probe_physics.get_probe_model("argon-1.5mm-generic")
    dev = probe_physics.device_drive(m, mass_flow=5.0)
    assert dev.gas_temperature_c == pytest.approx(-185.85, abs=0.05)
    grid = Grid.from_size((20, 20, 24), 0.5)
    probe = ProbeGeometry((10.0, 10.0, 6.0), (0, 0, 1), 1.5, 10.0)
    model = ThermalModel(
        grid,
        np.zeros(grid.shape, np.uint8),
        [get_tissue("muscle")],
        [probe],
        [constant(0.0)],
        probe_devices=[dev],
    )
    res = simulate(model, [Phase("freeze", 60.0)])
    wall = res.probe_wall_temperature_c[1:, 0]
    assert np.all(wall > dev.gas_temperature_c)
    load_w = (wall[-1] - dev.gas_temperature_c) * dev.gas_conductance_w_per_k
    assert load_w < dev.capacity_w  # the gas side, not the flow, limits
    # the wall starts warm (large transient load) and cools as the load falls
    assert wall[0] > wall[-1]


def test_catalogue_devices_have_sources_and_physical_flows() -> None:
    for m in probe_physics.CATALOGUE.values():
        assert m.status in ("calibrated", "scaled")
        flow = probe_physics.mass_flow_g_s(m)
        assert 0.001 < flow < 5.0, m.name  # g/s: cartridge to console scale
        drive = probe_physics.device_drive(m)
        assert drive.capacity_w > 0
        assert drive.gas_conductance_w_per_k > 0
    assert probe_physics.get_probe_model("argon-2.4mm-class").status == "calibrated"
    # mass flow scales with the probe's cross-section and the choked flux rises with pressure
    big = probe_physics.get_probe_model("argon-2.4mm-class")
    small = probe_physics.get_probe_model("argon-1.7mm-class")
    assert probe_physics.mass_flow_g_s(small) / probe_physics.mass_flow_g_s(big) == pytest.approx(
        (1.7 / 2.4) ** 2, rel=1e-9
    )
    assert probe_physics.choked_mass_flux("argon", 300.0) > probe_physics.choked_mass_flux(
        "argon", 150.0
    )


def test_choked_flux_of_an_ideal_gas_limit() -> None:
    """Helium at 20 °C behaves as an ideal gas (γ = 5/3): G* = p0 √(γ/(R T0)) (2/(γ+1))^((γ+1)/
    (2(γ−1))) (the isentropic-nozzle result, e.g. Anderson, Modern Compressible Flow §5.4).
    At 10 bar, within 1 %."""
    p0, t0, gamma, r_spec = 10e5, 293.15, 5 / 3, 8.314462618 / 4.002602e-3
    ideal = (
        p0
        * math.sqrt(gamma / (r_spec * t0))
        * (2 / (gamma + 1)) ** ((gamma + 1) / (2 * (gamma - 1)))
    )
    assert probe_physics.choked_mass_flux("helium", 10.0) == pytest.approx(ideal, rel=0.01)


CASE = """
[domain]
size_mm = [20, 20, 30]
voxel_mm = 0.5
tissue = "muscle"

[[probes]]
model = "argon-1.5mm-generic"
tip_mm = [10, 10, 8]
{extra}

[protocol]
phases = [{{ freeze_s = 30 }}]
"""


def test_case_file_uses_the_device_model_for_catalogue_probes(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CASE.format(extra=""), encoding="utf-8")
    case = load_case(path)
    model = case.model()
    assert model.probe_devices is not None
    assert model.probe_devices[0] is not None
    assert any("not validated" in w for w in case.validity_warnings())
    assert any("unperfused agar" in w for w in case.validity_warnings())
    path.write_text(CASE.format(extra='drive = "held"'), encoding="utf-8")
    held = load_case(path)
    assert held.model().probe_devices is None
    assert any("no-load boiling point" in w for w in held.validity_warnings())
    path.write_text(
        CASE.format(extra='tip_temperature_c = -150\ndrive = "device"'), encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["simulate", str(path), "--json"])
    assert result.exit_code == 2
    assert "drive" in result.output
    assert "Traceback" not in result.output


def test_simulate_json_reports_probe_wall_and_warnings(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CASE.format(extra=""), encoding="utf-8")
    result = CliRunner().invoke(app, ["simulate", str(path), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    p = out["probes"][0]
    assert p["drive"] == "device"
    assert p["gas_temperature_c"] < p["wall_temperature_end_of_freeze_c"] < 0.0
    assert 0 < p["mean_cooling_during_freezes_w"] <= p["capacity_w"] * 1.001
    assert out["warnings"]


@pytest.mark.parametrize(
    "path",
    sorted(
        __import__("pathlib")
        .Path(__file__)
        .resolve()
        .parents[1]
        .joinpath("examples")
        .glob("*.toml")
    ),
    ids=lambda p: p.name,
)
def test_every_example_case_builds(path) -> None:
    """Each example (one per catalogue device) is a valid case whose device probes get a drive."""
    case = load_case(path)
    model = case.model()
    for spec, dev in zip(
        case.probes, model.probe_devices or [None] * len(case.probes), strict=True
    ):
        assert (dev is not None) == spec.uses_device()
        if dev is not None:
            assert dev.capacity_w > 0
