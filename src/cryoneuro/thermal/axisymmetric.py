"""Independent r–z reference solver for one cryoprobe (and a fast reduced model for sweeps).

Method (deliberately different from the 3D explicit Cartesian engine):

* **Finite volumes in cylindrical coordinates** on a graded rectilinear r–z grid (uniform cells
  of ``cell_mm`` around the probe, geometric growth outside); cell volumes ``π(r₊² − r₋²)Δz``.
* **Kirchhoff transform** ``u(T) = ∫_{T_s}^{T} k(θ) dθ`` (W/m): conduction becomes linear in
  ``u`` (``∇·(k∇T) = ∇²u``), so the face fluxes ``G (u_P − u_Q)`` use a *constant* conductance
  matrix (Alexiades & Solomon 1993, *Mathematical Modeling of Melting and Freezing Processes*;
  fixed-grid enthalpy methods reviewed by Voller, Swaminathan & Thomas 1990, Int J Numer Meth
  Eng 30:875). Radial conductances are logarithmic, ``2πΔz / ln(r₂/r₁)`` (exact for the
  steady radial profile, which matters next to a 0.75 mm probe).
* **Enthalpy method, implicit (backward Euler)** in time, solved per step by **Newton's method**
  on ``u`` with steps truncated at the phase-change kinks (``T_s``, ``T_l``) so the piecewise
  linear enthalpy cannot make Newton cycle; the symmetric positive-definite Newton system is
  solved by conjugate gradients preconditioned with a cached sparse LU (``scipy.sparse.linalg.
  splu``) of an earlier Jacobian, refactored when CG slows down. A step whose Newton iteration
  fails is split in halves (recursively).
* The probe's active surface (a capsule of radius ``a``: hemisphere with apex at the tip point,
  then a cylinder to ``z_tip + L_a``) is a Dirichlet surface cut through the grid: cells whose
  centres lie inside are removed, and the flux from a neighbouring cell uses the exact distance
  from its centre to the surface along the grid line (Shortley–Weller style). A grid face lies
  exactly on ``r = a`` and on ``z = z_tip + L_a``. The shaft above is excluded (adiabatic).
  During a passive thaw the active surface is adiabatic too (the probe's own heat capacity is
  neglected). With a :class:`~cryoneuro.thermal.drive.DeviceDrive` the surface temperature of
  each step solves the device's wall energy balance on the state at the start of the step
  (in Kirchhoff form, ``Σ g (u_i − u(T_w)) = min(hA (T_w − T_gas), Q_max)``, by Brent's
  method) — the same model as the 3D engine, reached by a different discretisation.

Equation (Pennes bioheat with phase change; docs/domain-facts.md)::

    ∂H/∂t = ∇·(k(T)∇T) + f_l(T) [ω (T_body − T) + q_m]

with the piecewise-linear enthalpy of :class:`_Material`. Discrete energy conservation is
exact up to the Newton tolerance and is reported (``energy_residual_j``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import NDArray
from scipy.optimize import brentq

from cryoneuro.errors import GeometryError, InputError
from cryoneuro.thermal.drive import DeviceDrive
from cryoneuro.tissue import ThermalProperties

__all__ = [
    "AxisymmetricResult",
    "Phase",
    "parse_protocol",
    "solve_axisymmetric",
    "solve_infinite_cylinder",
    "solve_line_sink",
]

MM = 1e-3


# ----------------------------------------------------------------------------- material model
class _Material:
    """Enthalpy, conductivity and Kirchhoff potential of one tissue (vectorised, SI, °C).

    ``H(T)`` (J/m³, zero at ``T_s``): ``C_f (T − T_s)`` below ``T_s``; ``(L + C_m ΔT_m)
    (T − T_s)/ΔT_m`` in the mushy range, ``C_m = (C_f + C_u)/2``, ``ΔT_m = T_l − T_s``;
    ``H(T_l) + C_u (T − T_l)`` above. ``f_l = clip((T − T_s)/ΔT_m, 0, 1)``,
    ``k = k_f + (k_u − k_f) f_l``, ``u = ∫_{T_s}^T k dθ`` (Kirchhoff 1894 transform).
    """

    def __init__(self, p: ThermalProperties, body_temperature_c: float) -> None:
        self.p, self.t_body = p, body_temperature_c
        self.ts, self.tl = p.t_solidus, p.t_liquidus
        self.dtm = self.tl - self.ts
        self.kf, self.ku, self.cf, self.cu = p.k_frozen, p.k_unfrozen, p.c_frozen, p.c_unfrozen
        self.c_mushy = (p.latent + 0.5 * (self.cf + self.cu) * self.dtm) / self.dtm  # dH/dT
        self.h_l = self.c_mushy * self.dtm
        self.a2 = (self.ku - self.kf) / (2.0 * self.dtm)
        self.u_l = self.kf * self.dtm + self.a2 * self.dtm**2  # u(T_l)

    def u_of_t(self, t: NDArray | float) -> NDArray:
        x = np.asarray(t, dtype=float) - self.ts
        xm = np.clip(x, 0.0, self.dtm)
        return np.where(
            x <= 0,
            self.kf * x,
            np.where(
                x < self.dtm, self.kf * xm + self.a2 * xm**2, self.u_l + self.ku * (x - self.dtm)
            ),
        )

    def t_of_u(self, u: NDArray) -> NDArray:
        um = np.clip(u, 0.0, self.u_l)
        xm = 2.0 * um / (self.kf + np.sqrt(self.kf**2 + 4.0 * self.a2 * um))
        return self.ts + np.where(
            u <= 0, u / self.kf, np.where(u < self.u_l, xm, self.dtm + (u - self.u_l) / self.ku)
        )

    def enthalpy(self, t: NDArray) -> NDArray:
        x = t - self.ts
        return np.where(
            x <= 0,
            self.cf * x,
            np.where(x < self.dtm, self.c_mushy * x, self.h_l + self.cu * (x - self.dtm)),
        )

    def props(self, t: NDArray) -> tuple[NDArray, NDArray, NDArray]:
        """(dH/dT, k, f_l) at temperature ``t``."""
        x = t - self.ts
        fl = np.clip(x / self.dtm, 0.0, 1.0)
        dh = np.where(x <= 0, self.cf, np.where(x < self.dtm, self.c_mushy, self.cu))
        return dh, self.kf + (self.ku - self.kf) * fl, fl

    def source(self, t: NDArray, fl: NDArray, k: NDArray) -> tuple[NDArray, NDArray]:
        """Pennes source ``f_l [ω (T_b − T) + q_m]`` (W/m³) and its derivative d/du."""
        p = self.p
        drive = p.perfusion * (self.t_body - t) + p.metabolism
        s = fl * drive
        x = t - self.ts
        dfl = np.where((x > 0) & (x < self.dtm), 1.0 / self.dtm, 0.0)
        return s, (dfl * drive - fl * p.perfusion) / k


# ----------------------------------------------------------------------------- protocol
@dataclass(frozen=True)
class Phase:
    """One protocol phase: ``kind`` ∈ freeze | thaw-passive | thaw-active; ``duration_s``;
    ``temperature_c`` the surface temperature of an active thaw (None otherwise)."""

    kind: str
    duration_s: float
    temperature_c: float | None = None


def parse_protocol(protocol: Sequence[Sequence[object] | Phase]) -> list[Phase]:
    """Phases from tuples ``("freeze", 180.0)``, ``("thaw-passive", 60.0)``,
    ``("thaw-active", 60.0, 20.0)`` (or :class:`Phase` objects)."""
    phases: list[Phase] = []
    if not protocol:
        raise InputError("protocol is empty; give at least one phase, e.g. [('freeze', 300.0)]")
    for item in protocol:
        if isinstance(item, Phase):
            ph = item
        else:
            spec: tuple[Any, ...] = tuple(item)
            if not spec or spec[0] not in ("freeze", "thaw-passive", "thaw-active"):
                raise InputError(
                    f"protocol phase {spec!r}: kind must be 'freeze', "
                    "'thaw-passive' or 'thaw-active'"
                )
            if spec[0] == "thaw-active" and len(spec) != 3:
                raise InputError(
                    f"protocol phase {spec!r}: give ('thaw-active', duration_s, temperature_c)"
                )
            if spec[0] != "thaw-active" and len(spec) != 2:
                raise InputError(f"protocol phase {spec!r}: give ({spec[0]!r}, duration_s)")
            ph = Phase(
                str(spec[0]),
                float(spec[1]),
                float(spec[2]) if len(spec) == 3 else None,
            )
        if not (math.isfinite(ph.duration_s) and ph.duration_s > 0):
            raise InputError(
                f"protocol phase {ph.kind}: duration_s must be > 0 (got {ph.duration_s})"
            )
        phases.append(ph)
    return phases


# ----------------------------------------------------------------------------- grid
def _graded(start: float, stop: float, h: float, growth: float, h_max: float) -> list[float]:
    """Faces after ``start`` up to and including ``stop``, cell sizes growing from ``h``."""
    out, x, size = [], start, h
    sgn = 1.0 if stop > start else -1.0
    while True:
        size = min(size * growth, h_max)
        if abs(stop - x) <= 1.5 * size:
            out.append(stop)
            return out
        x += sgn * size
        out.append(x)


def _half_axis(
    anchor: float, end: float, fine_end: float, h: float, growth: float, h_max: float
) -> list[float]:
    """Faces from ``anchor`` (excluded) to ``end``: uniform ``h`` up to ``fine_end``, then
    graded."""
    sgn = 1.0 if end > anchor else -1.0
    faces, x = [], anchor
    while sgn * (fine_end - (x + sgn * h)) >= -1e-12:
        x += sgn * h
        faces.append(x)
    if faces and sgn * (end - x) < 0.5 * h and abs(x - end) > 1e-12:
        faces.pop()  # merge a sliver into the last uniform cell
        x = faces[-1] if faces else anchor
    if abs(x - end) > 1e-12:
        g = growth if sgn * (end - fine_end) > 1e-12 else 1.0
        faces += _graded(x, end, h, g, h_max)
    return faces


def _axis_faces(
    lo: float,
    hi: float,
    anchor: float,
    fine_lo: float,
    fine_hi: float,
    h: float,
    growth: float,
    h_max: float,
) -> NDArray:
    """Faces on [lo, hi] with a face at ``anchor``, uniform ``h`` on [fine_lo, fine_hi]."""
    down = _half_axis(anchor, lo, max(fine_lo, lo), h, growth, h_max) if anchor > lo else []
    up = _half_axis(anchor, hi, min(fine_hi, hi), h, growth, h_max) if anchor < hi else []
    return np.array(sorted([*down, anchor, *up]))


@dataclass
class _Geometry:
    """Probe description in solver units (m). ``kind``: capsule | cylinder | none."""

    kind: str
    a: float = 0.0
    z_tip: float = 0.0
    z_b: float = 0.0

    @property
    def z_a(self) -> float:
        return self.z_tip + self.a

    def surface_r(self, z: NDArray) -> NDArray:
        """Radius of the active surface at height z (0 where the row misses it)."""
        z = np.asarray(z, dtype=float)
        if self.kind == "cylinder":
            return np.full(z.shape, self.a)
        if self.kind == "none":
            return np.zeros(z.shape)
        hemi = np.sqrt(np.clip(self.a**2 - (z - self.z_a) ** 2, 0.0, None))
        return np.where(
            (z >= self.z_a) & (z <= self.z_b),
            self.a,
            np.where((z >= self.z_tip) & (z < self.z_a), hemi, 0.0),
        )

    def surface_z(self, r: NDArray) -> NDArray:
        """Lower z of the active surface at radius r < a (hemisphere)."""
        return self.z_a - np.sqrt(np.clip(self.a**2 - np.asarray(r) ** 2, 0.0, None))


class _Mesh:
    """Cells, masks and the constant Kirchhoff conductances of one problem."""

    def __init__(self, rf: NDArray, zf: NDArray, geom: _Geometry, *, adiabatic_z: bool) -> None:
        self.rf, self.zf, self.geom, self.adiabatic_z = rf, zf, geom, adiabatic_z
        self.rc, self.zc = 0.5 * (rf[1:] + rf[:-1]), 0.5 * (zf[1:] + zf[:-1])
        nr, nz = self.rc.size, self.zc.size
        self.shape = (nz, nr)
        dz, ring = np.diff(zf), np.pi * np.diff(rf**2)
        self.volume = dz[:, None] * ring[None, :]
        R, Z = np.meshgrid(self.rc, self.zc)
        g = geom
        if g.kind == "capsule":
            self.probe = (
                (g.a > R) & (g.z_b >= Z) & ((g.z_a <= Z) | ((Z - g.z_a) ** 2 + R**2 < g.a**2))
            )
            self.shaft = (g.a > R) & (g.z_b < Z)
        elif g.kind == "cylinder":
            self.probe, self.shaft = g.a > R, np.zeros(self.shape, bool)
        else:
            self.probe = self.shaft = np.zeros(self.shape, bool)
        self.tissue = ~(self.probe | self.shaft)
        n = int(self.tissue.sum())
        idx = np.full(self.shape, -1)
        idx[self.tissue] = np.arange(n)
        self.idx, self.n = idx, n
        self.vol = self.volume[self.tissue]
        rows, cols, vals = [], [], []
        g_probe, g_outer = np.zeros(n), np.zeros(n)

        def couple(p: NDArray, q: NDArray, cond: NDArray) -> None:
            rows.extend([p, q])
            cols.extend([q, p])
            vals.extend([cond, cond])
            np.add.at(diag, p, -cond)
            np.add.at(diag, q, -cond)

        diag = np.zeros(n)
        # radial faces between (j, i) and (j, i + 1); conductances of the steady cylindrical
        # profile, 2πΔz / ln(r_out/r_in): exact
        # for u ∝ ln r, so the steep profile next to a thin probe is captured on coarse grids
        g_r = 2 * np.pi * dz[:, None] / np.log(self.rc[1:] / self.rc[:-1])[None, :]
        a, b = idx[:, :-1], idx[:, 1:]
        m = (a >= 0) & (b >= 0)
        couple(a[m], b[m], g_r[m])
        # tissue cell outside, probe cell inside: distance to the surface along r
        m = self.probe[:, :-1] & (b >= 0)
        jj, ii = np.nonzero(m)
        rs = g.surface_r(self.zc[jj])
        rs = np.clip(rs, self.rc[ii], self.rc[ii + 1] - 0.02 * (self.rc[ii + 1] - self.rc[ii]))
        np.add.at(g_probe, b[m], 2 * np.pi * dz[jj] / np.log(self.rc[ii + 1] / rs))
        # axial faces between (j, i) and (j + 1, i)
        g_z = ring[None, :] / np.diff(self.zc)[:, None]
        a, b = idx[:-1, :], idx[1:, :]
        m = (a >= 0) & (b >= 0)
        couple(a[m], b[m], g_z[m])
        m = (a >= 0) & self.probe[1:, :]  # tissue below a probe cell (hemisphere)
        jj, ii = np.nonzero(m)
        d = g.surface_z(self.rc[ii]) - self.zc[jj]
        dzc = self.zc[jj + 1] - self.zc[jj]
        d = np.clip(d, 0.02 * dzc, dzc)
        np.add.at(g_probe, a[m], ring[ii] / d)
        # outer boundaries held at body temperature
        last = idx[:, -1]
        g_edge = 2 * np.pi * dz / np.log(rf[-1] / self.rc[-1])
        np.add.at(g_outer, last[last >= 0], g_edge[last >= 0])
        if not adiabatic_z:
            for row, dist in ((0, self.zc[0] - zf[0]), (-1, zf[-1] - self.zc[-1])):
                k = idx[row, :]
                np.add.at(g_outer, k[k >= 0], (ring / dist)[k >= 0])
        self.g_probe, self.g_outer = g_probe, g_outer
        off = (
            sp.csr_matrix(
                (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
            )
            if rows
            else sp.csr_matrix((n, n))
        )
        self.a_cond = (off + sp.diags(diag - g_outer)).tocsr()  # A u: net conduction into cells

    def full(self, values: NDArray, probe_value: float = math.nan) -> NDArray:
        out = np.full(self.shape, math.nan)
        out[self.tissue] = values
        out[self.probe] = probe_value
        return out


# ----------------------------------------------------------------------------- time stepping
class _Stepper:
    """Backward-Euler enthalpy steps, Newton on the Kirchhoff potential ``u``.

    Residual per cell: ``V (H(u) − H_old)/Δt − [A u + b](u) − V S(u)`` with ``A`` the constant
    conductance matrix; Jacobian ``diag(V H'(u)/Δt − V S'(u) + g_probe) − A`` (SPD).
    """

    def __init__(
        self, mesh: _Mesh, mat: _Material, sink_w: NDArray | None, tol_c: float = 1e-4
    ) -> None:
        self.mesh, self.mat, self.tol = mesh, mat, tol_c
        self.b_outer = mesh.g_outer * float(mat.u_of_t(mat.t_body))
        self.sink = np.zeros(mesh.n) if sink_w is None else sink_w
        self.lu: spla.SuperLU | None = None
        self.stale = False
        self.newton_iterations = self.factorizations = self.cg_iterations = 0
        self.eps = 1e-9 * max(mat.u_l, 1e-6)

    def _linear_solve(self, jdiag: NDArray, rhs: NDArray) -> NDArray:
        """Solve ``(diag(jdiag) − A) x = rhs``: CG preconditioned by the LU of an earlier
        Jacobian; refactor (and solve directly) when that LU is stale."""
        a = self.mesh.a_cond
        if self.lu is not None and not self.stale:
            lu, its = self.lu, [0]

            def count(_: NDArray) -> None:
                its[0] += 1

            x, info = spla.cg(
                spla.LinearOperator(a.shape, matvec=lambda v: jdiag * v - a @ v, dtype=float),
                rhs,
                rtol=1e-7,
                atol=0.0,
                maxiter=25,
                callback=count,
                M=spla.LinearOperator(a.shape, matvec=lu.solve, dtype=float),
            )
            self.cg_iterations += its[0]
            self.stale = its[0] > 10
            if info == 0:
                return x
        jac = (sp.diags(jdiag) - a).tocsc()
        self.lu = spla.splu(
            jac, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
        )
        self.factorizations += 1
        self.stale = False
        return self.lu.solve(rhs)

    def fluxes(self, u: NDArray, g_probe: NDArray, u_wall: float) -> tuple[float, float, NDArray]:
        """(heat extracted by the probe W, heat in through outer boundaries W, source W/m³)."""
        t = self.mat.t_of_u(u)
        _, k, fl = self.mat.props(t)
        s, _ = self.mat.source(t, fl, k)
        q_probe = float(np.sum(g_probe * (u - u_wall)))
        q_outer = float(np.sum(self.b_outer - self.mesh.g_outer * u))
        return q_probe, q_outer, s

    def step(
        self,
        u: NDArray,
        dt: float,
        g_probe: NDArray,
        u_wall: float,
        depth: int = 0,
        guess: NDArray | None = None,
    ) -> NDArray:
        mat, vol = self.mat, self.mesh.vol
        h_old = mat.enthalpy(mat.t_of_u(u))
        b = self.b_outer + g_probe * u_wall - self.sink
        x = u.copy() if guess is None else guess.copy()
        t = mat.t_of_u(x)
        for _ in range(60):
            self.newton_iterations += 1
            dh, k, fl = mat.props(t)
            s, ds = mat.source(t, fl, k)
            res = (
                vol * (mat.enthalpy(t) - h_old) / dt
                - (self.mesh.a_cond @ x + b - g_probe * x)
                - vol * s
            )
            jdiag = vol * dh / (k * dt) - vol * ds + g_probe
            new = x + self._linear_solve(jdiag, -res)
            # truncate at the kinks of H(u): u = 0 (T_s) and u = u_l (T_l)
            r0 = (x >= 0).astype(int) + (x >= mat.u_l)
            r1 = (new >= 0).astype(int) + (new >= mat.u_l)
            up, down = r1 > r0, r1 < r0
            new[up] = np.where(r0[up] == 0, self.eps, mat.u_l + self.eps)
            new[down] = np.where(r0[down] == 2, mat.u_l - self.eps, -self.eps)
            t_new = mat.t_of_u(new)
            change = float(np.max(np.abs(t_new - t))) if t.size else 0.0
            x, t = new, t_new
            if change < self.tol:
                return x
        if depth >= 8:
            raise RuntimeError("axisymmetric solver: Newton iteration did not converge")
        half = self.step(u, 0.5 * dt, g_probe, u_wall, depth + 1)
        return self.step(half, 0.5 * dt, g_probe, u_wall, depth + 1)


# ----------------------------------------------------------------------------- isotherms
def _below(x: NDArray, t: NDArray, iso: float) -> tuple[NDArray, NDArray]:
    """Intervals of ``{T ≤ iso}`` for T linear between nodes ``x`` (start, end arrays)."""
    x0, x1, t0, t1 = x[:-1], x[1:], t[:-1], t[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = x0 + (iso - t0) / (t1 - t0) * (x1 - x0)
    lo = np.where(t0 <= iso, x0, np.where(t1 <= iso, cross, np.nan))
    hi = np.where(t1 <= iso, x1, np.where(t0 <= iso, cross, np.nan))
    keep = np.isfinite(lo) & np.isfinite(hi)
    return lo[keep], hi[keep]


def _iso_key(iso: float) -> str:
    return str(int(iso)) if float(iso).is_integer() else str(iso)


def _isotherm_metrics(
    mesh: _Mesh, field_c: NDArray, isotherms_c: Sequence[float], body_c: float, wall_c: float | None
) -> dict[str, dict[str, float]]:
    """Volume (ml), diameter and length (mm) of ``{T ≤ iso} ∪ active probe`` (shaft excluded).

    Rows (fixed z) and columns (fixed r) are scanned with T linear between cell centres, the
    probe surface (``wall_c``, or the neighbouring cell's value when the surface is adiabatic),
    the axis / shaft (zero gradient) and the outer boundary (``body_c``). Volume = Σ_rows
    ∫2πr dr Δz; diameter = 2 × largest radius over the rows; length = z-extent over columns.
    """
    g, rc, zc, rf, zf = mesh.geom, mesh.rc, mesh.zc, mesh.rf, mesh.zf
    dz = np.diff(zf)
    rp_rows = g.surface_r(zc)
    out: dict[str, dict[str, float]] = {}
    for iso in isotherms_c:
        vol, r_max = 0.0, 0.0
        z_lo, z_hi = (g.z_tip, g.z_b) if g.kind == "capsule" else (math.inf, -math.inf)
        for j in range(zc.size):
            tis = mesh.tissue[j]
            if not tis.any():
                continue
            i0 = int(np.argmax(tis))
            tv = field_c[j, i0:]
            rp = float(rp_rows[j])
            if rp > 0:
                start = (rp, tv[0] if wall_c is None else wall_c)
            else:
                start = (float(rf[i0]) if mesh.shaft[j, 0] else 0.0, tv[0])
            x = np.concatenate([[start[0]], rc[i0:], [rf[-1]]])
            t = np.concatenate([[start[1]], tv, [body_c]])
            lo, hi = _below(x, t, iso)
            area = float(np.sum(np.pi * (hi**2 - lo**2))) + np.pi * rp**2
            vol += area * dz[j]
            if hi.size:
                r_max = max(r_max, float(hi.max()))
            elif rp > 0:
                r_max = max(r_max, rp)
        for i in range(rc.size):
            tis = mesh.tissue[:, i]
            if not tis.any():
                continue
            stop = int(np.argmin(tis)) if not tis.all() else zc.size  # first non-tissue cell
            xs, ts = [zf[0]], [field_c[0, i] if mesh.adiabatic_z else body_c]
            xs += list(zc[:stop])
            ts += list(field_c[:stop, i])
            if stop < zc.size and mesh.probe[stop, i]:
                xs.append(float(g.surface_z(rc[i])))
                ts.append(field_c[stop - 1, i] if wall_c is None else wall_c)
            elif stop == zc.size:
                xs.append(zf[-1])
                ts.append(field_c[-1, i] if mesh.adiabatic_z else body_c)
            lo, hi = _below(np.asarray(xs), np.asarray(ts, dtype=float), iso)
            if lo.size:
                z_lo, z_hi = min(z_lo, float(lo.min())), max(z_hi, float(hi.max()))
        length = (z_hi - z_lo) if z_hi > z_lo else 0.0
        out[_iso_key(iso)] = {
            "volume_ml": float(vol * 1e6),
            "diameter_mm": 2e3 * r_max,
            "length_mm": 1e3 * length,
        }
    return out


# ----------------------------------------------------------------------------- driver
@dataclass
class AxisymmetricResult:
    """Outcome of an r–z run. Fields are (nz, nr) arrays at cell centres, °C; NaN in the shaft
    (and in the probe where its surface was adiabatic at the end). Lengths in mm."""

    r_centres_mm: NDArray
    z_centres_mm: NDArray
    r_faces_mm: NDArray
    z_faces_mm: NDArray
    temperature_c: NDArray  #: final temperature field at the end of the protocol
    min_temperature_c: NDArray  #: per-cell minimum temperature over the run
    isotherms_final: dict[str, dict[str, float]]  #: of ``temperature_c``
    isotherms_minimum: dict[str, dict[str, float]]  #: of ``min_temperature_c``
    time_s: float
    heat_extracted_j: float  #: through the active probe surface (positive = removed)
    enthalpy_change_j: float  #: Σ V ΔH over the domain
    source_j: float  #: perfusion + metabolism
    outer_boundary_j: float  #: conducted in through r = R, z = z0, z1
    sink_j: float  #: line-sink mode only
    energy_residual_j: float  #: ΔE − (source + outer − probe − sink)
    points_mm: list[tuple[float, float]]
    point_times_s: NDArray
    point_temperatures_c: NDArray  #: (n_times, n_points), bilinear between cell centres
    wall_time_s: float
    steps: int
    newton_iterations: int
    factorizations: int
    final_wall_temperature_c: float | None
    min_wall_temperature_c: float | None
    body_temperature_c: float
    #: wall temperature used in each step (°C; NaN while the surface was adiabatic)
    wall_temperature_c: NDArray | None = None
    _mesh: _Mesh = field(repr=False, default=None)  # type: ignore[assignment]

    @property
    def energy_residual_rel(self) -> float:
        """|energy residual| / |heat extracted (or sunk)|."""
        ref = abs(self.heat_extracted_j) + abs(self.sink_j)
        return abs(self.energy_residual_j) / ref if ref > 0 else abs(self.energy_residual_j)

    def isotherms_of(
        self,
        field_c: NDArray,
        isotherms_c: Sequence[float] = (0.0, -20.0, -40.0),
        wall_temperature_c: float | None = None,
    ) -> dict[str, dict[str, float]]:
        """``{"volume_ml", "diameter_mm", "length_mm"}`` per isotherm of any (nz, nr) field
        (``wall_temperature_c``: probe surface value; None → zero-gradient at the surface)."""
        field_c = np.asarray(field_c, float)
        if field_c.shape != self._mesh.shape:
            raise InputError(
                f"field shape {field_c.shape} != grid shape {self._mesh.shape} (nz, nr)"
            )
        return _isotherm_metrics(
            self._mesh,
            np.asarray(field_c, float),
            isotherms_c,
            self.body_temperature_c,
            wall_temperature_c,
        )


def _run(
    mesh: _Mesh,
    tissue: ThermalProperties,
    phases: list[Phase],
    tip: float | Callable[[float], float],
    dt_s: float,
    body_c: float,
    isotherms_c: Sequence[float],
    points_mm: Sequence[tuple[float, float]],
    sink_w_per_m: float | None = None,
    device: DeviceDrive | None = None,
) -> AxisymmetricResult:
    if not (math.isfinite(dt_s) and dt_s > 0):
        raise InputError(f"dt_s must be > 0 (got {dt_s})")
    mat = _Material(tissue, body_c)
    sink = None
    if sink_w_per_m is not None:
        sink, first = np.zeros(mesh.n), mesh.idx[:, 0]
        sink[first[first >= 0]] = sink_w_per_m * np.diff(mesh.zf)[first >= 0]
    stepper = _Stepper(mesh, mat, sink)
    wall_clock = time.perf_counter()
    u = np.full(mesh.n, float(mat.u_of_t(body_c)))
    e0 = float(np.sum(mesh.vol * mat.enthalpy(mat.t_of_u(u))))
    t_min = np.full(mesh.n, float(body_c))
    q_probe = q_outer = q_src = q_sink = 0.0
    pts = np.asarray(points_mm, dtype=float).reshape(-1, 2) * MM
    if len(pts) and not (
        np.all(pts[:, 0] >= 0)
        and np.all(pts[:, 0] <= mesh.rf[-1])
        and np.all(pts[:, 1] >= mesh.zf[0])
        and np.all(pts[:, 1] <= mesh.zf[-1])
    ):
        raise InputError(
            "points_mm: every (r, z) point must lie inside the domain "
            f"(0 <= r <= {mesh.rf[-1] / MM} mm, {mesh.zf[0] / MM} <= z <= "
            f"{mesh.zf[-1] / MM} mm)"
        )
    hist_t, hist_v = [0.0], [np.full(len(pts), body_c)]
    t_now, steps, wall, wall_min = 0.0, 0, None, None
    wall_trace: list[float] = []
    zero = np.zeros(mesh.n)

    def tip_at(ts: float) -> float:
        v = float(tip(ts)) if callable(tip) else float(tip)
        if not math.isfinite(v):
            raise InputError(f"tip temperature at t = {ts} s is {v}")
        return v

    for ph in phases:
        t_end, u_prev, dt_prev = t_now + ph.duration_s, None, 1.0
        while t_now < t_end - 1e-9:
            dt = min(dt_s, t_end - t_now)
            if t_end - (t_now + dt) < 1e-6 * dt_s:
                dt = t_end - t_now
            wall = (
                tip_at(t_now + dt)
                if ph.kind == "freeze"
                else ph.temperature_c
                if ph.kind == "thaw-active"
                else None
            )
            if device is not None and wall is not None:
                wall = _device_wall(mesh.g_probe, mat, u, device, ph.kind, ph.temperature_c)
            wall_trace.append(math.nan if wall is None else wall)
            g_probe = zero if wall is None else mesh.g_probe
            u_wall = 0.0 if wall is None else float(mat.u_of_t(wall))
            guess: np.ndarray | None = (
                u + (u - u_prev) * (dt / dt_prev) if u_prev is not None else None
            )
            u_prev, dt_prev = u, dt
            u = stepper.step(u, dt, g_probe, u_wall, guess=guess)
            qp, qo, s = stepper.fluxes(u, g_probe, u_wall)
            q_probe += qp * dt
            q_outer += qo * dt
            q_src += float(np.sum(mesh.vol * s)) * dt
            q_sink += float(np.sum(stepper.sink)) * dt
            t_now += dt
            steps += 1
            temp = mat.t_of_u(u)
            np.minimum(t_min, temp, out=t_min)
            if wall is not None:
                wall_min = wall if wall_min is None else min(wall_min, wall)
            if len(pts):
                hist_t.append(t_now)
                hist_v.append(
                    _interpolate(mesh, mesh.full(temp, math.nan if wall is None else wall), pts)
                )
    temp = mat.t_of_u(u)
    e1 = float(np.sum(mesh.vol * mat.enthalpy(temp)))
    final = mesh.full(temp, math.nan if wall is None else wall)
    tmin = mesh.full(t_min, math.nan if wall_min is None else wall_min)
    return AxisymmetricResult(
        r_centres_mm=mesh.rc / MM,
        z_centres_mm=mesh.zc / MM,
        r_faces_mm=mesh.rf / MM,
        z_faces_mm=mesh.zf / MM,
        temperature_c=final,
        min_temperature_c=tmin,
        isotherms_final=_isotherm_metrics(mesh, final, isotherms_c, body_c, wall),
        isotherms_minimum=_isotherm_metrics(mesh, tmin, isotherms_c, body_c, wall_min),
        time_s=t_now,
        heat_extracted_j=q_probe,
        enthalpy_change_j=e1 - e0,
        source_j=q_src,
        outer_boundary_j=q_outer,
        sink_j=q_sink,
        energy_residual_j=(e1 - e0) - (q_src + q_outer - q_probe - q_sink),
        points_mm=[tuple(p) for p in np.asarray(points_mm, float).reshape(-1, 2)],
        point_times_s=np.asarray(hist_t),
        point_temperatures_c=np.asarray(hist_v),
        wall_time_s=time.perf_counter() - wall_clock,
        steps=steps,
        newton_iterations=stepper.newton_iterations,
        factorizations=stepper.factorizations,
        final_wall_temperature_c=wall,
        min_wall_temperature_c=wall_min,
        body_temperature_c=body_c,
        wall_temperature_c=np.asarray(wall_trace),
        _mesh=mesh,
    )


def _device_wall(
    g_probe: NDArray,
    mat: _Material,
    u: NDArray,
    device: DeviceDrive,
    kind: str,
    thaw_limit_c: float | None,
) -> float:
    """Wall temperature of a device-driven probe on the state ``u`` (see the module docstring)."""
    g_sum = float(np.sum(g_probe))
    if g_sum <= 0.0:
        return device.gas_temperature_c
    u_bar = float(np.sum(g_probe * u)) / g_sum
    t_bar = float(mat.t_of_u(np.asarray([u_bar]))[0])
    u_wall = lambda t: float(mat.u_of_t(np.asarray([t]))[0])  # noqa: E731

    if kind == "freeze":
        t_gas = device.gas_temperature_c
        if t_bar <= t_gas:
            return t_gas

        def balance(t: float) -> float:
            gas = min(device.gas_conductance_w_per_k * (t - t_gas), device.capacity_w)
            return g_sum * (u_bar - u_wall(t)) - gas

        return float(brentq(balance, t_gas, t_bar, xtol=1e-6))
    limit = device.thaw_limit_c if thaw_limit_c is None else thaw_limit_c
    if device.thaw_power_w is None or t_bar >= limit:
        return limit
    heat = lambda t: g_sum * (u_wall(t) - u_bar) - device.thaw_power_w  # noqa: E731
    return float(brentq(heat, t_bar, limit, xtol=1e-6)) if heat(limit) > 0 else limit


def _interpolate(mesh: _Mesh, full: NDArray, pts: NDArray) -> NDArray:
    """Bilinear interpolation between cell centres (clamped at the outermost centres)."""
    out = np.empty(len(pts))
    for n, (r, z) in enumerate(pts):
        i = int(np.clip(np.searchsorted(mesh.rc, r) - 1, 0, mesh.rc.size - 2))
        j = int(np.clip(np.searchsorted(mesh.zc, z) - 1, 0, mesh.zc.size - 2))
        fr = float(np.clip((r - mesh.rc[i]) / (mesh.rc[i + 1] - mesh.rc[i]), 0, 1))
        fz = float(np.clip((z - mesh.zc[j]) / (mesh.zc[j + 1] - mesh.zc[j]), 0, 1))
        c = full[j : j + 2, i : i + 2]
        out[n] = (1 - fz) * ((1 - fr) * c[0, 0] + fr * c[0, 1]) + fz * (
            (1 - fr) * c[1, 0] + fr * c[1, 1]
        )
    return out


def _check_positive(**values: float) -> None:
    for name, v in values.items():
        if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise InputError(f"{name} must be a positive number (got {v!r})")


def _radial_faces(
    a: float, radius: float, h: float, fine_to: float, growth: float, h_max: float
) -> NDArray:
    n_in = max(2, math.ceil(a / h - 1e-9))
    inner = list(np.linspace(0.0, a, n_in + 1))
    return np.array(inner + _half_axis(a, radius, min(fine_to, radius), h, growth, h_max))


def solve_axisymmetric(
    tissue: ThermalProperties,
    *,
    probe_diameter_mm: float,
    active_length_mm: float,
    tip_temperature_c: float | Callable[[float], float],
    protocol: Sequence[Sequence[object] | Phase] = (("freeze", 300.0),),
    radius_mm: float = 25.0,
    z_extent_mm: tuple[float, float] = (0.0, 50.0),
    tip_z_mm: float = 15.0,
    body_temperature_c: float = 37.0,
    cell_mm: float = 0.2,
    dt_s: float = 2.0,
    fine_margin_mm: float = 14.0,
    growth: float = 1.1,
    max_cell_mm: float = 1.0,
    isotherms_c: Sequence[float] = (0.0, -20.0, -40.0),
    points_mm: Sequence[tuple[float, float]] = (),
    device: DeviceDrive | None = None,
) -> AxisymmetricResult:
    """Freeze/thaw protocol around one probe on the axis ``r = 0`` (the reference-case geometry of
    docs/contracts.md).

    ``device``: drive the wall by the device energy balance instead of holding it at
    ``tip_temperature_c`` (which is then ignored; see the module docstring).

    Probe: tip point at ``z = tip_z_mm``, direction +z; radius ``a = probe_diameter_mm/2``;
    active surface = capsule of points within ``a`` of the segment ``[tip + a, tip +
    active_length_mm]`` (hemispherical end, apex at the tip), insulated shaft (``r < a``)
    beyond to ``z_extent_mm[1]``. Freeze phases hold the active surface at
    ``tip_temperature_c`` (°C, or a function of protocol time in s); ``thaw-passive`` makes it
    adiabatic; ``("thaw-active", s, T)`` holds it at ``T``. ``r = radius_mm`` and both z ends
    are held at ``body_temperature_c``, also the initial and arterial temperature.

    Grid: uniform ``cell_mm`` cells within ``fine_margin_mm`` of the probe, growing by
    ``growth`` up to ``max_cell_mm`` outside (keep the iceball inside the fine zone). Time:
    backward Euler, ``dt_s``. The defaults (0.2 mm, 2 s) are within about 0.08 mm of the
    extrapolated isotherm sizes of the reference case (docs/contracts.md, docs/validation.md);
    ``cell_mm=0.4``
    is a coarse mode (within about 0.15 mm). ``points_mm``: (r, z) points whose temperature
    history is recorded at every step.
    """
    _check_positive(
        probe_diameter_mm=probe_diameter_mm,
        active_length_mm=active_length_mm,
        radius_mm=radius_mm,
        cell_mm=cell_mm,
        dt_s=dt_s,
        max_cell_mm=max_cell_mm,
    )
    phases = parse_protocol(protocol)
    a = 0.5 * probe_diameter_mm * MM
    z0, z1 = (float(v) * MM for v in z_extent_mm)
    z_tip, z_b = tip_z_mm * MM, (tip_z_mm + active_length_mm) * MM
    if active_length_mm * MM < a:
        raise GeometryError(
            f"active_length_mm ({active_length_mm}) must be at least the probe "
            f"radius ({a / MM} mm): the hemispherical end is part of it"
        )
    if not (z0 < z_tip - 2 * cell_mm * MM and z_b < z1 - 2 * cell_mm * MM):
        raise GeometryError(
            f"probe (tip z = {tip_z_mm} mm, active to z = {z_b / MM} mm) must "
            f"lie inside z_extent_mm = {tuple(z_extent_mm)} with some margin"
        )
    if radius_mm * MM < a + 4 * cell_mm * MM:
        raise GeometryError(
            f"radius_mm ({radius_mm}) must exceed the probe radius plus a few cells"
        )
    if growth < 1.0:
        raise InputError(f"growth must be >= 1 (got {growth})")
    h, margin = cell_mm * MM, fine_margin_mm * MM
    rf = _radial_faces(a, radius_mm * MM, h, a + margin, growth, max(max_cell_mm * MM, h))
    zf = _axis_faces(z0, z1, z_b, z_tip - margin, z_b + margin, h, growth, max(max_cell_mm * MM, h))
    mesh = _Mesh(rf, zf, _Geometry("capsule", a, z_tip, z_b), adiabatic_z=False)
    tip = device.gas_temperature_c if device is not None else tip_temperature_c
    return _run(
        mesh, tissue, phases, tip, dt_s, body_temperature_c, isotherms_c, points_mm, device=device
    )


def solve_line_sink(
    tissue: ThermalProperties,
    *,
    sink_w_per_m: float,
    duration_s: float,
    radius_mm: float = 40.0,
    height_mm: float = 1.0,
    cell_mm: float = 0.05,
    dt_s: float = 1.0,
    fine_to_mm: float = 14.0,
    initial_temperature_c: float = 37.0,
    isotherms_c: Sequence[float] = (0.0, -20.0, -40.0),
) -> AxisymmetricResult:
    """Validation mode: a line sink ``sink_w_per_m`` (W/m, heat removed) spread over the first
    radial cell along the whole height, z ends adiabatic, no perfusion unless ``tissue`` has
    it; ``r = radius_mm`` held at ``initial_temperature_c``. Compare with
    :func:`cryoneuro.thermal.analytic.line_sink_isotherm_radius` (C&J §11.6)."""
    _check_positive(
        sink_w_per_m=sink_w_per_m,
        duration_s=duration_s,
        radius_mm=radius_mm,
        height_mm=height_mm,
        cell_mm=cell_mm,
        dt_s=dt_s,
    )
    h = cell_mm * MM
    rf = np.array([0.0, *_half_axis(0.0, radius_mm * MM, fine_to_mm * MM, h, 1.05, 1e-3)])
    nz = max(1, round(height_mm / max(cell_mm, 0.5)))
    zf = np.linspace(0.0, height_mm * MM, nz + 1)
    mesh = _Mesh(rf, zf, _Geometry("none"), adiabatic_z=True)
    return _run(
        mesh,
        tissue,
        [Phase("freeze", float(duration_s))],
        initial_temperature_c,
        dt_s,
        initial_temperature_c,
        isotherms_c,
        (),
        sink_w_per_m=sink_w_per_m,
    )


def solve_infinite_cylinder(
    tissue: ThermalProperties,
    *,
    probe_diameter_mm: float,
    wall_temperature_c: float,
    duration_s: float,
    radius_mm: float = 80.0,
    cell_mm: float = 0.1,
    dt_s: float = 1.0,
    body_temperature_c: float = 37.0,
    growth: float = 1.05,
    isotherms_c: Sequence[float] = (0.0, -20.0, -40.0),
) -> AxisymmetricResult:
    """Validation mode: an infinitely long probe ``r < a`` held at ``wall_temperature_c``, z ends
    adiabatic (one z layer), ``r = radius_mm`` at body temperature. With ``dt_s ≥ duration_s``
    ≫ C/ω one backward-Euler step is the steady state, to compare with the modified-Bessel
    profile ``T − T_b ∝ K0(r/δ)`` (δ = √(k/ω)) when no phase change occurs."""
    _check_positive(
        probe_diameter_mm=probe_diameter_mm,
        duration_s=duration_s,
        radius_mm=radius_mm,
        cell_mm=cell_mm,
        dt_s=dt_s,
    )
    a, h = 0.5 * probe_diameter_mm * MM, cell_mm * MM
    rf = _radial_faces(a, radius_mm * MM, h, a + 10 * h, growth, 2e-3)
    mesh = _Mesh(rf, np.array([0.0, 1e-3]), _Geometry("cylinder", a), adiabatic_z=True)
    return _run(
        mesh,
        tissue,
        [Phase("freeze", float(duration_s))],
        wall_temperature_c,
        dt_s,
        body_temperature_c,
        isotherms_c,
        (),
    )
