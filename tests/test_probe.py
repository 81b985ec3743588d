"""Cryoprobe gas physics and the `probe` command.

Each test names its reference and tolerance. "CoolProp, 1 atm" values are the saturation
temperatures docs/domain-facts.md lists; handbook values are the CRC/ASHRAE figures cited in
:mod:`cryoneuro.probe`.
"""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from cryoneuro import probe
from cryoneuro.cli import app
from cryoneuro.errors import InputError, PhysicsError

runner = CliRunner()


# --- recuperated (precooled) tips: exhaust boiling point at 1 atm --------------------------------


@pytest.mark.parametrize(
    ("gas", "expected_c"),
    [
        ("argon", -185.8),  # normal boiling point, docs/domain-facts.md (CoolProp); NIST -185.85 C
        ("nitrogen", -195.8),  # docs/domain-facts.md; NIST 77.355 K
        ("nitrous-oxide", -88.5),  # docs/domain-facts.md; NIST 184.67 K
        ("carbon-dioxide", -78.5),  # dry-ice sublimation at 1 atm, CRC Handbook
    ],
)
def test_precooled_tip_is_the_exhaust_boiling_point(gas: str, expected_c: float) -> None:
    state = probe.tip_state(gas)  # tolerance 0.5 K (rounding of the quoted values)
    assert state.mode == "precooled"
    assert state.tip_temperature_c == pytest.approx(expected_c, abs=0.5)
    assert not state.warms
    assert state.cooling_power_w_per_g_s > 0
    assert state.cooling_power_w_per_g_s == pytest.approx(state.linde_w_per_g_s)


def test_carbon_dioxide_leaves_as_dry_ice_without_coolprop_extrapolation() -> None:
    # Span & Wagner 1996 eq. 3.12 gives 194.686 K at 101.325 kPa; handbook -78.5 C (±0.1 K).
    assert probe.co2_sublimation_temperature_c(probe.ATM_BAR) == pytest.approx(-78.46, abs=0.1)
    # the line must meet the triple point (216.592 K, 5.1795 bar) exactly
    assert probe.co2_sublimation_pressure_bar(probe.CO2_TRIPLE_K - 273.15) == pytest.approx(5.1795)
    for precooled in (True, False):
        state = probe.tip_state("CO2", precooled=precooled)
        assert state.exhaust_phase == "solid+vapour (dry ice)"
        assert 0 < state.quality < 1
    # above the triple-point pressure the exhaust boils as a liquid again (CoolProp applies):
    # CO2 saturation at 10 bar is -40.1 C (NIST webbook, ±0.2 K)
    assert probe.tip_state("CO2", exhaust_bar=10).tip_temperature_c == pytest.approx(-40.1, abs=0.2)


def test_sublimation_enthalpy_agrees_with_clausius_clapeyron() -> None:
    # Independent of CoolProp: Clapeyron on the Span & Wagner sublimation line with an ideal
    # vapour gives Δh = R T² dln p/dT / M (588 kJ/kg), an upper bound since the real vapour's
    # compressibility factor is slightly below 1; the 571 kJ/kg handbook value must lie below
    # it and within 4 %.
    t_k = probe.co2_sublimation_temperature_c(probe.ATM_BAR) + 273.15
    d = 1e-3
    dlnp = (
        math.log(probe.co2_sublimation_pressure_bar(t_k + d - 273.15))
        - math.log(probe.co2_sublimation_pressure_bar(t_k - d - 273.15))
    ) / (2 * d)
    dh = 8.314462618 * t_k**2 * dlnp / 0.0440098
    assert dh > probe.CO2_SUBLIMATION_J_PER_KG
    assert pytest.approx(dh, rel=0.04) == probe.CO2_SUBLIMATION_J_PER_KG


def test_helium_warms_on_expansion() -> None:
    # inverse J–T above helium's inversion temperature (~45 K): docs/domain-facts.md
    for precooled in (True, False):
        state = probe.tip_state("He", precooled=precooled)
        assert state.warms
        assert state.tip_temperature_c > state.supply_temperature_c
        assert state.cooling_power_w_per_g_s < 0


