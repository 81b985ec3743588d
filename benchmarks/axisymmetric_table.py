"""Regenerates the table "3D engine against the axisymmetric solver" of docs/validation.md with
the engine's defaults: the cases of tests/test_thermal_validation.py (AXI_CASES), each one
``solve_axisymmetric`` (r–z, 0.2 mm) and one 3D ``simulate`` at 0.5 mm voxels.

    PYTHONPATH=src .venv/bin/python benchmarks/axisymmetric_table.py
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> int:
    from test_thermal_validation import AXI_CASES

    from cryoneuro.thermal import Grid, Phase, ProbeGeometry, ThermalModel, constant, simulate
    from cryoneuro.thermal.axisymmetric import solve_axisymmetric
    from cryoneuro.thermal.summary import isotherms
    from cryoneuro.tissue import get_tissue

    print("| case | isotherm | axisymmetric d / l / V | 3D d / l / V | Δd | Δl | ΔV |")
    print("|---|---|---|---|---|---|---|")
    for name, (overrides, tip_c, active_mm, protocol) in AXI_CASES.items():
        tissue = replace(get_tissue("muscle"), **overrides)
        tip_z = 15.0 if active_mm <= 10 else 10.0
        ref = solve_axisymmetric(
            tissue,
            probe_diameter_mm=1.5,
            active_length_mm=active_mm,
            tip_temperature_c=tip_c,
            protocol=tuple(protocol),
            radius_mm=20.0,
            z_extent_mm=(0.0, 50.0),
            tip_z_mm=tip_z,
        )
        grid = Grid.from_size((40, 40, 50), 0.5)
        probe = ProbeGeometry((20.0, 20.0, tip_z), (0, 0, 1), 1.5, active_mm)
        labels = np.zeros(grid.shape, np.uint8)
        model = ThermalModel(grid, labels, [tissue], [probe], [constant(tip_c)])
        got = isotherms(simulate(model, [Phase(k, d) for k, d in protocol]), [0, -20, -40])
        for level, e in ref.isotherms_minimum.items():
            g = got[level]
            print(
                f"| {name} | {level} °C | {e['diameter_mm']:.2f} / {e['length_mm']:.2f} / "
                f"{e['volume_ml']:.3f} | {g['diameter_mm']:.2f} / {g['length_mm']:.2f} / "
                f"{g['volume_ml']:.3f} | {g['diameter_mm'] - e['diameter_mm']:+.2f} | "
                f"{g['length_mm'] - e['length_mm']:+.2f} | "
                f"{100 * (g['volume_ml'] / e['volume_ml'] - 1):+.1f} % |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
