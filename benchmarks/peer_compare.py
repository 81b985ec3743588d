"""Side-by-side with a peer at equal accuracy: cryoneuro and FiPy on the reference case
(docs/contracts.md).

Both solve the same problem on the same voxels; accuracy is measured against the independent
axisymmetric solver (converged to < 0.1 mm), so "equal accuracy" is checked, not assumed. The
ratio reported is FiPy wall time / cryoneuro wall time. FiPy uses its CG solver (its default
LU does not finish a 3D grid of this size; benchmarks/peers/README.md).
"""

from __future__ import annotations

import os

import numpy as np

from cryoneuro.thermal import (
    Grid,
    Phase,
    ProbeGeometry,
    ThermalModel,
    constant,
    isotherm_metrics,
    simulate,
)
from cryoneuro.thermal.axisymmetric import solve_axisymmetric
from cryoneuro.thermal.geometry import rasterise_probes
from cryoneuro.thermal.summary import isotherms
from cryoneuro.tissue import get_tissue

LEVELS = ("0", "-20", "-40")


def _errors(got: dict, ref: dict) -> float:
    return max(
        max(
            abs(got[lv]["diameter_mm"] - ref[lv]["diameter_mm"]),
            abs(got[lv]["length_mm"] - ref[lv]["length_mm"]),
        )
        for lv in LEVELS
    )


def compare_with_peer(quick: bool = False, voxel_mm: float = 1.0) -> dict:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from peers.fipy_bioheat import fipy_problem_from_case, solve_with_fipy

    size, tip, duration = (
        ((16.0, 16.0, 20.0), (8.0, 8.0, 5.0), 60.0)
        if quick
        else ((40.0, 40.0, 50.0), (20.0, 20.0, 15.0), 300.0)
    )
    tissue = get_tissue("muscle")
    grid = Grid.from_size(size, voxel_mm)
    probe = ProbeGeometry(tip, (0, 0, 1), 1.5, 10.0)
    model = ThermalModel(
        grid, np.zeros(grid.shape, np.uint8), [tissue], [probe], [constant(-150.0)]
    )
    protocol = [Phase("freeze", duration)]

    ref = solve_axisymmetric(
        tissue,
        probe_diameter_mm=1.5,
        active_length_mm=10.0,
        tip_temperature_c=-150.0,
        protocol=(("freeze", duration),),
        radius_mm=size[0] / 2,
        z_extent_mm=(0.0, size[2]),
        tip_z_mm=tip[2],
    )
    ref_iso = {lv: ref.isotherms_minimum[lv] for lv in LEVELS}

    ours = simulate(model, protocol)
    ours_iso = isotherms(ours, [0, -20, -40])

    problem = fipy_problem_from_case(model, protocol, probe_temperature_c=-150.0, time_step_s=1.0)
    peer = solve_with_fipy(problem, solver="cg")
    raster = rasterise_probes(grid, [probe])
    peer_iso = {
        f"{lv:g}": isotherm_metrics(peer["min_temperature_c"], grid, raster.kind, probe.frame(), lv)
        for lv in (0.0, -20.0, -40.0)
    }

    rows = {
        "cryoneuro (rkl2, default steps)": {
            "wall_time_s": ours.wall_time_s,
            "max_error_mm": _errors(ours_iso, ref_iso),
            "isotherms": ours_iso,
        },
        f"FiPy {peer['solver']} (backward Euler 1 s, {peer['sweeps_total']} sweeps)": {
            "wall_time_s": peer["wall_time_s"],
            "max_error_mm": _errors(peer_iso, ref_iso),
            "isotherms": peer_iso,
        },
    }
    ratio = peer["wall_time_s"] / ours.wall_time_s
    md = [
        f"Peer comparison: reference case of docs/contracts.md ({duration:g} s freeze) on "
        f"{list(grid.shape)} "
        f"voxels of "
        f"{voxel_mm} mm; reference: axisymmetric solver (0 C: {ref_iso['0']['diameter_mm']:.2f} x "
        f"{ref_iso['0']['length_mm']:.2f} mm)",
        "",
        "| solver | wall (s) | max isotherm error vs reference (mm) |",
        "|---|---|---|",
    ]
    for label, r in rows.items():
        md.append(f"| {label} | {r['wall_time_s']:.1f} | {r['max_error_mm']:.2f} |")
    md.append(f"\nFiPy / cryoneuro wall-time ratio at this accuracy: **{ratio:.0f}x**")
    return {
        "rows": rows,
        "reference": ref_iso,
        "ratio_peer_over_cryoneuro": ratio,
        "markdown": "\n".join(md),
    }
