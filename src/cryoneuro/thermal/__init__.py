"""The thermal engine: 3D Pennes bioheat with freezing around one or more cryoprobes.

``geometry`` (grid, probes at sub-voxel accuracy) → ``kernels`` (Numba enthalpy stencil) →
``solver`` (protocol stepping, records) → ``isotherms`` (volumes and extents) and ``figures``.
``analytic`` and ``axisymmetric`` are independent references used to validate it.
"""

from cryoneuro.thermal.geometry import Grid, ProbeGeometry
from cryoneuro.thermal.isotherms import isotherm_metrics
from cryoneuro.thermal.solver import Phase, ThermalModel, ThermalResult, constant, simulate, trace

__all__ = [
    "Grid",
    "Phase",
    "ProbeGeometry",
    "ThermalModel",
    "ThermalResult",
    "constant",
    "isotherm_metrics",
    "simulate",
    "trace",
]
