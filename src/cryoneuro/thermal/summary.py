"""The numbers a user reads off a simulation (the ``simulate`` JSON contract, design.md §3)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cryoneuro.thermal.isotherms import isotherm_metrics
from cryoneuro.thermal.solver import ThermalResult


def iso_key(level: float) -> str:
    return f"{level:g}"


def isotherms(result: ThermalResult, levels_c: Sequence[float], *, field: str = "min") -> dict[str, dict[str, float]]:
    """Isotherm metrics of the minimum-temperature field (the region that ever reached the
    level, which is what injury depends on) or of the final field."""
    data = result.min_temperature_c if field == "min" else result.temperature_c
    frame = result.model.probes[0].frame()
    return {iso_key(lv): isotherm_metrics(data, result.grid, result.raster.kind, frame, lv)
            for lv in levels_c}


def summarise(result: ThermalResult, levels_c: Sequence[float]) -> dict[str, Any]:
    tissue = result.tissue_mask
    tmin = result.min_temperature_c[tissue]
    points = {}
    for n, name in enumerate(result.point_names):
        trace = result.point_temperatures_c[:, n]
        points[name] = {
            "final_temperature_c": float(trace[-1]),
            "min_temperature_c": float(trace.min()),
            "seconds_at_or_below": {
                iso_key(lv): float(np.sum(np.diff(result.point_times_s)[trace[1:] <= lv]))
                for lv in levels_c
            },
        }
    return {
        "isotherms": isotherms(result, levels_c, field="min"),
        "final_isotherms": isotherms(result, levels_c, field="final"),
        "min_temperature_c": float(tmin.min()) if tmin.size else None,
        "probe_heat_j": [float(q) for q in result.probe_heat_j],
        "points": points,
        "grid": {"shape": list(result.grid.shape), "voxel_mm": result.grid.voxel_mm},
        "solver": {
            "time_step_s": result.time_step_s,
            "scheme": "rkl2" if result.operator_evaluations != result.steps else "euler",
            "operator_evaluations": result.operator_evaluations,
            "steps": result.steps,
            "wall_time_s": round(result.wall_time_s, 3),
            "cell_updates_per_s": result.grid.n_cells * result.steps / max(result.wall_time_s, 1e-9),
        },
    }
