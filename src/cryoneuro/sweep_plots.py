"""Sweeps, the figures: isotherm diameters against each varied input, and a plan sweep's
coverage, skin and nerve histograms with P(block) against the position error.

Each ``draw_*`` takes Axes (default a new pyplot-free Figure, :mod:`cryoneuro.plotting`) and
returns the figure; each ``plot_*`` writes that figure to a file. Nothing here chooses a
matplotlib backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryoneuro.sweep_stats import block_by_error


def draw_sweep(table: pd.DataFrame, variations: Sequence[Any], axes: Any = None) -> Any:
    """Histograms of the isotherm diameters and their scatter against each varied input.

    ``axes``: a (diameters × (1 + variations)) array of Axes (default a new pyplot-free
    Figure). Returns the figure."""
    from matplotlib.figure import Figure

    outputs = [c for c in table.columns if c.endswith("_diameter_mm")]
    shape = (len(outputs), 1 + len(variations))
    if axes is None:
        fig = Figure(figsize=(3.2 * shape[1], 2.6 * shape[0]), layout="constrained")
        axes = fig.subplots(*shape, squeeze=False)
    else:
        axes = np.asarray(axes, dtype=object).reshape(shape)
        fig = axes[0, 0].get_figure()
    for r, out in enumerate(outputs):
        axes[r, 0].hist(table[out], bins=20, color="#4c72b0")
        axes[r, 0].set_xlabel(out)
        for c, v in enumerate(variations, start=1):
            axes[r, c].scatter(table[v.path], table[out], s=8, alpha=0.7)
            axes[r, c].set_xlabel(v.path)
            axes[r, c].set_ylabel(out)
    fig.suptitle(f"{len(table)} samples")
    return fig


def plot_sweep(table: pd.DataFrame, variations: Sequence[Any], path: Path) -> Path:
    """:func:`draw_sweep` written to ``path`` (PNG, 100 dpi)."""
    draw_sweep(table, variations).savefig(path, dpi=100)
    return path


def draw_plan_sweep(table: pd.DataFrame, axes: Any = None, title: str = "") -> Any:
    """Histograms (target coverage, skin minimum, warmest nerve section) and P(block) against
    the position-error magnitude (binned, Wilson 95 % error bars), on ``axes`` (2 × 2 Axes;
    default a new pyplot-free Figure). Returns the figure."""
    from matplotlib.figure import Figure

    if axes is None:
        fig = Figure(figsize=(10, 7.2), layout="constrained")
        axes = fig.subplots(2, 2)
    else:
        axes = np.asarray(axes, dtype=object).reshape(2, 2)
        fig = axes[0, 0].get_figure()
    ax = axes[0, 0]
    ax.hist(table["coverage_20"], bins=20, range=(0, 1), alpha=0.7, label="≤ −20 °C")
    ax.hist(table["coverage_40"], bins=20, range=(0, 1), alpha=0.7, label="≤ −40 °C")
    ax.set(xlabel="fraction of the target", ylabel="samples", title="target coverage")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    ax.hist(table["skin_min_c"], bins=20, color="#c44e52", alpha=0.8)
    ax.axvline(0.0, color="k", ls="--", lw=1, label="limit 0 °C")
    ax.set(xlabel="skin minimum temperature (°C)", ylabel="samples", title="skin safety")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    ax.hist(table["warmest_min_c"], bins=20, color="#55a868", alpha=0.8)
    ax.axvline(-20.0, color="k", ls="--", lw=1, label="axonotmesis −20 °C")
    ax.set(xlabel="warmest nerve section, minimum (°C)", ylabel="samples", title="nerve block")
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    rows = block_by_error(table)
    if rows:
        mid = [
            (r["error_mm_from"] + min(r["error_mm_to"], r["error_mm_from"] + 1.0)) / 2 for r in rows
        ]
        p = np.array([r["p_block"] for r in rows])
        ci = np.array([r["ci95"] for r in rows])
        ax.errorbar(
            mid,
            p,
            yerr=[p - ci[:, 0], ci[:, 1] - p],
            fmt="o-",
            capsize=3,
            label="binned, Wilson 95 %",
        )
    jitter = (np.random.default_rng(0).random(len(table)) - 0.5) * 0.06
    ax.scatter(
        table["position_error_mm"],
        table["complete_block"].astype(float) + jitter,
        s=6,
        alpha=0.4,
        color="grey",
        label="samples (1 = block)",
    )
    ax.set(
        xlabel="probe position error |Δ| (mm)",
        ylabel="P(complete block)",
        ylim=(-0.1, 1.1),
        title="block against position error",
    )
    ax.legend(fontsize=8)
    fig.suptitle(title or f"{len(table)} samples")
    return fig


def plot_plan_sweep(table: pd.DataFrame, path: Path, title: str = "") -> Path:
    """:func:`draw_plan_sweep` written to ``path`` (PNG, 100 dpi)."""
    draw_plan_sweep(table, title=title).savefig(path, dpi=100)
    return path