# --- single pass ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("psi", "expected_c"), [(2000, -28), (3000, -48), (4000, -62), (6000, -76)]
)
def test_single_pass_argon_matches_design_table(psi: int, expected_c: float) -> None:
    # docs/domain-facts.md: argon from 20 C to 1 atm, no precooling; tolerance 2 K
    state = probe.tip_state("argon", supply_bar=psi * probe.PSI_BAR, precooled=False)
    assert state.tip_temperature_c == pytest.approx(expected_c, abs=2.0)
    assert state.exhaust_phase == "gas"
    assert state.cooling_power_w_per_g_s == 0.0


def test_single_pass_liquid_nitrous_oxide_boils_at_the_tip() -> None:
    # saturated liquid at 20 C flashes to -88.5 C (docs/domain-facts.md) with vapour fraction x;
    # the capacity at the tip is (1 - x) h_fg
    state = probe.tip_state("N2O", precooled=False)
    assert state.tip_temperature_c == pytest.approx(-88.5, abs=0.5)
    assert 0.4 < state.quality < 0.7
    assert 0 < state.cooling_power_w_per_g_s < state.linde_w_per_g_s


def test_single_pass_cooling_rises_with_surface_temperature() -> None:
    # q(T) = h(p_e, T) - h_s: zero at the no-load tip, the Linde value at the supply temperature
    tip = probe.tip_state("argon", precooled=False).tip_temperature_c
    q_tip = probe.single_pass_cooling("argon", tip + 1e-6)
    q_mid = probe.single_pass_cooling("argon", -20.0)
    q_sup = probe.single_pass_cooling("argon", 20.0)
    assert abs(q_tip) < 1e-3 < q_mid < q_sup
    assert q_sup == pytest.approx(probe.linde_cooling("argon"))
    with pytest.raises(InputError, match="surface_temperature_c"):
        probe.single_pass_cooling("argon", tip - 5)


# --- cooling per unit mass flow -------------------------------------------------------------------


def test_argon_cooling_positive_and_increasing_with_supply_pressure() -> None:
    # Sprenkle 2010 (J Endourol): higher argon supply pressure gives colder probes; both the
    # Linde capacity and the single-pass tip must be monotone over 2000–6000 psi
    pressures = [2000, 3000, 4000, 6000]
    q = [probe.linde_cooling("argon", p * probe.PSI_BAR) for p in pressures]
    tips = [
        probe.tip_state("argon", p * probe.PSI_BAR, precooled=False).tip_temperature_c
        for p in pressures
    ]
    assert all(v > 0 for v in q)
    assert q == sorted(q)
    assert tips == sorted(tips, reverse=True)


def test_linde_difference_matches_second_virial_estimate() -> None:
    # Independent of CoolProp: at low pressure (∂h/∂p)_T = B - T dB/dT. Argon B(T) from the
    # CRC Handbook smoothing fit (Kehiaian, "Virial coefficients of selected gases", after
    # Dymond & Smith 1980): B = Σ a_i (298.15/T - 1)^(i-1), a = (-16, -60, -9.7, -1.5) cm³/mol.
    # At 10 bar the truncation error is < 1 %; tolerance 3 % (fit uncertainty ~1 cm³/mol).
    t = 293.15
    y = 298.15 / t - 1
    a = (-16.0, -60.0, -9.7, -1.5)
    b = sum(ai * y**i for i, ai in enumerate(a)) * 1e-6
    db_dy = sum(i * ai * y ** (i - 1) for i, ai in enumerate(a) if i) * 1e-6
    db_dt = db_dy * (-298.15 / t**2)
    dp = (10.0 - probe.ATM_BAR) * 1e5
    estimate_kj_per_kg = (t * db_dt - b) * dp / 0.039948 / 1e3
    assert probe.linde_cooling("argon", 10.0) == pytest.approx(estimate_kj_per_kg, rel=0.03)
    # the J–T drop: ΔT = Δh/c_p0 with c_p0 = 5R/2M = 0.5203 kJ/kg/K (monatomic ideal gas), 3 %
    drop = 20.0 - probe.tip_state("argon", 10.0, precooled=False).tip_temperature_c
    assert drop == pytest.approx(estimate_kj_per_kg / 0.5203, rel=0.03)


def test_default_supply_pressures() -> None:
    # docs/domain-facts.md: saturation pressure at 20 C, N2O 50.5 bar, CO2 57.3 bar (±0.1 bar)
    assert probe.default_supply_bar("nitrous-oxide") == pytest.approx(50.5, abs=0.1)
    assert probe.default_supply_bar("carbon-dioxide") == pytest.approx(57.3, abs=0.1)
    assert probe.default_supply_bar("argon") == pytest.approx(206.8, abs=0.1)  # 3000 psi


