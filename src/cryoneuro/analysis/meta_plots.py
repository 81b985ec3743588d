"""Evidence synthesis, the figures: the forest plot and the sensitivity of the pooled change
to the assumed pre/post correlation.

Each takes ``ax`` (default a new pyplot-free Figure, :mod:`cryoneuro.plotting`) and returns the
figure; nothing here chooses a matplotlib backend or writes a file (the report does,
:mod:`cryoneuro.analysis.meta_io`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from cryoneuro.analysis.meta_spec import METHOD_LABEL, METHODS, natural


def _fmt(value: float, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f} %" if kind == "proportion" else f"{value:.2f}"


def forest_plot(res: Any, ax: Any = None) -> Any:
    """Forest plot: squares sized by random-effects weight, DL/PM diamonds, prediction interval.

    Drawn on ``ax`` (default a new pyplot-free Figure, whose margins are then set for the study
    labels); returns the figure."""
    from matplotlib.patches import Polygon
    from matplotlib.ticker import PercentFormatter

    from cryoneuro.plotting import figure_and_axes

    st = res.studies
    methods = [m for m in METHODS if m in res.pooled]
    n_rows = len(st) + len(methods) + 2
    created = ax is None
    fig, ax = figure_and_axes(ax, (9.5, 0.45 * n_rows + 1.6), layout=None)
    wcol = f"weight_{methods[0]}" if methods else None
    wmax = float(st[wcol].max()) if wcol else 1.0
    nat = res.kind == "proportion"
    for i, (_, row) in enumerate(st.iterrows()):
        yy = n_rows - 1 - i
        ax.plot([row["ci_lower"], row["ci_upper"]], [yy, yy], color="#333", lw=1.2)
        size = 40 + 260 * (row[wcol] / wmax if wcol else 0.5)
        ax.scatter([row["estimate"]], [yy], marker="s", s=size, color="#0057b8", zorder=3)
        mark = " †" if row["verified"] != "yes" else ""
        ax.text(
            -0.02,
            yy,
            f"{row['study']}{mark}  (n={row['n']})",
            transform=ax.get_yaxis_transform(),
            ha="right",
            va="center",
            fontsize=8.5,
        )
        ax.text(
            1.02,
            yy,
            f"{_fmt(row['estimate'], res.kind)} [{_fmt(row['ci_lower'], res.kind)}, "
            f"{_fmt(row['ci_upper'], res.kind)}]",
            transform=ax.get_yaxis_transform(),
            ha="left",
            va="center",
            fontsize=8,
        )
    colours = {"dl": "#c0392b", "pm": "#8e44ad", "reml": "#16a085"}
    for j, method in enumerate(methods):
        p, disp = res.pooled[method], res.display.get(method, {})
        est = natural(disp, "estimate", p.estimate)
        lo = natural(disp, "ci_lower", p.ci_lower)
        hi = natural(disp, "ci_upper", p.ci_upper)
        yy = len(methods) - j
        ax.add_patch(
            Polygon(
                [[lo, yy], [est, yy + 0.3], [hi, yy], [est, yy - 0.3]],
                closed=True,
                color=colours[method],
                zorder=3,
            )
        )
        pil = natural(disp, "pi_lower", p.pi_lower)
        piu = natural(disp, "pi_upper", p.pi_upper)
        if not math.isnan(pil):
            ax.plot([pil, piu], [yy - 0.42, yy - 0.42], color=colours[method], lw=2.2, alpha=0.5)
        ax.text(
            -0.02,
            yy,
            f"{METHOD_LABEL[method]} (k={p.k})",
            transform=ax.get_yaxis_transform(),
            ha="right",
            va="center",
            fontsize=8.5,
            weight="bold",
        )
        ax.text(
            1.02,
            yy,
            f"{_fmt(est, res.kind)} [{_fmt(lo, res.kind)}, {_fmt(hi, res.kind)}]",
            transform=ax.get_yaxis_transform(),
            ha="left",
            va="center",
            fontsize=8,
            weight="bold",
        )
    if res.kind in ("change", "difference"):
        ax.axvline(0, color="#888", lw=0.8, ls="--")
    ax.set_ylim(0.2, n_rows - 0.3)
    ax.set_yticks([])
    if res.axis_label:
        ax.set_xlabel(res.axis_label)
    else:
        ax.set_xlabel(
            "proportion"
            if nat
            else "mean change, points (negative = less pain)"
            if res.kind == "change"
            else "difference, points (negative favours cryoablation)"
        )
    if res.kind == "ratio":
        ax.set_xscale("log")
        ax.axvline(1.0, color="#888", lw=0.8, ls="--")
    if nat:
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title(res.label, fontsize=10)
    het = "; ".join(
        f"{METHOD_LABEL[m]}: τ² = {res.pooled[m].tau2:.3g}, I² = {100 * res.pooled[m].i2:.0f} %"
        for m in methods
    )
    if methods:
        q = res.pooled[methods[0]]
        pi = (
            "bar under a diamond = 95 % prediction interval"
            if q.k >= 3
            else "no prediction interval (k < 3)"
        )
        dagger = (
            "; † = not verified against the abstract" if (st["verified"] != "yes").any() else ""
        )
        note = f"{het}; Q = {q.q:.2f} (df {q.q_df}, p = {q.q_p:.2g}); {pi}{dagger}"
        if created:
            fig.text(0.02, 0.01, note, fontsize=7.5, color="#444")
        else:  # the caller's figure: the note under this Axes, its layout left alone
            ax.annotate(
                note,
                xy=(0, 0),
                xycoords="axes fraction",
                xytext=(0, -28),
                textcoords="offset points",
                va="top",
                fontsize=7.5,
                color="#444",
            )
    if created:
        fig.subplots_adjust(left=0.3, right=0.78, bottom=0.12 + 0.6 / n_rows)
    return fig


def sensitivity_plot(
    sweep: pd.DataFrame, label: str, r_marks: Sequence[float], ax: Any = None
) -> Any:
    """Pooled mean change (with 95 % CI band) against the assumed pre/post correlation r, on
    ``ax`` (default a new pyplot-free Figure); returns the figure."""
    from cryoneuro.plotting import figure_and_axes

    fig, ax = figure_and_axes(ax, (7, 3.8), layout=None)
    colours = {"dl": "#c0392b", "pm": "#8e44ad", "reml": "#16a085"}
    for method in [m for m in METHODS if f"{m}_estimate" in sweep.columns]:
        ax.plot(
            sweep["r"],
            sweep[f"{method}_estimate"],
            color=colours[method],
            label=METHOD_LABEL[method],
        )
        ax.fill_between(
            sweep["r"],
            sweep[f"{method}_ci_lower"],
            sweep[f"{method}_ci_upper"],
            color=colours[method],
            alpha=0.12,
        )
    for r in r_marks:
        ax.axvline(r, color="#999", lw=0.6, ls=":")
    ax.set_xlabel("assumed pre/post correlation r")
    ax.set_ylabel("pooled mean change, points")
    ax.legend(fontsize=8)
    ax.set_title(f"{label}: sensitivity to r", fontsize=10)
    return fig
