"""Where a plotting function draws: on the caller's Axes, or on a new Figure made without pyplot.

Why: a library that calls ``matplotlib.use`` or pyplot chooses a backend for its caller (a
notebook loses its inline backend; a headless server may try to open a display) and leaves
figures open in pyplot's registry. Every plotting function of cryoneuro takes ``ax`` (or
``axes`` for a fixed set of panels), draws on it, and returns it or its figure; given none, it
draws on a :class:`matplotlib.figure.Figure` created directly, which needs no backend until it
is saved (``fig.savefig`` picks the writer by file type). Only the command line may choose a
backend, at its entry point.
"""

from __future__ import annotations

from typing import Any, Literal

from matplotlib.axes import Axes
from matplotlib.figure import Figure

#: The layout engines a new figure may use (None: none, positions as given).
Layout = Literal["constrained", "compressed", "tight"] | None


def figure_and_axes(
    ax: Axes | None, figsize: tuple[float, float], layout: Layout = "constrained"
) -> tuple[Any, Axes]:
    """``(ax.figure, ax)`` for a given Axes, else a new pyplot-free Figure with one Axes."""
    if ax is not None:
        return ax.get_figure(), ax
    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.add_subplot()


def figure_and_axes_row(
    axes: Any, n: int, figsize: tuple[float, float], layout: Layout = "constrained"
) -> tuple[Any, list[Axes]]:
    """``n`` Axes in a row: the given ones (exactly ``n``), else a new pyplot-free Figure's."""
    if axes is not None:
        axes = list(axes)
        if len(axes) != n:
            raise ValueError(f"expected {n} axes (got {len(axes)})")
        return axes[0].get_figure(), axes
    fig = Figure(figsize=figsize, layout=layout)
    return fig, list(fig.subplots(1, n, squeeze=False)[0])
