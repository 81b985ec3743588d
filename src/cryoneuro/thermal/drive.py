"""How a probe's active surface is driven: a held temperature, or a device energy balance.

A held surface temperature (a constant, a measured trace or the gas's no-load boiling point) is
the classical boundary and the one the analytic checks use. Real cryoprobes do not hold their
surface at the gas temperature: the gas removes heat through a finite gas-side heat-transfer
coefficient and at most at the rate its flow can absorb. :class:`DeviceDrive` models that as a
quasi-steady energy balance of the probe's active wall (its own heat capacity neglected: a
steel needle wall stores well under 1 J/K, against heat loads of watts):

* tissue side: the ghost-fluid faces of the engine carry ``Q_load = G (T_eff − T_w)`` into the
  wall, with ``G`` (W/K) the sum of the face conductances and ``T_eff`` their
  conductance-weighted tissue temperature — both read off the current tissue state;
* gas side: ``Q_gas = (h A) (T_w − T_gas)`` with ``T_gas`` the boiling (no-load) temperature of
  the gas model (``cryoneuro probe``), ``h`` the gas-side coefficient and ``A`` the active area;
* capacity: ``Q_gas ≤ Q_max = ṁ q``, mass flow times the refrigeration per unit mass flow of the
  J–T gas model (``cooling_power_w_per_g_s``).

Then ``T_w = (G T_eff + hA T_gas) / (G + hA)`` while that draws less than ``Q_max``, and
``T_w = T_eff − Q_max / G`` otherwise (the flow is exhausted; the wall warms until the load
equals the capacity). The wall temperature is never below ``T_gas`` nor above ``T_eff``. The
solver re-evaluates it at the start of every step, so the surface is cold while the load is
small and warmer while it is large — it emerges from the balance rather than being imposed.

Active thaw with a device heats the wall with ``thaw_power_w`` (helium inverse J–T plus any
electric heating) up to ``thaw_limit_c``: ``T_w = min(T_eff + P / G, thaw_limit_c)``.

The energy account stays exact: the heat the engine books for each probe is the ghost-fluid
flux at the wall temperature used for that step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cryoneuro.errors import InputError


@dataclass(frozen=True)
class DeviceDrive:
    """Energy balance of one probe's active wall (see the module docstring). SI units."""

    gas_temperature_c: float
    capacity_w: float
    gas_conductance_w_per_k: float
    thaw_power_w: float | None = None
    thaw_limit_c: float = 37.0
    name: str = "device"

    def __post_init__(self) -> None:
        for field_name in ("gas_temperature_c", "capacity_w", "gas_conductance_w_per_k"):
            v = getattr(self, field_name)
            if isinstance(v, bool) or not math.isfinite(v):
                raise InputError(f"{self.name}.{field_name}: {v!r} is not a finite number")
        if self.capacity_w <= 0 or self.gas_conductance_w_per_k <= 0:
            raise InputError(
                f"{self.name}: capacity_w and gas_conductance_w_per_k must be positive"
            )
        if self.thaw_power_w is not None and not (
            math.isfinite(self.thaw_power_w) and self.thaw_power_w > 0
        ):
            raise InputError(f"{self.name}.thaw_power_w must be a positive number of watts")

    def freeze_wall_c(self, conductance_w_per_k: float, tissue_c: float) -> float:
        """Wall temperature during a freeze for tissue-side conductance ``G`` and ``T_eff``."""
        g, ha = conductance_w_per_k, self.gas_conductance_w_per_k
        if g <= 0.0:  # no tissue touches the wall: it sits at the gas temperature
            return self.gas_temperature_c
        t_robin = (g * tissue_c + ha * self.gas_temperature_c) / (g + ha)
        if ha * (t_robin - self.gas_temperature_c) <= self.capacity_w:
            return t_robin
        return min(tissue_c, max(self.gas_temperature_c, tissue_c - self.capacity_w / g))

    def thaw_wall_c(
        self, conductance_w_per_k: float, tissue_c: float, limit_c: float | None = None
    ) -> float:
        """Wall temperature during an active thaw (heating power up to a temperature limit)."""
        limit = self.thaw_limit_c if limit_c is None else limit_c
        if self.thaw_power_w is None or conductance_w_per_k <= 0.0:
            return limit
        return min(limit, tissue_c + self.thaw_power_w / conductance_w_per_k)
