"""The numbers a user reads off a simulation (the ``simulate`` JSON contract, docs/contracts.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cryoneuro.thermal.isotherms import isotherm_metrics
from cryoneuro.thermal.solver import ThermalResult


def iso_key(level: float) -> str:
    return f"{level:g}"


def isotherms(
    result: ThermalResult, levels_c: Sequence[float], *, field: str = "min"
) -> dict[str, dict[str, float]]:
    """Isotherm metrics of the minimum-temperature field (the region that ever reached the
    level, which is what injury depends on) or of the final field."""
    data = result.min_temperature_c if field == "min" else result.temperature_c
    frame = result.model.probes[0].frame()
    return {
        iso_key(lv): isotherm_metrics(data, result.grid, result.raster.kind, frame, lv)
        for lv in levels_c
    }


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
        "probes": probe_summary(result),
        "points": points,
        "grid": {"shape": list(result.grid.shape), "voxel_mm": result.grid.voxel_mm},
        "solver": {
            "time_step_s": result.time_step_s,
            "scheme": "rkl2" if result.operator_evaluations != result.steps else "euler",
            "operator_evaluations": result.operator_evaluations,
            "steps": result.steps,
            "wall_time_s": round(result.wall_time_s, 3),
            "cell_updates_per_s": result.grid.n_cells
            * result.steps
            / max(result.wall_time_s, 1e-9),
        },
    }


def probe_summary(result: ThermalResult) -> list[dict[str, Any]]:
    """Per probe: how it was driven, the wall temperature it ran at, the mean cooling power."""
    devices = result.model.probe_devices or [None] * len(result.model.probes)
    walls = result.probe_wall_temperature_c
    freeze_s = sum(p.duration_s for p in result.phases if p.kind == "freeze") or 1.0
    out = []
    for i, (geom, dev) in enumerate(zip(result.model.probes, devices, strict=True)):
        w = walls[:, i] if walls is not None else np.array([np.nan])
        finite = w[np.isfinite(w)]
        out.append(
            {
                "name": geom.name,
                "drive": "held" if dev is None else "device",
                "wall_temperature_end_of_freeze_c": _last_freeze_wall(result, i),
                "wall_temperature_min_c": float(finite.min()) if finite.size else None,
                "heat_drawn_j": float(result.probe_heat_j[i]),
                "mean_cooling_during_freezes_w": float(result.probe_heat_j[i] / freeze_s),
                **(
                    {}
                    if dev is None
                    else {"gas_temperature_c": dev.gas_temperature_c, "capacity_w": dev.capacity_w}
                ),
            }
        )
    return out


def _last_freeze_wall(result: ThermalResult, probe: int) -> float | None:
    """Wall temperature at the end of the last freeze phase (None if there was none)."""
    walls = result.probe_wall_temperature_c
    if walls is None:
        return None
    t_end, end = 0.0, None
    for ph in result.phases:
        t_end += ph.duration_s
        if ph.kind == "freeze":
            end = t_end
    if end is None:
        return None
    k = int(np.searchsorted(result.point_times_s, end - 1e-9))
    k = min(k, len(result.point_times_s) - 1)
    return float(walls[k, probe])
