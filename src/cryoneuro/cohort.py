"""Cohort re-simulation: re-run every stored plan with the current model and compare.

Why: plans are stored with the procedure (registry) or as ``plan.json`` files, each made by some
software version. When the thermal engine, the tissue library or the injury rules change, the
question is which stored predictions would change — a block that is no longer complete, a skin
margin that shrank, a different predicted relief. Each plan is replayed unperturbed
(:func:`cryoneuro.planning.replay.replay`) on its own grid (``plan.inputs["voxel_mm"]``, 0.5 mm
for the planner's plans) unless a grid is forced, as one independent Dask task (shared machinery:
:func:`cryoneuro.parallel.run_tasks`), and one row per plan records then / now / difference.

A plan that cannot be replayed (not a phantom plan, unknown phantom) still gets its row, with the
reason in ``status``; a file that is not a plan at all is listed under ``skipped``. This module
does not import the registry: the CLI reads the registry and hands plans over as JSON text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cryoneuro import __version__
from cryoneuro.errors import CryoneuroError, InputError

#: Compared quantities: (column stem, key of ReplayMetrics / stored_metrics).
COMPARED = (
    "complete_block",
    "warmest_min_c",
    "skin_min_c",
    "relief_median_days",
    "coverage_20",
    "blocked_length_mm",
    "neurotmesis_risk",
)
#: A numeric difference beyond these counts as a changed prediction (K, K, days, fraction, mm).
CHANGE_TOLERANCE = {
    "warmest_min_c": 0.5,
    "skin_min_c": 0.5,
    "relief_median_days": 1.0,
    "coverage_20": 0.02,
    "blocked_length_mm": 0.5,
}


@dataclass(frozen=True)
class StoredPlan:
    """One stored plan: where it came from and its JSON text."""

    source: str  # file path, or "procedure/<id>"
    plan_json: str
    procedure_id: int | None = None
    procedure_date: str | None = None


def plans_from_folder(root: str | Path) -> tuple[list[StoredPlan], list[dict[str, str]]]:
    """Every ``*.json`` under ``root`` (recursively) that is a cryoneuro Plan; others are skipped
    (returned with the reason) so a results folder can be pointed at as it is."""
    from cryoneuro.planning.plan import Plan

    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such folder or file")
    files = [root] if root.is_file() else sorted(root.rglob("*.json"))
    plans, skipped = [], []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
            Plan.from_json(text)
        except (OSError, UnicodeDecodeError, CryoneuroError) as exc:
            skipped.append(
                {
                    "source": str(f),
                    "reason": str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                }
            )
            continue
        plans.append(StoredPlan(str(f), text))
    return plans, skipped


def resimulate_one(item: StoredPlan, voxel_mm: float | None = None) -> dict[str, Any]:
    """Replay one stored plan (on a Dask worker: one Numba thread) and compare with what it
    stored."""
    import numba

    from cryoneuro.planning.plan import Plan
    from cryoneuro.planning.replay import VOXEL_CHOICES_MM, replay, stored_metrics

    numba.set_num_threads(1)
    row: dict[str, Any] = {
        "source": item.source,
        "procedure_id": item.procedure_id,
        "procedure_date": item.procedure_date,
    }
    try:
        plan = Plan.from_json(item.plan_json)
    except CryoneuroError as exc:
        return {**row, "status": f"error: {exc}"}
    own = plan.inputs.get("voxel_mm")
    voxel = voxel_mm or (own if any(math.isclose(own or 0, v) for v in VOXEL_CHOICES_MM) else 0.5)
    row.update(
        {
            "case": plan.case,
            "phantom": plan.inputs.get("phantom"),
            "software_then": plan.software_version,
            "software_now": __version__,
            "created_at": plan.created_at.isoformat(),
            "voxel_mm": float(voxel),
        }
    )
    then = stored_metrics(plan)
    try:
        now = replay(plan, voxel_mm=voxel).as_dict()
    except CryoneuroError as exc:
        return {
            **row,
            **{f"{k}_then": then[k] for k in COMPARED},
            "status": f"error: {str(exc).splitlines()[0]}",
        }
    changed = []
    for key in COMPARED:
        a, b = then[key], now[key]
        row[f"{key}_then"], row[f"{key}_now"] = a, b
        if isinstance(b, bool) or key in ("complete_block", "neurotmesis_risk"):
            if a is not None and bool(a) != bool(b):
                changed.append(key)
            continue
        diff = (b - a) if a is not None and b is not None else math.nan
        row[f"{key}_diff"] = diff
        both_nan = a is not None and math.isnan(a) and math.isnan(b)
        if not both_nan and not (abs(diff) <= CHANGE_TOLERANCE.get(key, 0.0)):
            changed.append(key)
    row["changed"] = ", ".join(changed)
    row["status"] = "ok"
    return row


def resimulate(
    items: Sequence[StoredPlan],
    *,
    voxel_mm: float | None = None,
    scheduler: str | None = None,
    workers: int = 2,
    client: Any = None,
    out_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Re-simulate every plan on Dask; one row per plan, in input order."""
    from cryoneuro.parallel import run_tasks
    from cryoneuro.planning.replay import check_voxel

    if voxel_mm is not None:
        check_voxel(voxel_mm)
    if not items:
        raise InputError("no stored plans found")
    rows = run_tasks(
        resimulate_one,
        [(it, voxel_mm) for it in items],
        name="cohort",
        scheduler=scheduler,
        workers=workers,
        client=client,
        row=lambda i, r: r,
        partial=out_dir / "partial.csv" if out_dir else None,
        progress=progress,
    )
    table = pd.DataFrame(rows)
    for col in [c for c in table.columns if c.endswith(("_then", "_now"))]:
        if col.startswith(("complete_block", "neurotmesis_risk")):
            table[col] = table[col].astype("boolean")
    return table


