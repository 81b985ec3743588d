"""Closed-form freezing solutions (cryoneuro.thermal.analytic) against published figures.

Reference values: docs/domain-facts.md "Analytic solutions to validate against" (water/ice,
ρ = 1000 kg/m³, CRC Handbook properties: :func:`water_ice`), and the classical one-phase
Stefan root for St = 1, λ = 0.6201 (tabulated e.g. in Alexiades & Solomon 1993).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import erf, expi

from cryoneuro.errors import InputError
from cryoneuro.thermal.analytic import (
    line_sink_front_radius,
    line_sink_isotherm_radius,
    line_sink_lambda,
    line_sink_temperature,
    neumann_front_position,
    neumann_lambda,
    neumann_temperature,
    water_ice,
)

ICE = water_ice()
NEU = {"wall_temperature_c": -150.0, "initial_temperature_c": 37.0, "melt_temperature_c": 0.0}
SINK = {"sink_w_per_m": 400.0, "initial_temperature_c": 37.0, "melt_temperature_c": 0.0}


def test_line_sink_reproduces_design_figures() -> None:
    # docs/domain-facts.md: λ = 0.526; 0/−20/−40 °C radii at 600 s 9.76/4.79/2.38 mm. Tolerances:
    # λ ± 1e-3, radii ± 0.02 mm (the design figures are given to 0.01 mm).
    assert line_sink_lambda(ICE, **SINK) == pytest.approx(0.526, abs=1e-3)
    radii_mm = [line_sink_isotherm_radius(t, 600.0, ICE, **SINK) * 1e3 for t in (0, -20, -40)]
    assert radii_mm == pytest.approx([9.76, 4.79, 2.38], abs=0.02)
    assert line_sink_front_radius(600.0, ICE, **SINK) * 1e3 == pytest.approx(9.76, abs=0.02)


def test_neumann_front_matches_design_and_lambda_is_consistent() -> None:
    # docs/domain-facts.md: front 25.5 mm after 600 s (± 0.02 mm): reproduced. Its λ = 0.504 is not
    # consistent with that front for water/ice (2λ√(α_s t) with λ = 0.504 gives 25.70 mm); the
    # root of the Neumann equation is λ = 0.5001 (± 1e-3), which gives 25.50 mm.
    x_mm = neumann_front_position(600.0, ICE, **NEU) * 1e3
    assert x_mm == pytest.approx(25.5, abs=0.02)
    assert neumann_lambda(ICE, **NEU) == pytest.approx(0.5001, abs=1e-3)


def test_one_phase_limit_matches_classical_table() -> None:
    # Liquid at the melting point: λ e^{λ²} erf λ = St/√π; St = 1 → λ = 0.6201
    # (classical one-phase value, e.g. Alexiades & Solomon 1993), tolerance 1e-4.
    st = 1.0
    props = ICE.with_overrides(latent=ICE.c_frozen * 10.0 / st)
    lam = neumann_lambda(
        props, wall_temperature_c=-10.0, initial_temperature_c=0.0, melt_temperature_c=0.0
    )
    assert lam == pytest.approx(0.6201, abs=1e-4)
    assert lam * math.exp(lam**2) * math.erf(lam) == pytest.approx(
        st / math.sqrt(math.pi), rel=1e-9
    )


def test_neumann_stefan_condition_at_front() -> None:
    # k_s ∂T_s/∂x − k_l ∂T_l/∂x = L dX/dt, one-sided finite differences, rel. tol 1e-4.
    t, eps = 600.0, 1e-7
    x = neumann_front_position(t, ICE, **NEU)
    ts = neumann_temperature(np.array([x - 2 * eps, x - eps]), t, ICE, **NEU)
    tl = neumann_temperature(np.array([x + eps, x + 2 * eps]), t, ICE, **NEU)
    assert ts[1] == pytest.approx(0.0, abs=1e-3)
    assert tl[0] == pytest.approx(0.0, abs=1e-3)
    grad_s, grad_l = (ts[1] - ts[0]) / eps, (tl[1] - tl[0]) / eps
    dxdt = x / (2 * t)
    lhs = ICE.k_frozen * grad_s - ICE.k_unfrozen * grad_l
    assert lhs == pytest.approx(ICE.latent * dxdt, rel=1e-4)


def test_line_sink_stefan_condition_at_front() -> None:
    t, eps = 600.0, 1e-7
    r = line_sink_front_radius(t, ICE, **SINK)
    ts = line_sink_temperature(np.array([r - 2 * eps, r - eps]), t, ICE, **SINK)
    tl = line_sink_temperature(np.array([r + eps, r + 2 * eps]), t, ICE, **SINK)
    assert ts[1] == pytest.approx(0.0, abs=1e-3)
    assert tl[0] == pytest.approx(0.0, abs=1e-3)
    lhs = ICE.k_frozen * (ts[1] - ts[0]) / eps - ICE.k_unfrozen * (tl[1] - tl[0]) / eps
    assert lhs == pytest.approx(ICE.latent * r / (2 * t), rel=1e-4)


def test_line_sink_heat_balance() -> None:
    # Heat removed Q t equals the enthalpy deficit ∫ 2πr [H(T_inf) − H(T)] dr to < 0.5 %.
    t, q = 600.0, SINK["sink_w_per_m"]
    front = line_sink_front_radius(t, ICE, **SINK)
    t_inf = SINK["initial_temperature_c"]

    def deficit(r: float) -> float:
        temp = float(line_sink_temperature(r, t, ICE, **SINK))
        if r < front:
            return ICE.latent + ICE.c_unfrozen * t_inf + ICE.c_frozen * (0.0 - temp)
        return ICE.c_unfrozen * (t_inf - temp)

    far = 30.0 * math.sqrt(ICE.alpha_unfrozen * t)
    inner = quad(lambda r: 2 * math.pi * r * deficit(r), 1e-12, front, limit=200)[0]
    outer = quad(lambda r: 2 * math.pi * r * deficit(r), front, far, limit=200)[0]
    assert inner + outer == pytest.approx(q * t, rel=5e-3)


def test_zero_latent_heat_reduces_to_conduction() -> None:
    # L → 0 with equal phase properties: Neumann → erf profile; line sink → the classical
    # line-source solution T = T_inf + Q/(4πk) Ei(−r²/4αt) (C&J §10.4). rel. tol 1e-9.
    same = ICE.with_overrides(latent=0.0, k_frozen=ICE.k_unfrozen, c_frozen=ICE.c_unfrozen)
    t, alpha = 300.0, same.alpha_unfrozen
    x = np.linspace(1e-4, 0.02, 25)
    expected = -150.0 + 187.0 * erf(x / (2 * math.sqrt(alpha * t)))
    assert neumann_temperature(x, t, same, **NEU) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    r = np.linspace(1e-4, 0.02, 25)
    expected = 37.0 + 400.0 / (4 * math.pi * same.k_unfrozen) * expi(-(r**2) / (4 * alpha * t))
    assert line_sink_temperature(r, t, same, **SINK) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_bad_input_raises() -> None:
    with pytest.raises(InputError):
        neumann_lambda(ICE, wall_temperature_c=10.0, initial_temperature_c=37.0)
    with pytest.raises(InputError):
        line_sink_lambda(ICE, sink_w_per_m=-1.0, initial_temperature_c=37.0)
    with pytest.raises(InputError):
        line_sink_front_radius(-1.0, ICE, **SINK)
    with pytest.raises(InputError):
        line_sink_temperature(0.0, 10.0, ICE, **SINK)
