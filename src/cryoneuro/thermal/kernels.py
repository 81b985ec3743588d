"""Numba kernels of the explicit enthalpy bioheat scheme.

The PDE (Pennes 1948 with phase change by the enthalpy method; docs/domain-facts.md)::

    dH/dt = div(k(T) grad T) + f_l(T) * [w_b (T_a - T) + q_m] + s

(baseline steady at body temperature: see ``material_table``)

with the piecewise-linear enthalpy ``H(T)`` of each material (zero at the solidus)::

    T <= T_s:        H = C_f (T - T_s)
    T_s < T < T_l:   H = H_l (T - T_s) / (T_l - T_s),   H_l = L + (C_f + C_u)/2 (T_l - T_s)
    T >= T_l:        H = H_l + C_u (T - T_l)

liquid fraction ``f_l = clip((T - T_s)/(T_l - T_s), 0, 1)`` and conductivity
``k = k_f + (k_u - k_f) f_l``. Faces use the harmonic mean of the two cells' conductivities
(Patankar 1980, §4.2-3), which is exact for a material interface midway between centres.

Explicit (forward Euler) stepping on the conserved enthalpy is conservative by construction and
stable for ``dt <= min(C) dx^2 / (k_max * S + w_b dx^2)`` with ``S`` the largest per-cell sum of
face multipliers (6 in the bulk); ``solver.stable_time_step`` computes it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# Column layout of the material table ``mat[m, :]`` (reciprocals precomputed: the stencil is
# arithmetic-bound, and a multiply is several times cheaper than a divide).
TS, TL, CF, CU, HL, KF, KU, PERF, MET, INV_CF, INV_CU, SLOPE_M, INV_DT, SINK = range(14)
N_COLUMNS = 14
#: Conductivity given to Dirichlet ghost cells: the harmonic face mean then equals ``2 k_i``,
#: i.e. a wall half a voxel from the cell centre.
K_WALL = 1.0e12


def material_table(materials, body_temperature_c: float = 37.0) -> np.ndarray:
    """Pack :class:`~cryoneuro.tissue.ThermalProperties` into the kernels' float64 table.

    Baseline: the tissue rests at ``body_temperature_c`` in steady state, so the Pennes source
    ``w_b (T_a - T) + q_m`` is written ``w_b (T_body - T) + q_m'`` with ``SINK`` holding the
    constant part: for perfused tissue the arterial temperature is the one that makes the
    baseline steady (``T_a = T_body - q_m / w_b``, i.e. ``q_m' = 0``); unperfused material keeps
    its metabolic heat.

    The last row is the non-conducting *probe material* used for probe and shaft voxels: zero
    conductivity, perfusion and metabolism, so the stencil leaves them untouched.
    """
    rows = [
        (
            p.t_solidus,
            p.t_liquidus,
            p.c_frozen,
            p.c_unfrozen,
            p.latent,
            p.k_frozen,
            p.k_unfrozen,
            p.perfusion,
            p.metabolism,
        )
        for p in materials
    ]
    rows.append((-1000.0, -999.0, 1.0e6, 1.0e6, 0.0, 0.0, 0.0, 0.0, 0.0))
    mat = np.zeros((len(rows), N_COLUMNS))
    for m, (ts, tl, cf, cu, latent, kf, ku, perf, met) in enumerate(rows):
        hl = latent + 0.5 * (cf + cu) * (tl - ts)
        mat[m, :9] = ts, tl, cf, cu, hl, kf, ku, perf, met
        mat[m, INV_CF], mat[m, INV_CU] = 1.0 / cf, 1.0 / cu
        mat[m, SLOPE_M], mat[m, INV_DT] = (tl - ts) / hl, 1.0 / (tl - ts)
        mat[m, SINK] = perf * body_temperature_c if perf > 0 else met
    return mat


@njit(inline="always", cache=True)
def temperature_of(h, mat, m):
    """T(H), branch-free: the three linear pieces joined with min/max."""
    hl = mat[m, HL]
    return (
        mat[m, TS]
        + min(h, 0.0) * mat[m, INV_CF]
        + min(max(h, 0.0), hl) * mat[m, SLOPE_M]
        + max(h - hl, 0.0) * mat[m, INV_CU]
    )


@njit(inline="always", cache=True)
def enthalpy_of(t, mat, m):
    ts = mat[m, TS]
    tl = mat[m, TL]
    if t <= ts:
        return mat[m, CF] * (t - ts)
    if t < tl:
        return mat[m, HL] * (t - ts) * mat[m, INV_DT]
    return mat[m, HL] + mat[m, CU] * (t - tl)


@njit(inline="always", cache=True)
def liquid_fraction(t, mat, m):
    return min(max((t - mat[m, TS]) * mat[m, INV_DT], 0.0), 1.0)


@njit(inline="always", cache=True)
def conductivity(t, mat, m):
    return mat[m, KF] + (mat[m, KU] - mat[m, KF]) * liquid_fraction(t, mat, m)


@njit(inline="always", cache=True)
def _harmonic(a, b):
    return 2.0 * a * b / (a + b + 1e-300)


@njit(parallel=True, cache=True)
def enthalpy_from_temperature(temp, lab, mat, out):
    nx, ny, nz = temp.shape
    for i in prange(nx):
        for j in range(ny):
            for k in range(nz):
                out[i, j, k] = enthalpy_of(temp[i, j, k], mat, lab[i, j, k])


@njit(parallel=True, cache=True)
def conductivity_field(temp, lab, mat, out):
    nx, ny, nz = temp.shape
    for i in prange(nx):
        for j in range(ny):
            for k in range(nz):
                out[i, j, k] = conductivity(temp[i, j, k], mat, lab[i, j, k])


@njit(parallel=True, cache=True)
def stage(
    h_out,
    h1,
    h2,
    h0,
    m0,
    t_old,
    k_old,
    t_new,
    k_new,
    lab,
    mat,
    c1,
    c2,
    c0,
    cl,
    cm,
    inv_dx2,
    source,
    use_source,
    extra,
    store_rate,
    n_chunks,
):
    """One explicit stage on padded arrays (one ghost layer on every side)::

        h_out = c1 h1 + cl L(T, k)                                   (extra = False)
        h_out = c1 h1 + c2 h2 + c0 h0 + cl L(T, k) + cm m0           (extra = True)

    with ``L`` the conduction + Pennes + source rate evaluated from ``t_old``/``k_old`` (the
    temperatures and conductivities of ``h1``). Forward Euler is ``c1 = 1, cl = dt``; the
    Runge–Kutta–Legendre stages of ``rkl.py`` use the rest. ``store_rate`` also writes ``L``
    to ``m0``. ``h_out`` may alias ``h1`` or ``h2`` (each cell reads only its own entries).

    Ghost cells carry the outer boundary: a Dirichlet face has the wall temperature and
    conductivity ``K_WALL``; an adiabatic face conductivity 0. Probe and shaft voxels have the
    probe material (conductivity 0), so no flux crosses their faces here and they keep their
    enthalpy; ``probe_rates`` gives the probe's own flux.

    Each face flux is computed once and handed to the cell on its other side (a register for
    z, a row buffer for y, a plane buffer for x): half the divisions of a naive stencil, and
    exactly conservative. The x range is split into ``n_chunks`` slabs run in parallel.
    """
    nx, ny, nz = h_out.shape
    ni = nx - 2
    for c in prange(n_chunks):
        i0 = 1 + (ni * c) // n_chunks
        i1 = 1 + (ni * (c + 1)) // n_chunks
        fx = np.empty((ny, nz))
        fy = np.empty(nz)
        for j in range(1, ny - 1):
            for k in range(1, nz - 1):
                fx[j, k] = _harmonic(k_old[i0, j, k], k_old[i0 - 1, j, k]) * (
                    t_old[i0 - 1, j, k] - t_old[i0, j, k]
                )
        for i in range(i0, i1):
            for k in range(1, nz - 1):
                fy[k] = _harmonic(k_old[i, 1, k], k_old[i, 0, k]) * (
                    t_old[i, 0, k] - t_old[i, 1, k]
                )
            for j in range(1, ny - 1):
                fz = _harmonic(k_old[i, j, 1], k_old[i, j, 0]) * (t_old[i, j, 0] - t_old[i, j, 1])
                for k in range(1, nz - 1):
                    m = lab[i, j, k]
                    ti = t_old[i, j, k]
                    ki = k_old[i, j, k]
                    gx = _harmonic(ki, k_old[i + 1, j, k]) * (t_old[i + 1, j, k] - ti)
                    gy = _harmonic(ki, k_old[i, j + 1, k]) * (t_old[i, j + 1, k] - ti)
                    gz = _harmonic(ki, k_old[i, j, k + 1]) * (t_old[i, j, k + 1] - ti)
                    acc = fx[j, k] + gx + fy[k] + gy + fz + gz
                    fx[j, k] = -gx
                    fy[k] = -gy
                    fz = -gz
                    fl = min(max((ti - mat[m, TS]) * mat[m, INV_DT], 0.0), 1.0)
                    rate = acc * inv_dx2 + fl * (mat[m, SINK] - mat[m, PERF] * ti)
                    if use_source:
                        rate += source[i, j, k]
                    hn = c1 * h1[i, j, k] + cl * rate
                    if extra:
                        hn += c2 * h2[i, j, k] + c0 * h0[i, j, k] + cm * m0[i, j, k]
                    if store_rate:
                        m0[i, j, k] = rate
                    h_out[i, j, k] = hn
                    tn = temperature_of(hn, mat, m)
                    t_new[i, j, k] = tn
                    k_new[i, j, k] = conductivity(tn, mat, m)


@njit(cache=True)
def probe_rates(t, k, cells, inv_theta, which, probe_temp, probe_on, inv_dx2, out, per_probe):
    """Ghost-fluid flux from the probe surfaces into the free cells beside them (W/m³).

    For a face at ``theta * dx`` from the cell centre the flux per unit volume is
    ``k_i (T_probe - T_i) / (theta dx^2)``. ``cells`` are indices into the padded arrays;
    ``out[n]`` gets cell n's total, ``per_probe[p]`` the sum over cells of probe p's share.
    """
    per_probe[:] = 0.0
    for n in range(cells.shape[0]):
        i = cells[n, 0]
        j = cells[n, 1]
        kk = cells[n, 2]
        ti = t[i, j, kk]
        ki = k[i, j, kk]
        total = 0.0
        for f in range(6):
            p = which[n, f]
            if p >= 0 and probe_on[p]:
                q = ki * (probe_temp[p] - ti) * inv_theta[n, f] * inv_dx2
                total += q
                per_probe[p] += q
        out[n] = total


@njit(cache=True)
def add_probe_rates(h, t, k, lab, mat, cells, rates, coef, m0, store):
    """``h += coef * rates`` at the probe-side cells (and into ``m0`` if ``store``); refresh
    their temperature and conductivity."""
    for n in range(cells.shape[0]):
        i = cells[n, 0]
        j = cells[n, 1]
        kk = cells[n, 2]
        if store:
            m0[i, j, kk] += rates[n]
        if rates[n] != 0.0:
            m = lab[i, j, kk]
            hn = h[i, j, kk] + coef * rates[n]
            h[i, j, kk] = hn
            tn = temperature_of(hn, mat, m)
            t[i, j, kk] = tn
            k[i, j, kk] = conductivity(tn, mat, m)


@njit(parallel=True, cache=True)
def liquid_change(t_a, t_b, lab, mat):
    """Largest change of liquid fraction between two temperature fields (interior cells).

    The step-size control of ``solver.simulate`` uses it: a step in which some cell crosses
    much of its mushy range has resolved the latent-heat front poorly."""
    nx, ny, nz = t_a.shape
    best = np.zeros(nx)
    for i in prange(1, nx - 1):
        worst = 0.0
        for j in range(1, ny - 1):
            for k in range(1, nz - 1):
                m = lab[i, j, k]
                fa = liquid_fraction(t_a[i, j, k], mat, m)
                worst = max(worst, abs(liquid_fraction(t_b[i, j, k], mat, m) - fa))
        best[i] = worst
    return best.max()


@njit(parallel=True, cache=True)
def record(t, t_prev, kind, t_min, below, thresholds, dt_since):
    """Update the running minimum and the time spent at or below each threshold.

    Between two samples the temperature is taken to vary linearly, so the time below a
    threshold is resolved within a sample interval (a crossing contributes the fraction of
    the interval on the cold side). ``t_prev`` is then set to ``t``.
    """
    nx, ny, nz = t.shape
    nthr = thresholds.shape[0]
    for i in prange(nx):
        for j in range(ny):
            for k in range(nz):
                if kind[i, j, k] == 2:
                    continue
                b = t[i, j, k]
                a = t_prev[i, j, k]
                if b < t_min[i, j, k]:
                    t_min[i, j, k] = b
                for q in range(nthr):
                    thr = thresholds[q]
                    if a <= thr and b <= thr:
                        below[q, i, j, k] += dt_since
                    elif a <= thr or b <= thr:
                        f = (thr - a) / (b - a)
                        below[q, i, j, k] += dt_since * (f if a <= thr else 1.0 - f)
                t_prev[i, j, k] = b
