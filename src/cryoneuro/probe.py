"""Cryoprobe gas physics (Joule–Thomson) and the probe catalogue.

A gas cryoprobe feeds high-pressure gas at the supply state ``(p_s, T_s)`` through a
Joule–Thomson orifice at the tip; it leaves at the exhaust pressure ``p_e`` (about 1 atm).
Real-fluid properties come from CoolProp (Bell et al. 2014, Ind Eng Chem Res 53:2498; the
reference equations of state: argon Tegeler 1999, nitrogen Span 2000, nitrous oxide Lemmon &
Span 2006, carbon dioxide Span & Wagner 1996, helium Ortiz-Vega 2013).

Two limits are modelled (``precooled`` selects):

* **single pass** (no heat exchanger): the expansion is isenthalpic, so the no-load tip state
  solves ``h(p_s, T_s) = h(p_e, T_tip)``. If that state is inside the liquid–vapour dome the
  tip sits at the saturation temperature ``T_sat(p_e)`` with vapour mass fraction
  ``x = (h_s - h_l) / (h_v - h_l)``. The refrigeration a probe *surface held at* ``T`` receives
  per unit mass flow is ``q(T) = h(p_e, T) - h_s`` (the exhaust leaves the active tip at the
  surface temperature). Reported ``cooling_power_w_per_g_s`` is ``q`` at the no-load tip
  temperature: ``(1 - x)(h_v - h_l)`` for a two-phase exit and **zero for a gas exit** — such a
  probe only absorbs heat while its surface runs warmer than ``T_tip``
  (:func:`single_pass_cooling`).
* **precooled** (ideal counter-flow recuperator, steady state; the contract default): the
  exhaust warms the incoming gas and leaves at ``T_s``. An energy balance over exchanger and
  tip gives the Linde–Hampson result, the isothermal enthalpy difference
  ``q = h(p_e, T_s) - h(p_s, T_s)`` (Barron, *Cryogenic Systems*, 2nd ed. 1985, §2.6).
  When ``q > 0`` the cold end ends up boiling at ``T_sat(p_e)`` (argon −185.8 °C,
  nitrogen −195.8 °C, nitrous oxide −88.5 °C at 1 atm). The exchanger cannot cool the supply
  stream below the tip temperature nor below its melting temperature at ``p_s`` (argon freezes
  at 88.9 K at 207 bar, CoolProp's melting line), which caps ``q`` at
  ``h_v(p_e, T_tip) - h(p_s, T_hx)``; the cap binds only for liquid supplies.

Whatever the configuration, ``h(p_e, T_s) - h(p_s, T_s)`` is the total heat the gas can absorb
before it leaves at the supply temperature (reported as ``linde_w_per_g_s``); the two modes
differ in the temperature at which it is absorbed. A gas with ``q < 0`` (helium at room
temperature: inverse J–T) warms on expansion; the state then has ``warms = True``, the tip
temperature is the single-pass one (a recuperator would only amplify the heating) and
``cooling_power_w_per_g_s`` is the negative ``q`` — heat delivered per unit mass flow to a
surface at the supply temperature. Units: kJ/kg = W per g/s.

Carbon dioxide below its triple point (216.592 K, 5.1795 bar) leaves as dry ice and vapour,
where the fluid equation of state does not apply. It is handled explicitly: the tip is at the
sublimation temperature of Span & Wagner (1996, J Phys Chem Ref Data 25:1509, eq. 3.12;
−78.46 °C at 1 atm, handbook −78.5 °C) and the solid is ``Δh_sub = 571 kJ/kg`` below the
saturated vapour (handbook value at −78.5 °C, e.g. ASHRAE Refrigeration; Giauque & Egan 1937,
J Chem Phys 5:45, measured 25.23 kJ/mol = 573 kJ/kg). The vapour enthalpy below 216.6 K is
extrapolated from CoolProp at 216.7 K with the constant ``c_p`` there (≈0.78 kJ/kg/K over
22 K; error well under 1 kJ/kg). CoolProp is never called below the triple point.
"""

from __future__ import annotations

import atexit
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from cryoneuro.errors import InputError, PhysicsError

ATM_BAR = 1.01325
PSI_BAR = 0.0689475729
_K = 273.15

# Carbon dioxide: triple point and solid lines (Span & Wagner 1996, eqs. 3.10 and 3.12).
CO2_TRIPLE_K = 216.592
CO2_TRIPLE_BAR = 5.1795
_CO2_SUB_A = (-14.740846, 2.4327015, -5.3061778)
_CO2_SUB_T = (1.0, 1.9, 2.9)
_CO2_MELT_A = (1955.5390, 2055.4593)
#: Enthalpy of sublimation of CO2 at −78.5 °C, J/kg (handbook; see module docstring).
CO2_SUBLIMATION_J_PER_KG = 571e3
_CO2_VAPOUR_REF_K = 216.7  # just above CoolProp's Tmin, where the gas is still valid

