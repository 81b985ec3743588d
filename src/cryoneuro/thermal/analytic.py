"""Closed-form freezing solutions used to validate the numerical thermal solvers.

Two similarity solutions of the two-phase Stefan problem with a sharp melting point ``T_m``
(constant properties in each phase, no perfusion, no metabolism):

1. **Planar Neumann problem** (Carslaw & Jaeger 1959, *Conduction of Heat in Solids*, 2nd ed.,
   §11.2; Crank 1984, *Free and Moving Boundary Problems*, §3.2.2). A liquid half-space
   ``x > 0`` initially at ``T_inf``; from ``t = 0`` the wall ``x = 0`` is held at ``T_w < T_m``.
   The front is at ``X(t) = 2 λ sqrt(α_s t)`` with ``α_s = k_s / C_s`` and

   * solid  (0 < x < X): ``T = T_w + (T_m - T_w) erf(x / 2√(α_s t)) / erf(λ)``
   * liquid (x > X):     ``T = T_inf - (T_inf - T_m) erfc(x / 2√(α_l t)) / erfc(λ √ν)``,
     ``ν = α_s / α_l``;
   * Stefan condition ``k_s ∂T_s/∂x - k_l ∂T_l/∂x = L dX/dt`` at ``x = X`` gives

       k_s (T_m - T_w) e^{-λ²} / (erf λ · √(π α_s))
         - k_l (T_inf - T_m) e^{-ν λ²} / (erfc(λ√ν) · √(π α_l))  =  L λ √α_s.

2. **Line heat sink** (Carslaw & Jaeger 1959, §11.6, written here for freezing; see also
   Özişik 1993, *Heat Conduction*, 2nd ed., the chapter on phase change). A sink of strength ``Q``
   (W per metre of line, heat
   *removed*) at ``r = 0`` in an infinite liquid initially at ``T_inf``. The front is at
   ``R(t) = 2 λ sqrt(α_l t)`` and

   * frozen (r < R): ``T = T_m + Q/(4π k_s) [Ei(-r²/4α_s t) - Ei(-λ² α_l/α_s)]``
   * liquid (r > R): ``T = T_inf - (T_inf - T_m) Ei(-r²/4α_l t) / Ei(-λ²)``
   * Stefan condition ``k_s ∂T_s/∂r - k_l ∂T_l/∂r = L dR/dt`` at ``r = R`` gives (re-derived
     here, the form of docs/domain-facts.md)

       Q̄ e^{-λ² α_l/α_s} + St e^{-λ²} / Ei(-λ²) = λ²,
       Q̄ = Q / (4π L α_l),  St = C_l (T_inf - T_m) / L.

All heat capacities ``C`` and the latent heat ``L`` are *volumetric* (J/m³/K, J/m³), as in
:class:`cryoneuro.tissue.ThermalProperties`: ``k_s, C_s = k_frozen, c_frozen`` and
``k_l, C_l = k_unfrozen, c_unfrozen``. The sharp melting point ``T_m`` defaults to the middle
of the mushy range, ``(t_solidus + t_liquidus)/2``.

Reference values (docs/domain-facts.md) are reproduced with :func:`water_ice` (ρ = 1000 kg/m³;
ice k 2.22 W/m/K, c 2050 J/kg/K; water k 0.60, c 4180; L = 334 kJ/kg): see docs/validation.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq
from scipy.special import erf, erfc, erfcx, expi

from cryoneuro.errors import InputError
from cryoneuro.tissue import ThermalProperties

__all__ = [
    "line_sink_front_radius",
    "line_sink_isotherm_radius",
    "line_sink_lambda",
    "line_sink_temperature",
    "neumann_front_position",
    "neumann_lambda",
    "neumann_temperature",
    "water_ice",
]


def water_ice(*, mushy_half_width_c: float = 0.05) -> ThermalProperties:
    """Water/ice, volumetric, ρ = 1000 kg/m³ (CRC Handbook values; tissue.py constants).

    k_s 2.22 W/m/K, C_s 1000·2050 J/m³/K, k_l 0.60, C_l 1000·4180, L 1000·334e3 J/m³. Melting
    at 0 °C; the numerical solvers need a mushy range, here ``±mushy_half_width_c`` around 0 °C,
    whose middle (0 °C) the analytic functions take as the sharp melting point.
    """
    return ThermalProperties(
        name="water/ice",
        k_unfrozen=0.60,
        k_frozen=2.22,
        c_unfrozen=1000 * 4180.0,
        c_frozen=1000 * 2050.0,
        latent=1000 * 334e3,
        t_liquidus=mushy_half_width_c,
        t_solidus=-mushy_half_width_c,
        source="CRC Handbook (water, ice at 0 C), rho 1000",
    )


def _melt(props: ThermalProperties, melt_temperature_c: float | None) -> float:
    if melt_temperature_c is None:
        return 0.5 * (props.t_liquidus + props.t_solidus)
    return float(melt_temperature_c)


def _root(f: Callable[[float], float], what: str) -> float:
    lo, hi = 1e-8, 1.0
    while f(hi) > 0:
        hi *= 2.0
        if hi > 64:
            raise InputError(f"{what}: no root of the transcendental equation; check the inputs")
    return float(brentq(f, lo, hi, xtol=1e-14, rtol=1e-13, maxiter=200))


# --------------------------------------------------------------------------- Neumann (planar)
def neumann_lambda(
    props: ThermalProperties,
    *,
    wall_temperature_c: float,
    initial_temperature_c: float,
    melt_temperature_c: float | None = None,
) -> float:
    """Root λ of the two-phase Neumann equation (front ``X = 2λ√(α_s t)``), C&J §11.2.

    Solves ``k_s ΔT_s e^{-λ²}/(erf λ √(π α_s)) - k_l ΔT_l e^{-νλ²}/(erfc(λ√ν) √(π α_l))
    = L λ √α_s`` with ``ΔT_s = T_m - T_w``, ``ΔT_l = T_inf - T_m``, ``ν = α_s/α_l``
    (``e^{-x²}/erfc x`` is evaluated as ``1/erfcx x`` for stability).
    """
    t_m = _melt(props, melt_temperature_c)
    if not wall_temperature_c < t_m <= initial_temperature_c:
        raise InputError(
            f"Neumann problem needs wall < melt <= initial temperature (got "
            f"{wall_temperature_c}, {t_m}, {initial_temperature_c} C)"
        )
    a_s, a_l = props.alpha_frozen, props.alpha_unfrozen
    nu = a_s / a_l
    d_s, d_l = t_m - wall_temperature_c, initial_temperature_c - t_m

    def f(lam: float) -> float:
        solid = (
            props.k_frozen * d_s * math.exp(-lam * lam) / (math.erf(lam) * math.sqrt(math.pi * a_s))
        )
        liquid = (
            props.k_unfrozen * d_l / (float(erfcx(lam * math.sqrt(nu))) * math.sqrt(math.pi * a_l))
        )
        return solid - liquid - props.latent * lam * math.sqrt(a_s)

    return _root(f, "neumann_lambda")


def neumann_front_position(
    time_s: ArrayLike,
    props: ThermalProperties,
    *,
    wall_temperature_c: float,
    initial_temperature_c: float,
    melt_temperature_c: float | None = None,
) -> NDArray[np.float64] | float:
    """Front position ``X(t) = 2 λ √(α_s t)`` in metres (C&J §11.2)."""
    t = np.asarray(time_s, dtype=float)
    if np.any(t < 0):
        raise InputError("time_s must be >= 0")
    lam = neumann_lambda(
        props,
        wall_temperature_c=wall_temperature_c,
        initial_temperature_c=initial_temperature_c,
        melt_temperature_c=melt_temperature_c,
    )
    x = 2.0 * lam * np.sqrt(props.alpha_frozen * t)
    return float(x) if x.ndim == 0 else x


def neumann_temperature(
    x_m: ArrayLike,
    time_s: float,
    props: ThermalProperties,
    *,
    wall_temperature_c: float,
    initial_temperature_c: float,
    melt_temperature_c: float | None = None,
) -> NDArray[np.float64]:
    """Temperature (°C) of the Neumann solution at depth ``x_m`` (m) and time ``time_s`` (s).

    ``T = T_w + (T_m - T_w) erf(η_s)/erf(λ)`` for ``x < X``, ``T = T_inf - (T_inf - T_m)
    erfc(η_l)/erfc(λ√ν)`` for ``x >= X``, ``η = x/(2√(α t))`` (C&J §11.2).
    """
    if time_s <= 0:
        raise InputError("time_s must be > 0 for a temperature profile")
    x = np.asarray(x_m, dtype=float)
    if np.any(x < 0):
        raise InputError("x_m must be >= 0 (the medium is x > 0)")
    t_m = _melt(props, melt_temperature_c)
    lam = neumann_lambda(
        props,
        wall_temperature_c=wall_temperature_c,
        initial_temperature_c=initial_temperature_c,
        melt_temperature_c=melt_temperature_c,
    )
    a_s, a_l = props.alpha_frozen, props.alpha_unfrozen
    front = 2.0 * lam * math.sqrt(a_s * time_s)
    solid = wall_temperature_c + (t_m - wall_temperature_c) * erf(
        x / (2.0 * np.sqrt(a_s * time_s))
    ) / math.erf(lam)
    liquid = initial_temperature_c - (initial_temperature_c - t_m) * erfc(
        x / (2.0 * np.sqrt(a_l * time_s))
    ) / math.erfc(lam * math.sqrt(a_s / a_l))
    return np.where(x < front, solid, liquid)


# --------------------------------------------------------------------------- line heat sink
def line_sink_lambda(
    props: ThermalProperties,
    *,
    sink_w_per_m: float,
    initial_temperature_c: float,
    melt_temperature_c: float | None = None,
) -> float:
    """Root λ of the line-sink freezing equation (front ``R = 2λ√(α_l t)``), C&J §11.6.

    Solves ``Q/(4π α_l) e^{-λ² α_l/α_s} + C_l (T_inf - T_m) e^{-λ²}/Ei(-λ²) = L λ²``, i.e.
    docs/domain-facts.md's ``Q̄ e^{-λ²α_l/α_s} + St e^{-λ²}/Ei(-λ²) = λ²`` multiplied by ``L`` (so
    that ``L = 0``, pure conduction, is allowed).
    """
    t_m = _melt(props, melt_temperature_c)
    if sink_w_per_m <= 0:
        raise InputError(f"sink_w_per_m must be > 0 (heat removed per metre; got {sink_w_per_m})")
    if initial_temperature_c < t_m:
        raise InputError("initial_temperature_c must be >= the melting temperature")
    a_s, a_l = props.alpha_frozen, props.alpha_unfrozen
    d_l = initial_temperature_c - t_m

    def f(lam: float) -> float:
        l2 = lam * lam
        return (
            sink_w_per_m / (4.0 * math.pi * a_l) * math.exp(-l2 * a_l / a_s)
            + props.c_unfrozen * d_l * math.exp(-l2) / float(expi(-l2))
            - props.latent * l2
        )

    return _root(f, "line_sink_lambda")


def line_sink_front_radius(
    time_s: ArrayLike,
    props: ThermalProperties,
    *,
    sink_w_per_m: float,
    initial_temperature_c: float,
    melt_temperature_c: float | None = None,
) -> NDArray[np.float64] | float:
    """Freezing-front radius ``R(t) = 2 λ √(α_l t)`` in metres (C&J §11.6)."""
    t = np.asarray(time_s, dtype=float)
    if np.any(t < 0):
        raise InputError("time_s must be >= 0")
    lam = line_sink_lambda(
        props,
        sink_w_per_m=sink_w_per_m,
        initial_temperature_c=initial_temperature_c,
        melt_temperature_c=melt_temperature_c,
    )
    r = 2.0 * lam * np.sqrt(props.alpha_unfrozen * t)
    return float(r) if r.ndim == 0 else r


def line_sink_temperature(
    r_m: ArrayLike,
    time_s: float,
    props: ThermalProperties,
    *,
    sink_w_per_m: float,
    initial_temperature_c: float,
    melt_temperature_c: float | None = None,
) -> NDArray[np.float64]:
    """Temperature (°C) at radius ``r_m`` (m > 0) and ``time_s`` of the line-sink solution.

    ``T = T_m + Q/(4πk_s)[Ei(-r²/4α_s t) - Ei(-λ²α_l/α_s)]`` for ``r < R``;
    ``T = T_inf - (T_inf - T_m) Ei(-r²/4α_l t)/Ei(-λ²)`` for ``r >= R`` (C&J §11.6).
    """
    if time_s <= 0:
        raise InputError("time_s must be > 0 for a temperature profile")
    r = np.asarray(r_m, dtype=float)
    if np.any(r <= 0):
        raise InputError("r_m must be > 0 (the sink at r = 0 is singular)")
    t_m = _melt(props, melt_temperature_c)
    lam = line_sink_lambda(
        props,
        sink_w_per_m=sink_w_per_m,
        initial_temperature_c=initial_temperature_c,
        melt_temperature_c=melt_temperature_c,
    )
    a_s, a_l = props.alpha_frozen, props.alpha_unfrozen
    front = 2.0 * lam * math.sqrt(a_l * time_s)
    frozen = t_m + sink_w_per_m / (4.0 * math.pi * props.k_frozen) * (
        expi(-r * r / (4.0 * a_s * time_s)) - expi(-lam * lam * a_l / a_s)
    )
    liquid = initial_temperature_c - (initial_temperature_c - t_m) * expi(
        -r * r / (4.0 * a_l * time_s)
    ) / expi(-lam * lam)
    return np.where(r < front, frozen, liquid)


def line_sink_isotherm_radius(
    temperature_c: float,
    time_s: float,
    props: ThermalProperties,
    *,
    sink_w_per_m: float,
    initial_temperature_c: float,
    melt_temperature_c: float | None = None,
) -> float:
    """Radius (m) at which the line-sink solution equals ``temperature_c`` at ``time_s``.

    Below the melting point the frozen-zone formula is inverted by bracketed root finding
    (T increases monotonically with r); the liquid zone likewise (``temperature_c < T_inf``).
    """
    t_m = _melt(props, melt_temperature_c)
    if not temperature_c < initial_temperature_c:
        raise InputError("temperature_c must be below initial_temperature_c")
    kw = {
        "sink_w_per_m": sink_w_per_m,
        "initial_temperature_c": initial_temperature_c,
        "melt_temperature_c": t_m,
    }
    front = float(line_sink_front_radius(time_s, props, **kw))
    if temperature_c == t_m:
        return front

    def g(r: float) -> float:
        return float(line_sink_temperature(r, time_s, props, **kw)) - temperature_c

    if temperature_c < t_m:
        return float(brentq(g, front * 1e-12, front, xtol=1e-15, rtol=1e-13))
    hi = 2.0 * front
    while g(hi) < 0:
        hi *= 2.0
    return float(brentq(g, front, hi, xtol=1e-15, rtol=1e-13))