# --- input errors and the catalogue ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"gas": "xenon"}, "gas"),
        ({"gas": "argon", "supply_bar": -1}, "supply_bar"),
        ({"gas": "argon", "supply_bar": 0}, "supply_bar"),
        ({"gas": "argon", "supply_bar": float("nan")}, "supply_bar"),
        ({"gas": "argon", "exhaust_bar": 300}, "exhaust_bar"),
        ({"gas": "argon", "supply_temperature_c": -250}, "supply_temperature_c"),
        ({"gas": "argon", "supply_temperature_c": float("inf")}, "supply_temperature_c"),
        ({"gas": "argon", "supply_phase": "plasma"}, "supply_phase"),
    ],
)
def test_bad_input_names_the_parameter(kwargs: dict, needle: str) -> None:
    with pytest.raises(InputError, match=needle) as info:
        probe.tip_state(**kwargs)
    assert "\n" not in str(info.value)


def test_the_cache_neither_answers_a_bool_nor_fails_on_a_list() -> None:
    """tip_state is cached per argument set (issue 17): a valid call with exhaust_bar=1 must not
    make exhaust_bar=True (equal as a dict key) answer from the cache, and a list or an array is
    refused by name, not with "unhashable type"."""
    first = probe.tip_state("argon", exhaust_bar=1)
    assert probe.tip_state("argon", exhaust_bar=1) is first  # served from the cache
    with pytest.raises(InputError, match="exhaust_bar"):
        probe.tip_state("argon", exhaust_bar=True)
    with pytest.raises(InputError, match="supply_bar"):
        probe.tip_state("argon", supply_bar=[200.0])


def test_states_outside_the_model_raise_physics_error() -> None:
    with pytest.raises(PhysicsError, match="freeze"):  # N2O triple point 0.878 bar
        probe.tip_state("nitrous-oxide", exhaust_bar=0.5)
    with pytest.raises(PhysicsError, match="no boiling tip"):  # above argon's critical pressure
        probe.tip_state("argon", supply_bar=200, exhaust_bar=60)


def test_aliases_and_catalogue() -> None:
    assert probe.tip_state("Ar").gas == "argon"
    assert probe.canonical_gas("nitrous oxide").name == "nitrous-oxide"
    assert probe.canonical_gas("CO2").name == "carbon-dioxide"
    model = probe.get_probe_model("argon-17G-sphere-class")
    assert model.diameter_mm == pytest.approx(1.47)
    assert model.gas == "argon"
    for m in probe.CATALOGUE.values():
        assert m.gas in probe.GASES
        assert m.diameter_mm > 0
        assert m.active_length_mm > 0
    with pytest.raises(InputError, match="argon-17G-seed-class"):
        probe.get_probe_model("icerod")
    d = probe.tip_state("argon").to_dict()
    assert json.loads(json.dumps(d))["tip_temperature_c"] == pytest.approx(-185.85, abs=0.01)


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_json_contract() -> None:
    result = runner.invoke(app, ["probe", "argon", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["tip_temperature_c"] == pytest.approx(-185.8, abs=0.5)
    assert data["cooling_power_w_per_g_s"] > 0
    assert data["mode"] == "precooled"
    result = runner.invoke(
        app, ["probe", "argon", "--single-pass", "--supply-bar", "275.8", "--json"]
    )
    assert json.loads(result.stdout)["tip_temperature_c"] == pytest.approx(-62, abs=2)


def test_cli_table_and_list() -> None:
    result = runner.invoke(app, ["probe", "co2"])
    assert result.exit_code == 0
    assert "dry ice" in result.stdout
    result = runner.invoke(app, ["probe", "--list", "--json"])
    names = [m["name"] for m in json.loads(result.stdout)]
    assert "n2o-handheld-27G-x3-class" in names
    result = runner.invoke(app, ["probes"])
    assert result.exit_code == 0
    assert "argon-17G-seed-class" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["probe", "xenon", "--json"], "unknown gas"),
        (["probe", "argon", "--supply-bar", "-5", "--json"], "supply_bar"),
        (["probe", "argon", "--exhaust-bar", "500"], "exhaust_bar"),
        (["probe"], "GAS"),
    ],
)
def test_cli_errors_are_one_line_exit_2(args: list[str], needle: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("cryoneuro: error:")
    assert needle in lines[0]
