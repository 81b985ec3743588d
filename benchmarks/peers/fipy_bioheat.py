"""FiPy peer of cryoneuro's 3D bioheat-with-freezing engine, for side-by-side benchmarks.

The same PDE as ``cryoneuro.thermal.kernels`` (Pennes with phase change by the enthalpy method)::

    dH(T)/dt = div(k(T) grad T) + f_l(T) w_b (T_body - T)

(metabolism balanced at baseline), with the piecewise-linear ``H(T)`` of kernels.py (zero at the
solidus), ``f_l = clip((T - T_s)/(T_l - T_s), 0, 1)`` and ``k = k_f + (k_u - k_f) f_l``, on a
uniform cell-centred ``Grid3D``; faces take the harmonic mean of the two cells' conductivities
(as cryoneuro does); the six outer faces are Dirichlet at body temperature (FiPy's face
constraint: a wall half a voxel from the outer cell centres, as cryoneuro's ghost cells).

Time stepping is fully implicit (backward Euler). The latent heat is handled by the enthalpy
source-update iteration of Voller & Swaminathan (1991, Numer. Heat Transfer B 19:175): within a
step, sweep ``k = 0, 1, ...``::

    C^k (T^{k+1} - T^old)/dt = div(k(T^k) grad T^{k+1}) - f_l(T^k) w_b (T^{k+1} - T_body)
                               - [H(T^k) - H(T^old) - C^k (T^k - T^old)]/dt

where ``C^k = dH/dT`` at ``T^k`` (a Newton linearisation of ``H``). At convergence
(``T^{k+1} = T^k``) the bracket makes the transient exactly ``(H(T^new) - H(T^old))/dt``, so the
latent heat is conserved whatever the slope; the slope only sets the convergence rate. A pure
tangent (Newton) slope, like a pure chord (Pham's apparent capacity), can make a cell hop for
ever between the kinks of ``H`` at ``T_s``/``T_l`` (measured: a 5.5-27 K two-cycle on the first
steps), so a cell whose update changes sign within a step switches to the larger of the tangent
and the chord ``(H(T^k) - H(T^old))/(T^k - T^old)`` for the rest of that step; a
larger-than-tangent slope only under-relaxes. Sweeps stop when the largest change of ``T`` in a
sweep falls below ``tol_k`` (default 1e-3 K) or after ``max_sweeps``.

The probe: voxels of ``fixed_mask`` are held at the probe temperature during ``freeze`` phases by
a large implicit source ``big * mask * (T_probe - T)`` (the method the FiPy manual recommends
for fixed values inside the domain, USAGE "Applying internal boundary conditions"). They keep
their tissue properties, so the probe surface is effectively the staircase of whole attached
voxels, not cryoneuro's sub-voxel ghost-fluid surface. During ``thaw-passive`` the penalty is
off and those voxels become ordinary tissue starting from the probe temperature (cryoneuro
instead makes the probe surface adiabatic and the probe voxels non-conducting) — the simplest
honest choice for a peer; it matters only for protocols with a passive thaw.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

#: Penalty factor: the fixed-value source is this many times the largest diagonal entry of
#: the ordinary rows (C/dt + 6 k/dx^2 + w_b), so held voxels sit within ~1e-6 of T_probe.
PENALTY = 1.0e6


def _enthalpy(t: np.ndarray, p) -> np.ndarray:
    ts, tl, cf, cu = p.t_solidus, p.t_liquidus, p.c_frozen, p.c_unfrozen
    hl = p.latent + 0.5 * (cf + cu) * (tl - ts)
    return np.where(
        t <= ts, cf * (t - ts), np.where(t < tl, hl * (t - ts) / (tl - ts), hl + cu * (t - tl))
    )


def _slope(t: np.ndarray, p) -> np.ndarray:
    ts, tl, cf, cu = p.t_solidus, p.t_liquidus, p.c_frozen, p.c_unfrozen
    hl = p.latent + 0.5 * (cf + cu) * (tl - ts)
    return np.where(t <= ts, cf, np.where(t < tl, hl / (tl - ts), cu))


def _liquid_fraction(t: np.ndarray, p) -> np.ndarray:
    return np.clip((t - p.t_solidus) / (p.t_liquidus - p.t_solidus), 0.0, 1.0)


def fipy_problem_from_case(model, protocol, probe_temperature_c: float, time_step_s: float) -> dict:
    """The peer's problem dict from a ``cryoneuro.thermal.ThermalModel`` (single homogeneous
    material, ``model.materials[0]``) and a list of ``cryoneuro.thermal.Phase``."""
    from cryoneuro.thermal.geometry import ACTIVE, INSULATED, rasterise_probes

    if len(model.materials) != 1 or np.any(model.labels != 0):
        raise ValueError("the FiPy peer handles one homogeneous material only")
    if not np.all(model.faces()) or model.wall_temperature_c is not None:
        raise ValueError("the FiPy peer handles Dirichlet body-temperature outer faces only")
    raster = rasterise_probes(model.grid, model.probes, insulated_shaft=model.insulated_shaft)
    phases = []
    for ph in protocol:
        if ph.kind not in ("freeze", "thaw-passive"):
            raise ValueError(f"the FiPy peer does not model '{ph.kind}' phases")
        phases.append((ph.kind, float(ph.duration_s)))
    return {
        "shape": tuple(int(n) for n in model.grid.shape),
        "voxel_mm": float(model.grid.voxel_mm),
        "props": model.materials[0],
        "fixed_mask": raster.kind == ACTIVE,
        "insulated_mask": raster.kind == INSULATED,
        "probe_temperature_c": float(probe_temperature_c),
        "protocol": phases,
        "body_temperature_c": float(model.body_temperature_c),
        "time_step_s": float(time_step_s),
    }


def _make_solver(solver: Any):
    """``None`` → FiPy's default class; ``"cg"`` → FiPy's (Jacobi-preconditioned) CG."""
    import fipy

    if solver is None or solver == "default":
        # FiPy's default class for the installed suite, stopping on the residual relative to
        # the initial one: with the default (RHS-relative, 1e-5) rule the penalty rows dominate
        # ||b|| and the solver returns without solving the tissue rows (measured: no iceball).
        return fipy.solvers.DefaultSolver(tolerance=1e-10, criterion="initial")
    if solver == "cg":
        return fipy.solvers.LinearPCGSolver(tolerance=1e-10, criterion="initial", iterations=2000)
    return solver


def solve_with_fipy(
    problem: dict,
    *,
    solver: Any = None,
    tol_k: float = 1e-3,
    max_sweeps: int = 30,
    slope: str = "hybrid",
    trace: bool = False,
) -> dict:
    """Solve ``problem`` (see :func:`fipy_problem_from_case`) with FiPy.

    ``solver``: ``None``/``"default"`` takes FiPy's default class for the installed suite
    (``fipy.solvers.DefaultSolver``: SciPy ``LinearLUSolver`` here) with
    ``criterion="initial", tolerance=1e-10``; ``"cg"`` FiPy's ``LinearPCGSolver`` with the same
    stopping rule (the matrix is symmetric positive definite); or any FiPy solver instance.
    SuperLU on a 3D grid is impractical beyond a few thousand cells (README.md): use ``"cg"``
    for real grids. ``slope``: the latent-heat linearisation, ``"hybrid"`` (default: tangent,
    switched per cell to max(tangent, chord) once that cell's update changes sign within a
    step), ``"max"`` (always max(tangent, chord): robust but slower), ``"tangent"`` or
    ``"chord"`` (both can cycle between the kinks of H; for experiments only).

    Returns ``temperature_c`` (final) and ``min_temperature_c`` (per-voxel minimum, sampled
    every step) as arrays of ``shape`` (indexed [x, y, z]; NaN in insulated-shaft voxels),
    ``wall_time_s``, ``steps``, ``sweeps_total``, ``max_sweeps_used``,
    ``unconverged_steps`` and ``solver`` (suite and class name).
    """
    import fipy
    from fipy import CellVariable, DiffusionTerm, Grid3D, ImplicitSourceTerm, TransientTerm

    started = time.perf_counter()
    nx, ny, nz = problem["shape"]
    dx = problem["voxel_mm"] * 1e-3
    p = problem["props"]
    t_body = float(problem["body_temperature_c"])
    t_probe = float(problem["probe_temperature_c"])
    dt = float(problem["time_step_s"])
    # FiPy numbers cells x fastest: a numpy [x, y, z] array maps with Fortran order.
    mask_np = np.asarray(problem["fixed_mask"], dtype=bool).ravel(order="F").astype(float)
    shaft = problem.get("insulated_mask")
    shaft_np = (
        np.zeros(nx * ny * nz, dtype=bool)
        if shaft is None
        else np.asarray(shaft, dtype=bool).ravel(order="F")
    )
    # Adiabatic shaft voxels: a conductivity 1e-12 of the tissue's (the harmonic face mean
    # then carries no heat to speak of, and the matrix stays non-singular) and no perfusion.
    k_scale = np.where(shaft_np, 1e-12, 1.0)
    live = ~shaft_np

    mesh = Grid3D(dx=dx, dy=dx, dz=dx, nx=nx, ny=ny, nz=nz)
    T = CellVariable(mesh=mesh, name="T", value=t_body, hasOld=True)
    T.constrain(t_body, mesh.exteriorFaces)
    kcell = CellVariable(mesh=mesh, value=p.k_unfrozen)
    cap = CellVariable(mesh=mesh, value=p.c_unfrozen)  # C^k, the transient coefficient
    perf = CellVariable(mesh=mesh, value=p.perfusion)  # f_l(T^k) w_b
    corr = CellVariable(mesh=mesh, value=0.0)  # enthalpy correction source (W/m^3)
    pen = CellVariable(mesh=mesh, value=0.0)  # big * mask while the probe is on

    big = PENALTY * (
        max(p.c_frozen, p.c_unfrozen, p.latent / (p.t_liquidus - p.t_solidus)) / dt
        + 6.0 * max(p.k_frozen, p.k_unfrozen) / dx**2
        + p.perfusion
    )
    eq = (
        TransientTerm(coeff=cap)
        == DiffusionTerm(coeff=kcell.harmonicFaceValue)
        - ImplicitSourceTerm(coeff=perf)
        + perf * t_body
        + corr
        - ImplicitSourceTerm(coeff=pen)
        + pen * t_probe
    )

    solver = _make_solver(solver)
    solver_name = f"{fipy.solvers.solver_suite}:{type(solver).__name__}"

    t_min = np.full(nx * ny * nz, t_body)
    steps = sweeps_total = max_used = unconverged = 0
    for kind, duration in problem["protocol"]:
        if kind not in ("freeze", "thaw-passive"):
            raise ValueError(f"phase kind '{kind}' is not modelled by the FiPy peer")
        pen.setValue(big * mask_np if kind == "freeze" else 0.0)
        n = max(1, round(duration / dt))
        h_step = duration / n
        for _ in range(n):
            T.updateOld()
            t_old = np.array(T.old.value)
            h_old = _enthalpy(t_old, p)
            tk = t_old.copy()
            prev_update = np.zeros_like(tk)
            damped = np.zeros(tk.shape, dtype=bool)
            converged = False
            for sweep in range(1, max_sweeps + 1):
                hk = _enthalpy(tk, p)
                dtk = tk - t_old
                with np.errstate(divide="ignore", invalid="ignore"):
                    chord = np.where(np.abs(dtk) > 1e-9, (hk - h_old) / dtk, 0.0)
                tangent = _slope(tk, p)
                if slope == "max":
                    ck = np.maximum(tangent, chord)
                elif slope == "chord":
                    ck = np.where(np.abs(dtk) > 1e-9, chord, tangent)
                elif slope == "hybrid":
                    ck = np.where(damped, np.maximum(tangent, chord), tangent)
                else:
                    ck = tangent
                cap.setValue(ck)
                corr.setValue(-(hk - h_old - ck * dtk) / h_step)
                fl = _liquid_fraction(tk, p)
                perf.setValue(fl * p.perfusion * live)
                kcell.setValue((p.k_frozen + (p.k_unfrozen - p.k_frozen) * fl) * k_scale)
                eq.sweep(var=T, dt=h_step, solver=solver)
                t_new = np.array(T.value)
                update = t_new - tk
                change = float(np.max(np.abs(update)))
                damped |= (update * prev_update < 0) & (np.abs(update) > tol_k)
                prev_update = update
                if trace:
                    print(f"step {steps} sweep {sweep} change {change:.3g} K")
                tk = t_new
                if change < tol_k:
                    converged = True
                    break
            sweeps_total += sweep
            max_used = max(max_used, sweep)
            unconverged += not converged
            steps += 1
            np.minimum(t_min, tk, out=t_min)

    shape = (nx, ny, nz)
    final = np.array(T.value)
    final[shaft_np] = np.nan
    t_min[shaft_np] = np.nan
    return {
        "temperature_c": final.reshape(shape, order="F"),
        "min_temperature_c": t_min.reshape(shape, order="F"),
        "wall_time_s": time.perf_counter() - started,
        "steps": steps,
        "sweeps_total": sweeps_total,
        "max_sweeps_used": max_used,
        "unconverged_steps": unconverged,
        "solver": solver_name,
    }


def _cli() -> None:
    """Reproduce the README figures: ``python benchmarks/peers/fipy_bioheat.py --help``."""
    import argparse
    import json
    import os

    from cryoneuro.thermal import (
        Grid,
        Phase,
        ProbeGeometry,
        ThermalModel,
        constant,
        isotherm_metrics,
        simulate,
    )
    from cryoneuro.thermal.geometry import rasterise_probes
    from cryoneuro.tissue import get_tissue

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--case",
        choices=("small", "design"),
        default="small",
        help="small: 16x16x20 mm, tip (8,8,6); design: 40x40x50 mm, tip (20,20,15)",
    )
    ap.add_argument("--voxel-mm", type=float, default=1.0)
    ap.add_argument("--freeze-s", type=float, default=None, help="default 60 (small), 300 (design)")
    ap.add_argument("--dt", type=float, nargs="+", default=[1.0], help="FiPy time step(s), s")
    ap.add_argument("--solver", default="cg", help="'default' (FiPy's) or 'cg'")
    ap.add_argument("--cryoneuro", action="store_true", help="also run cryoneuro (euler, rkl2)")
    args = ap.parse_args()
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        print(
            "note: set OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 (BLAS threads on a shared "
            "machine made FiPy's CG about 6x slower)"
        )
    size, tip = (
        ((16.0, 16.0, 20.0), (8.0, 8.0, 6.0))
        if args.case == "small"
        else ((40.0, 40.0, 50.0), (20.0, 20.0, 15.0))
    )
    freeze = args.freeze_s or (60.0 if args.case == "small" else 300.0)
    grid = Grid.from_size(size, args.voxel_mm)
    probe = ProbeGeometry(tip, (0, 0, 1), 1.5, 10.0)
    model = ThermalModel(
        grid, np.zeros(grid.shape, np.uint8), [get_tissue("muscle")], [probe], [constant(-150.0)]
    )
    protocol = [Phase("freeze", freeze)]
    raster = rasterise_probes(grid, [probe], insulated_shaft=model.insulated_shaft)

    def metrics(field):
        return {
            f"{lv:g}C": {
                k: round(v, 3)
                for k, v in isotherm_metrics(field, grid, raster.kind, probe.frame(), lv).items()
            }
            for lv in (0.0, -20.0, -40.0)
        }

    rows = []
    if args.cryoneuro:
        for scheme in ("euler", "rkl2"):
            r = simulate(model, protocol, scheme=scheme)
            rows.append(
                {
                    "solver": f"cryoneuro {scheme}",
                    "steps": r.steps,
                    "wall_time_s": round(r.wall_time_s, 2),
                    "isotherms": metrics(r.min_temperature_c),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    for dt in args.dt:
        out = solve_with_fipy(
            fipy_problem_from_case(model, protocol, -150.0, dt), solver=args.solver
        )
        rows.append(
            {
                "solver": f"fipy {out['solver']}",
                "dt_s": dt,
                "steps": out["steps"],
                "sweeps_total": out["sweeps_total"],
                "max_sweeps": out["max_sweeps_used"],
                "unconverged_steps": out["unconverged_steps"],
                "wall_time_s": round(out["wall_time_s"], 2),
                "isotherms": metrics(out["min_temperature_c"]),
            }
        )
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    _cli()