SATURATION_WINDOW = 0.02  # supply within 2 % of p_sat(T_s) = a cylinder in equilibrium


@dataclass(frozen=True)
class Gas:
    """A cryogen: canonical name, CoolProp fluid, aliases and default supply pressure."""

    name: str
    coolprop: str
    aliases: tuple[str, ...]
    default_supply_bar: float | None  # None: the saturation pressure at the supply temperature
    supply_source: str


GASES: dict[str, Gas] = {
    g.name: g
    for g in (
        Gas(
            "argon",
            "Argon",
            ("ar",),
            3000 * PSI_BAR,
            "3000 psi (206.8 bar), the usual argon cylinder/console class; docs/domain-facts.md "
            "gives single-pass tips for 2000–6000 psi (Sprenkle 2010, J Endourol)",
        ),
        Gas("nitrogen", "Nitrogen", ("n2",), 200.0, "200 bar, a standard gas cylinder"),
        Gas(
            "nitrous-oxide",
            "NitrousOxide",
            ("n2o", "nitrous", "nitrousoxide"),
            None,
            "saturation pressure at the supply temperature (50.5 bar at 20 °C): a "
            "liquid-filled cylinder or cartridge in equilibrium",
        ),
        Gas(
            "carbon-dioxide",
            "CarbonDioxide",
            ("co2", "carbondioxide"),
            None,
            "saturation pressure at the supply temperature (57.3 bar at 20 °C): a "
            "liquid-filled cylinder or cartridge in equilibrium",
        ),
        Gas(
            "helium",
            "Helium",
            ("he",),
            200.0,
            "200 bar, a standard gas cylinder (argon systems use helium for active thaw)",
        ),
    )
}


def canonical_gas(name: str) -> Gas:
    """Return the :class:`Gas` for ``name`` (case-insensitive; aliases such as ``N2O``, ``CO2``)."""
    key = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    for gas in GASES.values():
        if key == gas.name or key.replace("-", "") in gas.aliases:
            return gas
    raise InputError(f"gas: unknown gas '{name}'; choose one of {', '.join(GASES)}")


# --- CoolProp access (the only place that calls it) ----------------------------------------
class _PropertyMemo:
    """A per-user file of CoolProp's answers, so a warm run need not import CoolProp at all.

    Why: importing CoolProp takes 1.2–1.7 s on the 2-core reference machine (it loads every
    fluid's data), as long as the planner's whole screening on the 1 mm grid, while a plan asks
    it the same few hundred questions every time (the same gases, pressures and root-finding
    iterates). The answers are pure functions of the arguments and CoolProp's version, so they
    are kept in ``$CRYONEURO_CACHE_DIR/coolprop`` (default ``~/.cache/cryoneuro/coolprop``), one
    JSON file per CoolProp version (read from the package metadata, which does not import it).
    JSON floats round-trip exactly, so a remembered answer is bit-identical to CoolProp's; a
    call that raised is never remembered (it is asked again, and raises again). The file is
    written at exit, merged with what is there, to a temporary name then renamed, so a reader
    never sees half a file; one that cannot be read is ignored and rewritten. It is only a
    cache: ``CRYONEURO_COOLPROP_CACHE=0`` turns it off, and an unwritable directory is skipped.
    """

    def __init__(self) -> None:
        self._data: dict[str, Any] | None = None
        self._new: dict[str, Any] = {}
        self._hooked = False

    @staticmethod
    def enabled() -> bool:
        return os.environ.get("CRYONEURO_COOLPROP_CACHE", "1") != "0"

    @staticmethod
    def path() -> Path:
        from importlib.metadata import PackageNotFoundError, version

        try:
            cp_version = version("CoolProp")
        except PackageNotFoundError:  # pragma: no cover - CoolProp is a hard dependency
            cp_version = "unknown"
        env = os.environ.get("CRYONEURO_CACHE_DIR")
        base = (
            Path(env)
            if env
            else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cryoneuro"
        )
        return base / "coolprop" / f"coolprop-{cp_version}.json"

    def _load(self) -> dict[str, Any]:
        if self._data is None:
            self._data = {}
            if self.enabled():
                try:
                    data = json.loads(self.path().read_text(encoding="utf-8"))
                    if isinstance(data, dict):
                        # only numbers (and None, "no melting line") are answers; anything
                        # else in a hand-edited file is dropped and asked of CoolProp again
                        self._data = {
                            k: v
                            for k, v in data.items()
                            if v is None or (isinstance(v, int | float) and not isinstance(v, bool))
                        }
                except (OSError, ValueError):
                    pass  # no file yet, or an unreadable one: start afresh
        return self._data

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        data = self._load()
        if key in data:
            return data[key]
        value = compute()
        data[key] = self._new[key] = value
        if self.enabled() and not self._hooked:
            atexit.register(self.flush)
            self._hooked = True
        return value

    def flush(self) -> None:
        """Merge this process's new answers into the file (atomically); errors are ignored."""
        if not self._new or not self.enabled():
            return
        path = self.path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                on_disk = json.loads(path.read_text(encoding="utf-8"))
                merged = on_disk if isinstance(on_disk, dict) else {}
            except (OSError, ValueError):
                merged = {}
            merged.update(self._new)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(merged), encoding="utf-8")
            os.replace(tmp, path)
            self._new = {}
        except OSError:
            pass  # a read-only home or a full disk: the cache is an optimisation only


