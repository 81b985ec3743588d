"""Regenerates the table "3D engine against the axisymmetric solver" of docs/validation.md with
the engine's defaults: the cases of tests/test_thermal_validation.py (AXI_CASES), each one
``solve_axisymmetric`` (r–z, 0.2 mm) and one 3D ``simulate`` at 0.5 mm voxels.

    PYTHONPATH=src .venv/bin/python benchmarks/axisymmetric_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> int:
    from test_thermal_validation import AXI_CASES, axisymmetric_and_3d

    print("| case | isotherm | axisymmetric d / l / V | 3D d / l / V | Δd | Δl | ΔV |")
    print("|---|---|---|---|---|---|---|")
    for name in AXI_CASES:
        ref, got = axisymmetric_and_3d(name)
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
