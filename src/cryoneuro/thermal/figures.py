"""Pictures of a simulation: isotherms on slices along and across the probe, point histories.

Slices are sampled in the frame of the first probe (trilinear interpolation), so an oblique
probe is shown as straight as an axis-aligned one.

Figures are built as :class:`matplotlib.figure.Figure` objects without pyplot, so drawing them
never chooses or switches a backend (a notebook keeps its inline backend; a headless run needs no
display) and leaves no open pyplot figure behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle
from scipy.ndimage import map_coordinates

from cryoneuro.thermal.solver import ThermalResult

ISO_COLOURS = {0.0: "#2b8cbe", -20.0: "#7b3294", -40.0: "#d7191c"}


def sample_plane(
    field: np.ndarray,
    result: ThermalResult,
    origin_mm: np.ndarray,
    a_axis: np.ndarray,
    b_axis: np.ndarray,
    a_mm: np.ndarray,
    b_mm: np.ndarray,
) -> np.ndarray:
    """Values of ``field`` on the plane ``origin + a * a_axis + b * b_axis`` (shape (nb, na))."""
    grid = result.grid
    A, B = np.meshgrid(a_mm, b_mm)
    pts = origin_mm[None, None, :] + A[..., None] * a_axis + B[..., None] * b_axis
    idx = (pts - np.asarray(grid.origin_mm)) / grid.voxel_mm - 0.5
    filled = np.where(np.isfinite(field), field, result.model.body_temperature_c)
    vals = map_coordinates(filled, idx.reshape(-1, 3).T, order=1, mode="constant", cval=np.nan)
    return vals.reshape(A.shape)


def _plane_axes(result: ThermalResult) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    probe = result.model.probes[0]
    frame = probe.frame()
    half = 0.5 * float(np.linalg.norm(result.grid.size_mm))
    return frame[0], frame[1], frame[2], half


def draw_slice(
    result: ThermalResult,
    ax: Axes | None = None,
    *,
    section: str = "along",
    field: str = "min",
    isotherms_c: Sequence[float] = (0.0, -20.0, -40.0),
) -> Axes:
    """One plane through the first probe: ``section="along"`` contains its axis (u–w plane),
    ``"across"`` is the cross-section at mid active length (u–v plane); colour = temperature
    (``field``: ``"min"`` reached, or ``"final"``, °C), lines = isotherms, the probe drawn in.

    ``ax``: where to draw (default a new pyplot-free Figure). Returns the Axes."""
    from cryoneuro.plotting import figure_and_axes

    if section not in ("along", "across"):
        raise ValueError(f"section must be 'along' or 'across' (got {section!r})")
    data = result.min_temperature_c if field == "min" else result.temperature_c
    u, v, w, half = _plane_axes(result)
    probe = result.model.probes[0]
    tip = np.asarray(probe.tip_mm, dtype=float)
    h = result.grid.voxel_mm / 2
    a = np.arange(-half, half + h, h)
    if section == "along":
        img = sample_plane(data, result, tip, u, w, a, a)
        label, ylabel = "along the probe (u–w plane)", "w: along probe from tip (mm)"
    else:
        mid = tip + 0.5 * probe.active_length_mm * w
        img = sample_plane(data, result, mid, u, v, a, a)
        label, ylabel = "across the probe, mid active length (u–v plane)", "v (mm)"
    cold = float(np.nanmin(data)) if np.isfinite(data).any() else -150.0
    vmin, vmax = min(cold, -40.0), result.model.body_temperature_c
    _, ax = figure_and_axes(ax, (6, 5.2))
    finite = np.isfinite(img)
    rows, cols = np.nonzero(finite)
    ax.imshow(
        img,
        origin="lower",
        extent=(a[0], a[-1], a[0], a[-1]),
        cmap="RdYlBu_r",
        vmin=vmin,
        vmax=vmax,
        interpolation="bilinear",
    )
    levels = sorted(isotherms_c)
    cs = ax.contour(
        a,
        a,
        np.where(finite, img, vmax),
        levels=levels,
        colors=[ISO_COLOURS.get(float(lv), "k") for lv in levels],
        linewidths=1.6,
    )
    ax.clabel(cs, fmt=lambda x: f"{x:g} °C", fontsize=8)
    if len(rows):
        ax.set_xlim(a[cols.min()], a[cols.max()])
        ax.set_ylim(a[rows.min()], a[rows.max()])
    ax.set_title(label, fontsize=10)
    ax.set_xlabel("u (mm)")
    ax.set_ylabel(ylabel)
    ax.set_aspect("equal")
    if section == "along":
        _draw_probe(ax, probe)
    else:
        ax.add_patch(Circle((0, 0), probe.radius_mm, color="0.2"))
    return ax


def draw_slices(
    result: ThermalResult,
    axes: Sequence[Axes] | None = None,
    *,
    field: str = "min",
    isotherms_c: Sequence[float] = (0.0, -20.0, -40.0),
    title: str | None = None,
) -> Figure:
    """Two panels (:func:`draw_slice`): the plane containing the probe axis, and the
    cross-section at the middle of the active length; colour = temperature (minimum reached, or
    final), lines = isotherms; one colour bar.

    ``axes``: two Axes to draw on (default a new pyplot-free Figure). Returns the figure."""
    from cryoneuro.plotting import figure_and_axes_row

    fig, axes = figure_and_axes_row(axes, 2, (11, 5.2))
    for ax, section in zip(axes, ("along", "across"), strict=True):
        draw_slice(result, ax, section=section, field=field, isotherms_c=isotherms_c)
    fig.colorbar(
        axes[-1].images[0],
        ax=axes,
        shrink=0.85,
        label=("minimum temperature reached" if field == "min" else "final temperature") + " (°C)",
    )
    fig.suptitle(
        title or f"Isotherms after {sum(p.duration_s for p in result.phases):g} s", fontsize=12
    )
    return fig


def plot_slices(
    result: ThermalResult,
    path: str | Path,
    *,
    field: str = "min",
    isotherms_c: Sequence[float] = (0.0, -20.0, -40.0),
    title: str | None = None,
) -> Path:
    """:func:`draw_slices` written to ``path`` (PNG, 110 dpi)."""
    fig = draw_slices(result, field=field, isotherms_c=isotherms_c, title=title)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def _draw_probe(ax, probe) -> None:
    r, length = probe.radius_mm, probe.active_length_mm
    ax.add_patch(Rectangle((-r, r), 2 * r, length - r, color="0.15", zorder=3))
    ax.add_patch(Circle((0, r), r, color="0.15", zorder=3))
    ax.add_patch(
        Rectangle((-r, length), 2 * r, 500, facecolor="0.75", edgecolor="0.4", hatch="//", zorder=3)
    )


def draw_point_histories(result: ThermalResult, ax: Axes | None = None) -> Axes | None:
    """Temperature against time at the named points (a thermocouple view), on ``ax`` (default
    a new pyplot-free Figure). Returns the Axes, or None when the case names no points."""
    from cryoneuro.plotting import figure_and_axes

    if not result.point_names:
        return None
    _, ax = figure_and_axes(ax, (7.5, 4.2))
    for n, name in enumerate(result.point_names):
        ax.plot(result.point_times_s, result.point_temperatures_c[:, n], label=name)
    t0 = 0.0
    for phase in result.phases:
        if phase.kind != "freeze":
            ax.axvspan(t0, t0 + phase.duration_s, color="0.92", zorder=0)
        t0 += phase.duration_s
    for level, colour in ISO_COLOURS.items():
        ax.axhline(level, color=colour, lw=0.8, ls="--")
    ax.set_xlabel("time (s)  — shaded: thaw")
    ax.set_ylabel("temperature (°C)")
    ax.legend(fontsize=8)
    return ax


def plot_point_histories(result: ThermalResult, path: str | Path) -> Path | None:
    """:func:`draw_point_histories` written to ``path`` (PNG, 110 dpi); None without points."""
    ax = draw_point_histories(result)
    if ax is None:
        return None
    path = Path(path)
    cast(Figure, ax.get_figure()).savefig(path, dpi=110)
    return path