_MEMO = _PropertyMemo()


def _props_si(*args: Any) -> float:
    """``CoolProp.PropsSI(*args)`` through the memo (raises ValueError as PropsSI does)."""

    def ask() -> float:
        from CoolProp.CoolProp import PropsSI

        return float(PropsSI(*args))

    return float(_MEMO.get(json.dumps(["PropsSI", *args], default=float), ask))


def _cp(out: str, k1: str, v1: float, k2: str, v2: float, fluid: str) -> float:
    try:
        value = _props_si(out, k1, v1, k2, v2, fluid)
    except ValueError as exc:
        raise PhysicsError(
            f"{fluid}: property {out} at {k1}={v1:g}, {k2}={v2:g} is outside the "
            f"equation of state ({str(exc).splitlines()[0]})"
        ) from None
    if not math.isfinite(value):
        raise PhysicsError(f"{fluid}: property {out} at {k1}={v1:g}, {k2}={v2:g} is undefined")
    return value


@cache
def _limits(fluid: str) -> dict[str, float]:
    return {
        k: _props_si(k, fluid) for k in ("Ttriple", "ptriple", "Tcrit", "pcrit", "Tmax", "pmax")
    }


# --- carbon dioxide below the triple point -----------------------------------------------------


def co2_sublimation_pressure_bar(temperature_c: float) -> float:
    """Sublimation pressure of CO2 (Span & Wagner 1996, eq. 3.12), valid below 216.592 K.

    ``ln(p / p_t) = (T_t / T) Σ a_i (1 - T/T_t)^t_i`` with ``a = (-14.740846, 2.4327015,
    -5.3061778)``, ``t = (1, 1.9, 2.9)``, ``T_t = 216.592 K``, ``p_t = 5.1795 bar``.
    """
    t_k = temperature_c + _K
    if not 0 < t_k <= CO2_TRIPLE_K:
        raise PhysicsError(
            f"CO2 sublimation line: {temperature_c} C is not below the triple point (-56.558 C)"
        )
    theta = 1.0 - t_k / CO2_TRIPLE_K
    s = sum(a * theta**e for a, e in zip(_CO2_SUB_A, _CO2_SUB_T, strict=True))
    return CO2_TRIPLE_BAR * math.exp(CO2_TRIPLE_K / t_k * s)


def co2_sublimation_temperature_c(pressure_bar: float) -> float:
    """Inverse of :func:`co2_sublimation_pressure_bar` (bisection; −78.46 °C at 1 atm)."""
    if not 0 < pressure_bar <= CO2_TRIPLE_BAR:
        raise PhysicsError(
            f"CO2 sublimation line: {pressure_bar} bar is not below the triple-"
            "point pressure (5.1795 bar)"
        )
    lo, hi = 100.0, CO2_TRIPLE_K  # K; p_sub(100 K) ~ 1e-7 bar
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if co2_sublimation_pressure_bar(mid - _K) < pressure_bar:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi) - _K


def co2_melting_temperature_k(pressure_bar: float) -> float:
    """Melting temperature of CO2 at ``pressure_bar`` (Span & Wagner 1996, eq. 3.10)."""
    a1, a2 = _CO2_MELT_A
    r = pressure_bar / CO2_TRIPLE_BAR - 1.0
    if r <= 0:
        return CO2_TRIPLE_K
    u = (-a1 + math.sqrt(a1 * a1 + 4 * a2 * r)) / (2 * a2)
    return CO2_TRIPLE_K * (1.0 + u)


def _melting_k(g: Gas, p_pa: float) -> float:
    """Melting temperature at ``p_pa`` (CoolProp's melting line; else the triple point)."""
    if g.name == "carbon-dioxide":
        return co2_melting_temperature_k(p_pa / 1e5)

    def ask() -> float | None:
        import CoolProp
        from CoolProp.CoolProp import AbstractState

        state = AbstractState("HEOS", g.coolprop)
        if not state.has_melting_line():
            return None
        try:
            return float(state.melting_line(CoolProp.iT, CoolProp.iP, p_pa))
        except ValueError:
            return None

    t_melt = _MEMO.get(json.dumps(["melting_line", g.coolprop, p_pa], default=float), ask)
    return _limits(g.coolprop)["Ttriple"] if t_melt is None else float(t_melt)


