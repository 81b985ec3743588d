"""Plan sweeps, the statistics: probabilities with Wilson 95 % intervals, distributions, and
P(complete block) against the probe position error.

Why apart from :mod:`cryoneuro.sweep` (which samples and runs): these functions take the sweep's
table in memory, so they are tested on hand-made tables (``tests/test_sweep_small.py``) without
a simulation, and the multi-fidelity sweep summarises its own table with them.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import pandas as pd

#: Bins of the position-error magnitude (mm) for P(block) against error.
ERROR_BINS_MM = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, math.inf)


def _wilson(k: int, n: int) -> list[float]:
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    # the Wilson interval always contains k/n; at k = n (or 0) its bound equals p up to rounding
    # (0.9999999999999998 < 1.0), which made error bars negative: clamp the round-off only
    p = k / n
    return [float(min(lo, p)), float(max(hi, p))]


def _distribution(x: pd.Series) -> dict[str, float | None]:
    x = pd.to_numeric(x, errors="coerce").dropna()
    if x.empty:
        return {"n": 0, "mean": None, "p05": None, "p50": None, "p95": None}
    return {
        "n": len(x),
        "mean": float(x.mean()),
        "p05": float(x.quantile(0.05)),
        "p50": float(x.quantile(0.5)),
        "p95": float(x.quantile(0.95)),
    }


def block_by_error(table: pd.DataFrame) -> list[dict[str, Any]]:
    """P(complete block) per bin of position-error magnitude, with Wilson 95 % intervals."""
    out = []
    bins = pd.cut(table["position_error_mm"], ERROR_BINS_MM, right=False)
    for interval, grp in table.groupby(bins, observed=True):
        k, n = int(grp["complete_block"].sum()), len(grp)
        out.append(
            {
                "error_mm_from": float(interval.left),
                "error_mm_to": float(interval.right),
                "n": n,
                "p_block": k / n,
                "ci95": _wilson(k, n),
            }
        )
    return out


def summarise_plan_sweep(
    table: pd.DataFrame,
    *,
    spec: Any,
    seed: int,
    voxel_mm: float,
    nominal: dict[str, Any] | None = None,
    plan_name: str = "",
) -> dict[str, Any]:
    """Probabilities (Wilson 95 % CI, statsmodels ``proportion_confint(method="wilson")``) and
    distributions (mean, 5th/50th/95th percentiles) of a plan sweep."""
    n = len(table)
    probs = {}
    for key, col in (
        ("complete_block", "complete_block"),
        ("skin_safe", "skin_safe"),
        ("neurotmesis_risk", "neurotmesis_risk"),
    ):
        k = int(table[col].astype(bool).sum())
        probs[key] = {
            "p": k / n if n else None,
            "k": k,
            "n": n,
            "ci95": _wilson(k, n) if n else None,
        }
    return {
        "plan": plan_name,
        "samples": n,
        "seed": seed,
        "voxel_mm": voxel_mm,
        "model": "1 mm: the planner's screening grid (fast reduced model)"
        if voxel_mm >= 1.0
        else "0.5 mm: the planner's confirmation grid",
        "uncertainty": asdict(spec),
        "p_complete_block": probs["complete_block"],
        "p_skin_safe": probs["skin_safe"],
        "p_neurotmesis_risk": probs["neurotmesis_risk"],
        "distributions": {
            c: _distribution(table[c])
            for c in (
                "coverage_20",
                "coverage_40",
                "skin_min_c",
                "warmest_min_c",
                "blocked_length_mm",
                "artery_min_c",
                "relief_median_days",
                "position_error_mm",
            )
        },
        "block_by_position_error": block_by_error(table),
        "nominal": nominal,
    }
