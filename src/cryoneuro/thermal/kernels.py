"""Numba kernels of the explicit enthalpy bioheat scheme.

The PDE (Pennes 1948 with phase change by the enthalpy method; design.md §1)::

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
    rows = [(p.t_solidus, p.t_liquidus, p.c_frozen, p.c_unfrozen, p.latent, p.k_frozen,
             p.k_unfrozen, p.perfusion, p.metabolism) for p in materials]
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
    return (mat[m, TS] + min(h, 0.0) * mat[m, INV_CF]
            + min(max(h, 0.0), hl) * mat[m, SLOPE_M] + max(h - hl, 0.0) * mat[m, INV_CU])


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
def diffuse_step(h, t_old, k_old, t_new, k_new, lab, mat, dt, inv_dx2, source,
                 use_source, n_chunks):
    """One forward-Euler step on padded arrays (one ghost layer on every side).

    Ghost cells carry the outer boundary: a Dirichlet face has the wall temperature and
    conductivity ``K_WALL``; an adiabatic face conductivity 0. Probe and shaft voxels have the
    probe material (conductivity 0), so no flux crosses their faces here and they keep their
    enthalpy; ``probe_faces`` adds the probe's own flux.

    Each face flux is computed once and handed to the cell on its other side (a register for
    z, a row buffer for y, a plane buffer for x): half the divisions of a naive stencil, and
    exactly conservative. The x range is split into ``n_chunks`` slabs run in parallel.
    """
    nx, ny, nz = h.shape
    ni = nx - 2
    for c in prange(n_chunks):
        i0 = 1 + (ni * c) // n_chunks
        i1 = 1 + (ni * (c + 1)) // n_chunks
        fx = np.empty((ny, nz))
        fy = np.empty(nz)
        for j in range(1, ny - 1):
            for k in range(1, nz - 1):
                fx[j, k] = (_harmonic(k_old[i0, j, k], k_old[i0 - 1, j, k])
                            * (t_old[i0 - 1, j, k] - t_old[i0, j, k]))
        for i in range(i0, i1):
            for k in range(1, nz - 1):
                fy[k] = _harmonic(k_old[i, 1, k], k_old[i, 0, k]) * (t_old[i, 0, k] - t_old[i, 1, k])
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
                    hn = h[i, j, k] + dt * rate
                    h[i, j, k] = hn
                    tn = temperature_of(hn, mat, m)
                    t_new[i, j, k] = tn
                    k_new[i, j, k] = conductivity(tn, mat, m)


@njit(cache=True)
def probe_faces(h, t_old, k_old, t_new, k_new, lab, mat, cells, inv_theta, which, probe_temp,
                probe_on, dt, inv_dx2, heat_out):
    """Add the ghost-fluid flux from the probe surface to the free cells beside it.

    For a face at ``theta * dx`` from the cell centre the flux per unit volume is
    ``k_i (T_probe - T_i) / (theta dx^2)``. ``cells`` are indices into the padded arrays.
    ``heat_out[p]`` accumulates the heat drawn by probe ``p`` (J/m³ of one voxel; the caller
    multiplies by the voxel volume).
    """
    for n in range(cells.shape[0]):
        i = cells[n, 0]
        j = cells[n, 1]
        k = cells[n, 2]
        ti = t_old[i, j, k]
        ki = k_old[i, j, k]
        added = 0.0
        for f in range(6):
            p = which[n, f]
            if p >= 0 and probe_on[p]:
                q = ki * (probe_temp[p] - ti) * inv_theta[n, f] * inv_dx2
                added += q
                heat_out[p] -= q * dt
        if added != 0.0:
            m = lab[i, j, k]
            hn = h[i, j, k] + dt * added
            h[i, j, k] = hn
            tn = temperature_of(hn, mat, m)
            t_new[i, j, k] = tn
            k_new[i, j, k] = conductivity(tn, mat, m)


@njit(parallel=True, cache=True)
def record(t, kind, t_min, below, thresholds, dt_since):
    """Update the running minimum and the time spent at or below each threshold."""
    nx, ny, nz = t.shape
    nthr = thresholds.shape[0]
    for i in prange(nx):
        for j in range(ny):
            for k in range(nz):
                if kind[i, j, k] == 2:
                    continue
                ti = t[i, j, k]
                if ti < t_min[i, j, k]:
                    t_min[i, j, k] = ti
                for q in range(nthr):
                    if ti <= thresholds[q]:
                        below[q, i, j, k] += dt_since
