"""Runge–Kutta–Legendre (RKL2) super-time-stepping for the enthalpy bioheat equation.

Forward Euler on the frozen tissue's diffusivity limits the step to a few hundredths of a
second at 0.5 mm voxels, far below what accuracy needs. RKL2 (Meyer, Balsara & Aslam 2014,
J Comput Phys 257:594, eqs. 16–18) takes one step ``tau`` in ``s`` explicit stages and is
stable for ``tau <= dt_FE (s^2 + s - 2) / 4``: cost grows like ``sqrt(tau)`` instead of
``tau``, the scheme stays second order, conservative (every stage is a linear combination of
conservative updates) and explicit (no linear solves). Stability needs the operator's Jacobian
to have real, non-positive eigenvalues, which holds for the enthalpy form because dT/dH >= 0.

Stages, with ``Y0 = H^n`` and ``M0 = L(Y0)``::

    Y1 = Y0 + mu~_1 tau M0
    Yj = mu_j Y(j-1) + nu_j Y(j-2) + (1 - mu_j - nu_j) Y0 + mu~_j tau L(Y(j-1)) + gamma~_j tau M0

    b_0 = b_1 = b_2 = 1/3,  b_j = (j^2 + j - 2) / (2 j (j + 1)),  a_j = 1 - b_j
    w_1 = 4 / (s^2 + s - 2),  mu~_1 = b_1 w_1
    mu_j = (2j - 1)/j * b_j / b_(j-1),  nu_j = -(j - 1)/j * b_j / b_(j-2)
    mu~_j = mu_j w_1,  gamma~_j = -a_(j-1) mu~_j
"""

from __future__ import annotations

import math

import numpy as np

#: Step-size ramp at the start of every phase: a change of boundary condition (probe switched on,
#: off or to thaw) excites fast modes that RKL2 damps poorly, so the first step is a few explicit
#: limits long and steps then grow geometrically.
RAMP_FIRST_STEPS = 4.0  # first step, in forward-Euler limits
RAMP_GROWTH = 1.25


def step_schedule(duration_s: float, max_step_s: float, dt_euler: float) -> list[float]:
    """Step lengths covering one phase: a geometric ramp up to ``max_step_s``, ending exactly
    at ``duration_s`` (the last step is stretched rather than left tiny)."""
    steps: list[float] = []
    t, tau = 0.0, min(RAMP_FIRST_STEPS * dt_euler, max_step_s)
    while duration_s - t > 1e-12:
        step = min(tau, max_step_s, duration_s - t)
        if duration_s - t - step < 0.25 * step:
            step = duration_s - t
        steps.append(step)
        t += step
        tau *= RAMP_GROWTH
    return steps


class StepControl:
    """Step lengths for one phase, chosen as the phase goes.

    Steps start at ``RAMP_FIRST_STEPS`` explicit limits and grow by at most ``growth`` per
    step up to ``max_step_s``. With ``front_target`` set, each step is also sized from the
    one before by the latent-heat front: ``observe(d)`` takes the largest change of liquid
    fraction any cell had in that step, and the next step is scaled by ``front_target / d``
    (the change is roughly proportional to the step while the front moves steadily), so no
    cell crosses more than about ``front_target`` of its mushy range in one step. A narrow
    mushy range (a water-like gel) therefore gets short steps and a broad one (tissue) long
    ones. The last step is stretched rather than left tiny.
    """

    def __init__(
        self,
        duration_s: float,
        max_step_s: float,
        dt_euler: float,
        *,
        front_target: float | None = None,
        growth: float = RAMP_GROWTH,
    ) -> None:
        self.remaining = duration_s
        self.max_step_s = max_step_s
        self.front_target = front_target
        self.growth = growth
        self.tau = min(RAMP_FIRST_STEPS * dt_euler, max_step_s)
        self.min_step_s = min(RAMP_FIRST_STEPS * dt_euler, max_step_s)
        self._last = 0.0

    @classmethod
    def uniform(cls, duration_s: float, n_steps: int) -> StepControl:
        """``n_steps`` equal steps (forward Euler)."""
        step = duration_s / n_steps
        control = cls(duration_s, step, step)
        control.tau = control.min_step_s = step
        return control

    @property
    def done(self) -> bool:
        return self.remaining <= 1e-12

    def next(self) -> float:
        step = min(self.tau, self.max_step_s, self.remaining)
        if self.remaining - step < 0.25 * step:
            step = self.remaining
        self._last = step
        return step

    def observe(self, liquid_change: float | None = None) -> None:
        """Account for the step just taken and size the next one."""
        self.remaining -= self._last
        grow = self.growth
        if self.front_target is not None and liquid_change is not None and liquid_change > 0:
            grow = min(grow, self.front_target / liquid_change)
        self.tau = min(max(self.tau * grow, self.min_step_s), self.max_step_s)


def stages_for(tau: float, dt_euler: float) -> int:
    """Fewest stages that keep a step of ``tau`` stable (at least 2)."""
    ratio = tau / dt_euler
    # s^2 + s - 2 >= 4 ratio
    s = math.ceil((-1.0 + math.sqrt(9.0 + 16.0 * ratio)) / 2.0)
    return max(2, s)


def coefficients(s: int) -> list[tuple[float, float, float, float]]:
    """``(mu_j, nu_j, mu~_j, gamma~_j)`` for j = 1..s (mu, nu, gamma~ unused for j = 1)."""
    b = [1.0 / 3.0] * 3 + [(j * j + j - 2.0) / (2.0 * j * (j + 1.0)) for j in range(3, s + 1)]
    w1 = 4.0 / (s * s + s - 2.0)
    out = [(1.0, 0.0, b[1] * w1, 0.0)]
    for j in range(2, s + 1):
        mu = (2.0 * j - 1.0) / j * b[j] / b[j - 1]
        nu = -(j - 1.0) / j * b[j] / b[j - 2]
        mut = mu * w1
        out.append((mu, nu, mut, -(1.0 - b[j - 1]) * mut))
    return out


def stability_factor(s: int) -> float:
    """``tau_max / dt_FE`` for ``s`` stages."""
    return (s * s + s - 2.0) / 4.0


def check_consistency(s: int) -> float:
    """For ``dY/dt = -Y`` one step of RKL2 must match ``exp(-tau)`` to second order; returns
    the amplification factor at ``tau = 1e-3`` (used by the tests)."""
    tau = 1e-3
    c = coefficients(s)
    y0 = 1.0
    m0 = -y0
    y_prev2, y_prev1 = y0, y0 + c[0][2] * tau * m0
    for j in range(2, s + 1):
        mu, nu, mut, gmt = c[j - 1]
        y = (
            mu * y_prev1
            + nu * y_prev2
            + (1 - mu - nu) * y0
            + mut * tau * (-y_prev1)
            + gmt * tau * m0
        )
        y_prev2, y_prev1 = y_prev1, y
    return float(np.float64(y_prev1))