def _co2_vapour(p_pa: float) -> tuple[float, float]:
    """Enthalpy (J/kg) and c_p of CO2 vapour at ``p_pa`` and 216.7 K, the extrapolation base."""
    return (
        _cp("H", "T", _CO2_VAPOUR_REF_K, "P", p_pa, "CarbonDioxide"),
        _cp("C", "T", _CO2_VAPOUR_REF_K, "P", p_pa, "CarbonDioxide"),
    )


def _h(gas: Gas, t_k: float, p_pa: float) -> float:
    """Enthalpy of the fluid at (T, p), J/kg, with the CO2 sub-triple vapour extrapolation."""
    if gas.name == "carbon-dioxide" and t_k < _CO2_VAPOUR_REF_K and p_pa < CO2_TRIPLE_BAR * 1e5:
        h_ref, cp = _co2_vapour(p_pa)
        return h_ref - cp * (_CO2_VAPOUR_REF_K - t_k)
    return _cp("H", "T", t_k, "P", p_pa, gas.coolprop)


# --- the result ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeState:
    """Steady tip state of a J–T probe. Energies per unit mass flow in kJ/kg = W per g/s."""

    gas: str
    mode: str  # "precooled" | "single-pass"
    supply_bar: float
    exhaust_bar: float
    supply_temperature_c: float
    supply_phase: str
    tip_temperature_c: float
    cooling_power_w_per_g_s: float
    linde_w_per_g_s: float
    exhaust_phase: str
    warms: bool
    quality: float | None = None  # vapour mass fraction at the tip, two-phase only
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