def summarise(table: pd.DataFrame, skipped: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """Counts of plans replayed / failed / changed, and the largest differences."""
    ok = table[table["status"] == "ok"] if "status" in table else table.iloc[0:0]

    def col_stats(col: str) -> dict[str, float | None]:
        x = (
            pd.to_numeric(ok[col], errors="coerce").dropna()
            if col in ok
            else pd.Series(dtype=float)
        )
        if x.empty:
            return {"mean": None, "max_abs": None}
        return {"mean": float(x.mean()), "max_abs": float(x.abs().max())}

    block_changed = (
        int((ok["complete_block_then"] != ok["complete_block_now"]).fillna(False).sum())
        if len(ok)
        else 0
    )
    return {
        "software_now": __version__,
        "plans": len(table),
        "replayed": len(ok),
        "errors": int(len(table) - len(ok)),
        "changed": int((ok["changed"] != "").sum()) if len(ok) else 0,
        "block_changed": block_changed,
        "complete_block_then": int(ok["complete_block_then"].fillna(False).astype(bool).sum())
        if len(ok)
        else 0,
        "complete_block_now": int(ok["complete_block_now"].fillna(False).astype(bool).sum())
        if len(ok)
        else 0,
        "differences": {k: col_stats(f"{k}_diff") for k in CHANGE_TOLERANCE},
        "tolerances": CHANGE_TOLERANCE,
        "software_then": {str(k): int(v) for k, v in ok["software_then"].value_counts().items()}
        if len(ok)
        else {},
        "error_rows": [
            {"source": r["source"], "status": r["status"]}
            for _, r in table.iterrows()
            if r["status"] != "ok"
        ],
        "skipped": skipped or [],
    }


def draw_then_vs_now(table: pd.DataFrame, axes: Any = None) -> Any:
    """Stored (then) against re-simulated (now): warmest nerve section, skin minimum, relief;
    on ``axes`` (three Axes; default a new pyplot-free Figure). Returns the figure."""
    from cryoneuro.plotting import figure_and_axes_row

    ok = table[table["status"] == "ok"]
    fig, axes = figure_and_axes_row(axes, 3, (12, 4))
    for ax, (key, label) in zip(
        axes,
        (
            ("warmest_min_c", "warmest nerve section (°C)"),
            ("skin_min_c", "skin minimum (°C)"),
            ("relief_median_days", "predicted relief, median (days)"),
        ),
        strict=True,
    ):
        a = pd.to_numeric(ok.get(f"{key}_then"), errors="coerce")
        b = pd.to_numeric(ok.get(f"{key}_now"), errors="coerce")
        if a is not None and len(ok):
            changed = (
                (ok["complete_block_then"] != ok["complete_block_now"])
                .fillna(False)
                .to_numpy(dtype=bool)
            )
            ax.scatter(a[~changed], b[~changed], s=20, label="same block verdict")
            if changed.any():
                ax.scatter(
                    a[changed],
                    b[changed],
                    s=30,
                    marker="x",
                    color="tab:red",
                    label="block verdict changed",
                )
            both = pd.concat([a, b]).dropna()
            if not both.empty:
                lo, hi = float(both.min()), float(both.max())
                pad = max(1.0, 0.05 * (hi - lo))
                ax.plot(
                    [lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8, label="then = now"
                )
        ax.set(xlabel=f"stored: {label}", ylabel=f"now ({__version__})", title=label)
        ax.legend(fontsize=7)
    fig.suptitle(f"{len(ok)} plans re-simulated")
    return fig


def plot_then_vs_now(table: pd.DataFrame, path: Path) -> Path:
    """:func:`draw_then_vs_now` written to ``path`` (PNG, 100 dpi)."""
    draw_then_vs_now(table).savefig(path, dpi=100)
    return path


def write_outputs(table: pd.DataFrame, summary: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """``cohort.parquet``, ``cohort.csv``, ``summary.json``, ``then_vs_now.png``."""
    from cryoneuro.sweep_io import write_results

    return write_results(
        table,
        summary,
        out_dir,
        "cohort",
        "then_vs_now.png",
        lambda path: plot_then_vs_now(table, path),
    )
