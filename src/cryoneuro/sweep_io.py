"""Sweeps, the files: the table (Parquet and CSV), ``summary.json`` and the plot, written so
that the numbers are on disk before any figure is drawn (a plotting failure loses no results).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from cryoneuro._json import json_safe
from cryoneuro.sweep_plots import plot_plan_sweep


def write_results(
    table: pd.DataFrame,
    summary: dict[str, Any],
    out_dir: Path,
    stem: str,
    plot_name: str,
    plot: Callable[[Path], Any],
) -> dict[str, str]:
    """``<stem>.parquet``, ``<stem>.csv``, the plot and ``summary.json`` (which lists them all)."""
    files = {
        "parquet": out_dir / f"{stem}.parquet",
        "csv": out_dir / f"{stem}.csv",
        "summary": out_dir / "summary.json",
        "plot": out_dir / plot_name,
    }
    table.to_parquet(files["parquet"], index=False)
    table.to_csv(files["csv"], index=False)
    names = {k: str(v) for k, v in files.items()}
    summary["files"] = names
    # the results are on disk before any plot is drawn: a plotting failure loses no numbers
    files["summary"].write_text(json.dumps(json_safe(summary), indent=2), encoding="utf-8")
    plot(files["plot"])
    return names


def write_plan_sweep(table: pd.DataFrame, summary: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """``sweep.parquet``, ``sweep.csv``, ``summary.json``, ``uncertainty.png`` in ``out_dir``."""
    title = f"{summary.get('plan', '')}: {len(table)} samples at {summary.get('voxel_mm')} mm"
    return write_results(
        table,
        summary,
        out_dir,
        "sweep",
        "uncertainty.png",
        lambda path: plot_plan_sweep(table, path, title=title),
    )