def _number(name: str, value: Any, hint: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{name}: {value!r} is not a finite number; {hint}")
    return float(value)


def default_supply_bar(gas: str, supply_temperature_c: float = 20.0) -> float:
    """Default supply pressure, bar (see :data:`GASES` for each source)."""
    g = canonical_gas(gas)
    if g.default_supply_bar is not None:
        return g.default_supply_bar
    lim = _limits(g.coolprop)
    t_k = supply_temperature_c + _K
    if not lim["Ttriple"] < t_k < lim["Tcrit"]:
        raise InputError(
            f"supply_bar: {g.name} at {supply_temperature_c} C has no saturation "
            "pressure; give --supply-bar explicitly"
        )
    return _cp("P", "T", t_k, "Q", 0, g.coolprop) / 1e5


def _supply(g: Gas, p_pa: float, t_k: float, phase: str) -> tuple[float, str]:
    """Supply enthalpy (J/kg) and a phase label; a near-saturated supply uses ``phase``."""
    lim = _limits(g.coolprop)
    if t_k < lim["Tcrit"]:
        p_sat = _cp("P", "T", t_k, "Q", 0, g.coolprop)
        if abs(p_pa - p_sat) <= SATURATION_WINDOW * p_sat:
            q = 0 if phase == "liquid" else 1
            return _cp("H", "T", t_k, "Q", q, g.coolprop), f"saturated {phase}"
        return _cp("H", "T", t_k, "P", p_pa, g.coolprop), "liquid" if p_pa > p_sat else "gas"
    label = "supercritical" if p_pa > lim["pcrit"] else "gas"
    return _cp("H", "T", t_k, "P", p_pa, g.coolprop), label


def _saturation(g: Gas, p_pa: float) -> tuple[float, float, float, str] | None:
    """Boiling (or subliming) tip at ``p_pa``: (T_K, h_condensed, h_vapour, label), or None."""
    lim = _limits(g.coolprop)
    if p_pa >= lim["pcrit"]:
        return None
    if p_pa < lim["ptriple"]:
        if g.name != "carbon-dioxide":
            return None
        t_k = co2_sublimation_temperature_c(p_pa / 1e5) + _K
        h_v = _h(g, t_k, p_pa)
        return t_k, h_v - CO2_SUBLIMATION_J_PER_KG, h_v, "solid+vapour (dry ice)"
    return (
        _cp("T", "P", p_pa, "Q", 1, g.coolprop),
        _cp("H", "P", p_pa, "Q", 0, g.coolprop),
        _cp("H", "P", p_pa, "Q", 1, g.coolprop),
        "two-phase liquid+vapour",
    )


def _single_phase_exit(g: Gas, h: float, p_pa: float) -> tuple[float, str]:
    """Temperature (K) and label of the single-phase exhaust with enthalpy ``h``."""
    lim = _limits(g.coolprop)
    if g.name == "carbon-dioxide" and p_pa < CO2_TRIPLE_BAR * 1e5:
        h_ref, cp = _co2_vapour(p_pa)
        if h < h_ref:
            return _CO2_VAPOUR_REF_K - (h_ref - h) / cp, "gas"
    elif p_pa < lim["ptriple"] and h < _h(g, lim["Ttriple"] + 0.01, p_pa):
        raise PhysicsError(
            f"{g.name}: the exhaust at {p_pa / 1e5:g} bar would freeze (below the "
            f"triple point, {lim['ptriple'] / 1e5:.3g} bar); raise exhaust_bar"
        )
    t_k = _cp("T", "P", p_pa, "H", h, g.coolprop)
    if p_pa >= lim["pcrit"]:
        return t_k, "supercritical" if t_k > lim["Tcrit"] else "liquid"
    return t_k, "gas" if t_k >= _cp("T", "P", p_pa, "Q", 1, g.coolprop) else "liquid"


def _resolve(
    gas: str,
    supply_bar: float | None,
    exhaust_bar: float,
    supply_temperature_c: float,
    supply_phase: str,
) -> tuple[Gas, float, float, float, float, str]:
    g = canonical_gas(gas)
    t_s = _number("supply_temperature_c", supply_temperature_c, "give the supply temperature in C")
    lim = _limits(g.coolprop)
    t_min = lim["Ttriple"] - _K
    if not t_min < t_s <= lim["Tmax"] - _K:
        raise InputError(
            f"supply_temperature_c: {t_s} C is outside {g.name}'s fluid range "
            f"({t_min:.1f} to {lim['Tmax'] - _K:.0f} C); give a warmer supply"
        )
    if supply_phase not in ("liquid", "vapour"):
        raise InputError(f"supply_phase: '{supply_phase}' must be 'liquid' or 'vapour'")
    p_s = default_supply_bar(g.name, t_s) if supply_bar is None else supply_bar
    p_s = _number("supply_bar", p_s, "give the supply pressure in bar (absolute)")
    p_e = _number("exhaust_bar", exhaust_bar, "give the exhaust pressure in bar (absolute)")
    for name, p in (("supply_bar", p_s), ("exhaust_bar", p_e)):
        if p <= 0:
            raise InputError(f"{name}: {p} bar must be positive (absolute pressure)")
    if p_e >= p_s:
        raise InputError(f"exhaust_bar: {p_e} bar must be below supply_bar ({p_s:g} bar)")
    if p_s * 1e5 > lim["pmax"]:
        raise InputError(
            f"supply_bar: {p_s} bar is above {g.name}'s fluid range ({lim['pmax'] / 1e5:.0f} bar)"
        )
    h_s, label = _supply(g, p_s * 1e5, t_s + _K, supply_phase)
    return g, p_s, p_e, t_s, h_s, label


def linde_cooling(
    gas: str,
    supply_bar: float | None = None,
    exhaust_bar: float = ATM_BAR,
    supply_temperature_c: float = 20.0,
    supply_phase: str = "liquid",
) -> float:
    """Isothermal enthalpy difference ``h(p_e, T_s) - h(p_s, T_s)`` in kJ/kg (W per g/s)."""
    g, _, p_e, t_s, h_s, _ = _resolve(
        gas, supply_bar, exhaust_bar, supply_temperature_c, supply_phase
    )
    return (_h(g, t_s + _K, p_e * 1e5) - h_s) / 1e3


def single_pass_cooling(
    gas: str,
    surface_temperature_c: float,
    supply_bar: float | None = None,
    exhaust_bar: float = ATM_BAR,
    supply_temperature_c: float = 20.0,
    supply_phase: str = "liquid",
) -> float:
    """Cooling per unit mass flow (kJ/kg) of a single-pass probe whose surface is held at
    ``surface_temperature_c``: ``q = h(p_e, T_surface) - h(p_s, T_s)``.

    The surface cannot be colder than the no-load tip (``InputError``); at the saturation
    temperature the exhaust is taken as saturated vapour.
    """
    g, p_s, p_e, t_s, h_s, _ = _resolve(
        gas, supply_bar, exhaust_bar, supply_temperature_c, supply_phase
    )
    t = _number("surface_temperature_c", surface_temperature_c, "give a temperature in C")
    tip = tip_state(g.name, p_s, p_e, t_s, precooled=False, supply_phase=supply_phase)
    if t < tip.tip_temperature_c - 1e-6:
        raise InputError(
            f"surface_temperature_c: {t} C is colder than the no-load tip "
            f"({tip.tip_temperature_c:.1f} C)"
        )
    sat = _saturation(g, p_e * 1e5)
    if sat is not None and t <= sat[0] - _K + 1e-6:
        return (sat[2] - h_s) / 1e3
    return (_h(g, t + _K, p_e * 1e5) - h_s) / 1e3


def tip_state(
    gas: str,
    supply_bar: float | None = None,
    exhaust_bar: float = ATM_BAR,
    supply_temperature_c: float = 20.0,
    precooled: bool = True,
    supply_phase: str = "liquid",
) -> ProbeState:
    """Steady no-load tip temperature and cooling per unit mass flow of a J–T probe.

    Parameters
    ----------
    gas : str
        argon, nitrogen, nitrous-oxide, carbon-dioxide or helium (aliases Ar, N2, N2O, CO2, He).
    supply_bar : float, optional
        Absolute supply pressure in bar; default per gas (:data:`GASES`).
    exhaust_bar : float
        Absolute exhaust (return) pressure in bar, default 1 atm.
    supply_temperature_c : float
        Supply temperature in °C, default 20 °C.
    precooled : bool
        Ideal counter-flow recuperator (True) or single pass (False); see the module docstring.
    supply_phase : {"liquid", "vapour"}
        For a supply within 2 % of the saturation pressure (a cylinder in equilibrium): draw
        ``"liquid"`` (dip tube, the default) or ``"vapour"``.

    Returns
    -------
    ProbeState
        Tip temperature (°C), cooling per unit mass flow (W per g/s), exit phase and notes.

    Raises
    ------
    InputError
        Bad input.
    PhysicsError
        Where the model does not apply.
    """
    args = (gas, supply_bar, exhaust_bar, supply_temperature_c, precooled, supply_phase)
    try:
        hash(args)
    except TypeError:  # a list or an array: not cacheable; validated (and refused) uncached
        return _tip_state.__wrapped__(*args)
    return _tip_state(*args)


# Cached: the planner asks for the same steady state once per candidate (32 calls in the demo,
# ~0.1 s of CoolProp each); ProbeState is frozen, so sharing is safe. typed=True keeps True and 1
# apart, so a bool is still refused by the validation instead of answered from the cache.
@lru_cache(maxsize=256, typed=True)
def _tip_state(
    gas: str,
    supply_bar: float | None,
    exhaust_bar: float,
    supply_temperature_c: float,
    precooled: bool,
    supply_phase: str,
) -> ProbeState:
    g, p_s, p_e, t_s, h_s, supply_label = _resolve(
        gas, supply_bar, exhaust_bar, supply_temperature_c, supply_phase
    )
    pe_pa, notes = p_e * 1e5, []
    linde = _h(g, t_s + _K, pe_pa) - h_s
    sat = _saturation(g, pe_pa)
    lim = _limits(g.coolprop)
    if sat is None and pe_pa < lim["ptriple"]:
        notes.append(
            f"exhaust below the triple point ({lim['ptriple'] / 1e5:.3g} bar): a "
            "boiling tip would freeze; only a gas exit is modelled"
        )

    # single-pass (isenthalpic) exit state
    if sat is not None and sat[1] <= h_s <= sat[2]:
        t_tip, h_fg = sat[0], sat[2] - sat[1]
        quality, phase = (h_s - sat[1]) / h_fg, sat[3]
        q_tip = sat[2] - h_s
    else:
        if sat is not None and h_s < sat[1] and sat[3].startswith("solid"):
            raise PhysicsError(
                "carbon-dioxide: the exhaust would be all solid; raise the supply temperature"
            )
        t_tip, phase = _single_phase_exit(g, h_s, pe_pa)
        quality, q_tip = None, 0.0
    warms = t_tip > t_s + _K + 1e-9 or linde < 0

    if warms:
        mode_note = (
            "inverse Joule-Thomson: the gas warms on expansion; cooling_power is "
            "negative (heat delivered per unit mass flow to a surface at the "
            "supply temperature)"
        )
        notes.append(
            mode_note
            + (
                "; a recuperator only amplifies the heating, so the tip "
                "temperature is the single-pass one"
                if precooled
                else ""
            )
        )
        cooling = linde
    elif precooled:
        if sat is None:
            raise PhysicsError(
                f"{g.name}: no boiling tip at exhaust_bar = {p_e:g} bar (at or "
                "above the critical pressure or below the triple point); use "
                "--single-pass or a lower exhaust pressure"
            )
        t_tip, h_fg = sat[0], sat[2] - sat[1]
        if t_s + _K <= t_tip:
            raise InputError(
                f"supply_temperature_c: {t_s} C is not above the tip temperature "
                f"({t_tip - _K:.1f} C); use --single-pass"
            )
        # the exchanger cannot cool the supply below the tip (nor freeze CO2 in it)
        t_hx = max(t_tip, _melting_k(g, p_s * 1e5)) + 1e-3
        cap = sat[2] - _h(g, t_hx, p_s * 1e5) if t_hx < t_s + _K else linde
        cooling = min(linde, cap)
        if cap < linde:
            notes.append("cooling limited by the exchanger's cold-end pinch")
        quality, phase = max(0.0, 1.0 - cooling / h_fg), sat[3]
        notes.append(
            "ideal counter-flow recuperator: exhaust leaves at the supply temperature; "
            "quality is the vapour fraction after the orifice at full load"
        )
    else:
        cooling = q_tip
        if quality is None:
            notes.append(
                "gas exit: no capacity at the no-load tip temperature; the surface "
                "warms under load until h(p_e, T_surface) - h_s = load / mass flow"
            )
    if g.name == "carbon-dioxide" and phase.startswith("solid"):
        notes.append(
            "dry ice below the triple point: Span & Wagner 1996 eq. 3.12 sublimation "
            "line and 571 kJ/kg enthalpy of sublimation (handbook)"
        )
    return ProbeState(
        gas=g.name,
        mode="precooled" if precooled else "single-pass",
        supply_bar=p_s,
        exhaust_bar=p_e,
        supply_temperature_c=t_s,
        supply_phase=supply_label,
        tip_temperature_c=t_tip - _K,
        cooling_power_w_per_g_s=cooling / 1e3,
        linde_w_per_g_s=linde / 1e3,
        exhaust_phase=phase,
        warms=warms,
        quality=quality,
        notes=tuple(notes),
    )


# --- device energy balance: mass flow and cooling capacity ---------------------------------------

#: Effective J–T discharge area as a fraction of the probe's cross-section (π d²/4). The one
#: fitted parameter of the device model, shared by every catalogue entry: fitted by
#: ``cryoneuro validate --calibrate`` (``cryoneuro.validation.calibrate``) on the calibration
#: row of data/validation/measured_iceballs.csv (Littrup 2009, single 2.4 mm argon probe,
#: −30 °C diameter 12 mm at 15 min in 39 °C agar). See docs/validation.md.
DISCHARGE_FRACTION = 0.00214


@cache
def choked_mass_flux(
    gas: str,
    supply_bar: float | None = None,
    supply_temperature_c: float = 20.0,
    exhaust_bar: float = ATM_BAR,
) -> float:
    """Critical (choked) mass flux through an ideal nozzle, kg/m²/s.

    Isentropic expansion from the supply state ``(h0, s0)``; the throat state maximises
    ``G(p) = ρ(p, s0) √(2 (h0 − h(p, s0)))`` over throat pressures between the exhaust pressure
    (or just above the triple point) and the supply pressure — the homogeneous equilibrium
    model, which covers a flashing liquid supply (N2O, CO2 cartridges) as well as a gas
    (Moody 1965 / Henry & Fauske 1971 discuss its limits for short nozzles). Real-fluid
    properties from CoolProp, as for :func:`tip_state`.
    """
    from scipy.optimize import minimize_scalar

    g, p_s, p_e, t_s, h0, label = _resolve(
        gas, supply_bar, exhaust_bar, supply_temperature_c, "liquid"
    )
    fluid = g.coolprop
    if label.startswith("saturated"):  # a cylinder in equilibrium, drawn as liquid
        s0 = _cp("S", "T", t_s + _K, "Q", 0, fluid)
    else:
        s0 = _cp("S", "T", t_s + _K, "P", p_s * 1e5, fluid)

    def flux(p_pa: float) -> float:
        h = _props_si("H", "P", p_pa, "S", s0, fluid)
        rho = _props_si("D", "P", p_pa, "S", s0, fluid)
        return rho * math.sqrt(max(2.0 * (h0 - h), 0.0))

    lo = max(p_e * 1e5, 1.05 * _limits(fluid)["ptriple"])
    res = minimize_scalar(
        lambda p: -flux(p),
        bounds=(lo, 0.999 * p_s * 1e5),
        method="bounded",
        options={"xatol": 10.0},
    )
    return float(-res.fun)


# --- probe catalogue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeModel:
    """A class of cryoprobe (generic, not a vendor product); lengths in mm, pressures in bar.

    ``active_length_mm`` is the freezing length the thermal engine uses when a case names the
    model without its own ``active_length_mm``; where no source gives it, the value is a
    planning assumption and ``notes`` says so. ``status``: ``calibrated`` or
    ``scaled`` (data/devices.toml explains each).
    """

    name: str
    device_class: str
    gauge: str
    diameter_mm: float
    active_length_mm: float
    gas: str
    thaw_gas: str | None = None
    supply_bar: float | None = None
    h_gas_w_m2k: float = 5000.0
    status: str = "scaled"
    typical_iceball: str | None = None
    sources: str = ""
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mass_flow_g_s"] = mass_flow_g_s(self)
        d["cooling_capacity_w"] = cooling_capacity_w(self)
        return d


def _load_catalogue() -> dict[str, ProbeModel]:
    import tomllib
    from importlib.resources import files

    data = tomllib.loads(files("cryoneuro").joinpath("data/devices.toml").read_text("utf-8"))
    return {d["name"]: ProbeModel(**d) for d in data["device"]}


CATALOGUE: dict[str, ProbeModel] = _load_catalogue()


def get_probe_model(name: str) -> ProbeModel:
    """Return the catalogue entry ``name`` (case-insensitive)."""
    key = str(name).strip()
    for model_name, model in CATALOGUE.items():
        if key.lower() == model_name.lower():
            return model
    raise InputError(f"probe model: unknown model '{name}'; choose one of {', '.join(CATALOGUE)}")


def mass_flow_g_s(
    model: ProbeModel, supply_bar: float | None = None, discharge_fraction: float | None = None
) -> float:
    """Gas mass flow of a catalogue probe, g/s: ``κ (π d²/4) G*(gas, p_supply)``.

    ``κ`` is :data:`DISCHARGE_FRACTION` unless given; ``G*`` is :func:`choked_mass_flux`.
    """
    kappa = DISCHARGE_FRACTION if discharge_fraction is None else discharge_fraction
    area_m2 = math.pi * (model.diameter_mm * 1e-3) ** 2 / 4.0
    p = model.supply_bar if supply_bar is None else supply_bar
    return kappa * area_m2 * choked_mass_flux(model.gas, p) * 1e3


def cooling_capacity_w(
    model: ProbeModel, supply_bar: float | None = None, discharge_fraction: float | None = None
) -> float:
    """Most heat the probe's gas can absorb, W: mass flow × ``cooling_power_w_per_g_s`` of the
    precooled J–T model at the supply pressure."""
    p = model.supply_bar if supply_bar is None else supply_bar
    q = tip_state(model.gas, p).cooling_power_w_per_g_s
    return mass_flow_g_s(model, supply_bar, discharge_fraction) * q


def device_drive(
    model: ProbeModel | str,
    *,
    supply_bar: float | None = None,
    mass_flow: float | None = None,
    h_gas_w_m2k: float | None = None,
    active_length_mm: float | None = None,
    discharge_fraction: float | None = None,
    thaw_power_w: float | None = None,
    thaw_limit_c: float = 37.0,
    name: str = "probe",
):
    """The :class:`~cryoneuro.thermal.drive.DeviceDrive` of a catalogue probe.

    Gas temperature: the precooled no-load tip of :func:`tip_state` at the supply pressure;
    capacity: ``mass_flow`` (g/s; default :func:`mass_flow_g_s`) × the cooling per unit mass
    flow; gas-side conductance: ``h_gas × π d L`` over the active length.
    """
    from cryoneuro.thermal.drive import DeviceDrive

    m = get_probe_model(model) if isinstance(model, str) else model
    p = m.supply_bar if supply_bar is None else supply_bar
    state = tip_state(m.gas, p)
    if state.warms:
        raise InputError(f"{name}: {m.gas} warms on expansion and cannot drive a freeze")
    flow = mass_flow_g_s(m, p, discharge_fraction) if mass_flow is None else mass_flow
    h = m.h_gas_w_m2k if h_gas_w_m2k is None else h_gas_w_m2k
    length = m.active_length_mm if active_length_mm is None else active_length_mm
    area = math.pi * m.diameter_mm * 1e-3 * length * 1e-3
    return DeviceDrive(
        gas_temperature_c=state.tip_temperature_c,
        capacity_w=flow * state.cooling_power_w_per_g_s,
        gas_conductance_w_per_k=h * area,
        thaw_power_w=thaw_power_w,
        thaw_limit_c=thaw_limit_c,
        name=name,
    )


#: Where the device model has been checked against measured ice (docs/validation.md): the
#: held-out figures are 15-minute single freezes of 1.7 and 2.4 mm argon probes (1–4 probes at
#: 20 mm) in unperfused agar at 39 °C (Littrup 2009).
VALIDATED_FREEZE_S = (900.0, 900.0)
VALIDATED_STATUSES = ("calibrated",)


def validity_warnings(
    model: ProbeModel, *, freeze_s: list[float], perfused: bool, medium: str
) -> list[str]:
    """Plain-language notes where a use of the device model leaves its validated range."""
    out = []
    if model.status not in VALIDATED_STATUSES:
        out.append(
            f"device '{model.name}' is scaled from the 2.4 mm calibration, not validated "
            "against measured ice of its own class (docs/validation.md)"
        )
        if model.diameter_mm < 2.4:
            out.append(
                "held-out data show the scaling gives smaller probes too little cooling "
                "(1.7 mm: predicted lethal diameter 59 % of the 2.4 mm probe's, measured "
                "84 %): the real iceball is likely LARGER than shown — check skin and "
                'artery margins against a held-wall run (drive = "held")'
            )
    lo, hi = VALIDATED_FREEZE_S
    odd = [f for f in freeze_s if not lo <= f <= hi]
    if odd:
        out.append(
            f"freeze of {', '.join(f'{f:g}' for f in odd)} s: the device model is validated "
            f"at {lo / 60:g}-minute freezes only"
        )
    if perfused or medium not in ("gel", "gel_phantom"):
        out.append(
            f"medium '{medium}': the device model is validated in unperfused agar "
            "phantoms only; perfused tissue adds heat load it has not been checked against"
        )
    return out
