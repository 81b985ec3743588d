"""Plan pictures: the patient's image with the iceball and the structures at risk, along and
across the probe — what a radiologist checks before freezing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from scipy.ndimage import map_coordinates

from cryoneuro.thermal.figures import ISO_COLOURS
from cryoneuro.thermal.solver import ThermalResult

#: Outline colours of the structures drawn on the image. Each differs from every isotherm colour
#: (:data:`cryoneuro.thermal.figures.ISO_COLOURS`) and from the others by a CIEDE2000 colour
#: difference of at least 20 (tests/test_report_tables.py): the artery is green, not red, so it
#: cannot be read as the −40 °C isotherm.
STRUCTURE_COLOURS = {
    "nerve": "#ffd400",
    "target": "#ff7f00",
    "artery": "#1a9641",
    "skin": "#f781bf",
    "bone": "#ffffff",
}
PROBE_COLOUR = "#00e5ff"


def _plane(
    values: np.ndarray, result: ThermalResult, origin, a_axis, b_axis, a_mm, order: int, cval
):
    grid = result.grid
    A, B = np.meshgrid(a_mm, a_mm)
    pts = np.asarray(origin)[None, None, :] + A[..., None] * a_axis + B[..., None] * b_axis
    idx = (pts - np.asarray(grid.origin_mm)) / grid.voxel_mm - 0.5
    out = map_coordinates(values, idx.reshape(-1, 3).T, order=order, mode="constant", cval=cval)
    return out.reshape(A.shape)


def draw_plan_section(
    ax: Axes,
    result: ThermalResult,
    image: np.ndarray | None,
    structures: dict[str, np.ndarray],
    *,
    section: str = "along",
    isotherms_c: Sequence[float] = (0.0, -20.0, -40.0),
    window: tuple[float, float] = (-200.0, 600.0),
) -> Axes:
    """One plane through the first probe on ``ax``: ``section="along"`` its axis, ``"across"``
    it at mid active length. The image in grey (HU ``window``), the structures' outlines in
    colour, dashed isotherms of the minimum temperature (°C); axes in mm from the probe's mid
    active length. Returns ``ax``."""
    if section not in ("along", "across"):
        raise ValueError(f"section must be 'along' or 'across' (got {section!r})")
    probe = result.model.probes[0]
    u, v, w = probe.frame()
    half = 0.5 * min(result.grid.size_mm)
    h = result.grid.voxel_mm / 2
    a = np.arange(-half, half + h, h)
    tip = np.asarray(probe.tip_mm, dtype=float)
    mid = tip + 0.5 * probe.active_length_mm * w
    tmin = np.where(
        np.isfinite(result.min_temperature_c),
        result.min_temperature_c,
        result.model.body_temperature_c,
    )
    b_axis = w if section == "along" else v
    if image is not None:
        img = _plane(image.astype(float), result, mid, u, b_axis, a, 1, window[0])
        ax.imshow(
            img,
            origin="lower",
            extent=(a[0], a[-1], a[0], a[-1]),
            cmap="gray",
            vmin=window[0],
            vmax=window[1],
        )
    for name, mask in structures.items():
        m = _plane(mask.astype(float), result, mid, u, b_axis, a, 1, 0.0)
        if m.max() >= 0.5:
            ax.contour(
                a, a, m, levels=[0.5], colors=[STRUCTURE_COLOURS.get(name, "c")], linewidths=1.2
            )
            ax.plot([], [], color=STRUCTURE_COLOURS.get(name, "c"), label=name)
    t = _plane(tmin, result, mid, u, b_axis, a, 1, result.model.body_temperature_c)
    levels = sorted(isotherms_c)
    cs = ax.contour(
        a,
        a,
        t,
        levels=levels,
        colors=[ISO_COLOURS.get(float(x), "c") for x in levels],
        linewidths=1.8,
        linestyles="--",
    )
    ax.clabel(cs, fmt=lambda x: f"{x:g} °C", fontsize=8)
    if section == "along":
        ax.plot(
            [0, 0],
            [-0.5 * probe.active_length_mm, a[-1]],
            color=PROBE_COLOUR,
            lw=2.5,
            solid_capstyle="butt",
        )
    else:
        ax.add_patch(Circle((0, 0), probe.radius_mm, color=PROBE_COLOUR))
    ax.set_title(f"{section} the probe", fontsize=10)
    ax.set_xlabel("mm")
    ax.set_aspect("equal")
    return ax


def draw_plan_overlays(
    result: ThermalResult,
    image: np.ndarray | None,
    structures: dict[str, np.ndarray],
    axes: Sequence[Axes] | None = None,
    *,
    isotherms_c: Sequence[float] = (0.0, -20.0, -40.0),
    window: tuple[float, float] = (-200.0, 600.0),
    title: str = "",
) -> Figure:
    """Two panels through the first probe (along its axis, and across it at mid active length):
    the image in grey, structure outlines in colour, isotherms of the minimum temperature.

    ``axes``: two Axes to draw on (default: a new :class:`~matplotlib.figure.Figure`, without
    pyplot, so no backend is chosen). Returns the figure the panels are on."""
    if axes is None:
        fig = Figure(figsize=(11, 5.4), layout="constrained")
        axes = list(fig.subplots(1, 2))
    if len(axes) != 2:
        raise ValueError(f"draw_plan_overlays needs two axes (got {len(axes)})")
    for ax, section in zip(axes, ("along", "across"), strict=True):
        draw_plan_section(
            ax,
            result,
            image,
            structures,
            section=section,
            isotherms_c=isotherms_c,
            window=window,
        )
    for level in sorted(isotherms_c, reverse=True):  # the isotherms in the legend too
        axes[0].plot(
            [],
            [],
            color=ISO_COLOURS.get(float(level), "c"),
            ls="--",
            lw=1.8,
            label=f"{level:g} °C isotherm",
        )
    axes[0].plot([], [], color=PROBE_COLOUR, lw=2.5, label="probe")
    axes[0].legend(loc="upper right", fontsize=7, framealpha=0.6)
    fig = axes[0].get_figure()
    fig.suptitle(
        title or "Planned iceball on the image (dashed: isotherms of the minimum temperature)"
    )
    return fig


def plot_plan_overlays(
    result: ThermalResult,
    image: np.ndarray | None,
    structures: dict[str, np.ndarray],
    path: str | Path,
    *,
    isotherms_c: Sequence[float] = (0.0, -20.0, -40.0),
    window: tuple[float, float] = (-200.0, 600.0),
    title: str = "",
) -> Path:
    """:func:`draw_plan_overlays` written to ``path`` (PNG at 110 dpi)."""
    fig = draw_plan_overlays(
        result, image, structures, isotherms_c=isotherms_c, window=window, title=title
    )
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
