"""A simulation's result with a table and a picture: :class:`SimulationResult`.

Why a subclass in a module of its own: :class:`~cryoneuro.thermal.solver.ThermalResult` is what
the solver fills; its summary (:mod:`cryoneuro.thermal.summary`) and figures
(:mod:`cryoneuro.thermal.figures`) import the solver, so the methods that use them live one
step above it, where no import cycle forms. :func:`cryoneuro.simulate` returns this class; it is
a ``ThermalResult`` in every other respect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from cryoneuro.thermal.solver import ThermalResult

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes


@dataclass
class SimulationResult(ThermalResult):
    """A :class:`ThermalResult` with ``summary()`` and ``plot()`` (lifelines-style)."""

    @classmethod
    def of(cls, result: ThermalResult) -> SimulationResult:
        """The same result (arrays shared, not copied) as a :class:`SimulationResult`."""
        return cls(**{f.name: getattr(result, f.name) for f in fields(ThermalResult)})

    def summary(
        self, levels_c: Sequence[float] = (0.0, -20.0, -40.0), *, field: str = "min"
    ) -> pd.DataFrame:
        """Volume, diameter and length of each isotherm, and the coldest tissue reached.

        Parameters
        ----------
        levels_c : sequence of float
            Isotherm levels, °C.
        field : {"min", "final"}
            ``"min"``: the region that ever reached the level; ``"final"``: below it at the end.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``isotherm_c`` (°C), with ``volume_ml`` (mL), ``diameter_mm`` (mm, across
            the first probe) and ``length_mm`` (mm, along it), from the sub-voxel isosurface of
            :func:`cryoneuro.thermal.summary.isotherms`; ``attrs["coldest_tissue_c"]`` is the
            coldest tissue temperature of ``field`` (°C).
        """
        import pandas as pd

        from cryoneuro.thermal.summary import iso_key, isotherms

        table = isotherms(self, levels_c, field=field)
        frame = pd.DataFrame(
            [
                {"isotherm_c": float(level), **table[iso_key(level)]}
                for level in sorted(levels_c, reverse=True)
            ]
        ).set_index("isotherm_c")
        data = self.min_temperature_c if field == "min" else self.temperature_c
        frame.attrs["coldest_tissue_c"] = float(np.nanmin(data[self.tissue_mask]))
        return frame

    def plot(
        self,
        ax: Axes | None = None,
        *,
        section: str = "along",
        field: str = "min",
        isotherms_c: Sequence[float] = (0.0, -20.0, -40.0),
    ) -> Axes:
        """Temperature and isotherms in a plane through the first probe
        (:func:`cryoneuro.thermal.figures.draw_slice`): ``section`` "along" its axis or
        "across" it; ``field`` "min" (coldest reached) or "final"; on ``ax`` (default a new
        pyplot-free Figure). Returns the Axes."""
        from cryoneuro.thermal.figures import draw_slice

        return draw_slice(self, ax, section=section, field=field, isotherms_c=isotherms_c)
