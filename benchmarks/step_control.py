"""How the RKL2 step is chosen (issue 17 item 1): accuracy and cost of the step controls against
forward Euler at its stability limit (the time-converged answer on the same grid), in one run.

    PYTHONPATH=src .venv/bin/python benchmarks/step_control.py [--with-benchmark]

Cases (1 mm voxels unless noted): the reference case of docs/contracts.md (muscle, one probe
at −150 °C, 300 s), the same in a water-like gel (0.5 K mushy range: the sharpest latent-heat
front, the hardest case for long steps; 40 s), the freeze 180 s / passive thaw 60 s / freeze
180 s protocol, and with ``--with-benchmark`` the 2-probe benchmark of benchmarks/thermal.py at
0.5 mm. Controls: fixed 0.5 s steps (the default before issue 17), fixed 8 s steps (long steps
without control), the default (steps sized by the front, at most 8 s), and the front control
with a 32 s cap (does a longer cap pay?), and the looser front target 0.8 that only the
multi-fidelity sweep's low-fidelity 1 mm samples use.

Reported per run: operator evaluations (the cost; wall time follows them), the largest isotherm
diameter/length error (0, −20, −40 °C) and the largest difference of the minimum-temperature
field (where the isotherms and the injury grades come from) against forward Euler. Wall times
are not compared here (run benchmarks/thermal.py for those). JSON to
benchmarks/results/step_control.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CONTROLS = {
    "fixed 0.5 s (before issue 17)": {"time_step_s": 0.5, "step_control": "fixed"},
    "fixed 8 s": {"time_step_s": 8.0, "step_control": "fixed"},
    "front, <= 8 s (default)": {},
    "front, <= 32 s": {"time_step_s": 32.0},
    # the multi-fidelity sweep's 1 mm control variate (thermal.solver.LOW_FIDELITY_FRONT_TARGET)
    "front 0.8, <= 8 s (low fidelity only)": {"front_target": 0.8},
}


def cases(with_benchmark: bool) -> dict:
    from cryoneuro.thermal import Grid, Phase, ProbeGeometry, ThermalModel, constant
    from cryoneuro.tissue import get_tissue

    def design(tissue: str) -> ThermalModel:
        grid = Grid.from_size((40, 40, 50), 1.0)
        probe = ProbeGeometry((20.13, 19.93, 15.0), (0, 0, 1), 1.5, 10.0)
        labels = np.zeros(grid.shape, np.uint8)
        return ThermalModel(grid, labels, [get_tissue(tissue)], [probe], [constant(-150.0)])

    ftf = [Phase("freeze", 180.0), Phase("thaw-passive", 60.0), Phase("freeze", 180.0)]
    out = {
        "muscle, 300 s (docs/contracts.md)": (design("muscle"), [Phase("freeze", 300.0)]),
        "gel (0.5 K mushy range), 40 s": (design("gel"), [Phase("freeze", 40.0)]),
        "muscle, freeze-thaw-freeze": (design("muscle"), ftf),
    }
    if with_benchmark:
        from thermal import PROTOCOL, benchmark_model

        out["2-probe benchmark, 0.5 mm"] = (benchmark_model(0.5), PROTOCOL)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--with-benchmark", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "step_control.json")
    args = ap.parse_args()
    from cryoneuro.thermal import simulate
    from cryoneuro.thermal.summary import isotherms

    rows = []
    for name, (model, protocol) in cases(args.with_benchmark).items():
        ref = simulate(model, protocol, scheme="euler")
        ref_iso = isotherms(ref, [0, -20, -40])
        rows.append({"case": name, "control": "forward Euler (reference)", **_cost(ref)})
        for control, kw in CONTROLS.items():
            res = simulate(model, protocol, **kw)
            iso = isotherms(res, [0, -20, -40])
            diff = np.nan_to_num(res.min_temperature_c - ref.min_temperature_c)
            rows.append(
                {
                    "case": name,
                    "control": control,
                    **_cost(res),
                    "isotherm_error_mm": max(
                        abs(iso[lv][k] - ref_iso[lv][k])
                        for lv in ref_iso
                        for k in ("diameter_mm", "length_mm")
                    ),
                    "min_temperature_error_k": float(np.abs(diff).max()),
                }
            )
            print(rows[-1], file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print("| case | step control | steps | operator evals | isotherm error (mm) | max ΔT_min (K) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        err = f"{r['isotherm_error_mm']:.4f}" if "isotherm_error_mm" in r else "—"
        dtm = f"{r['min_temperature_error_k']:.2f}" if "min_temperature_error_k" in r else "—"
        print(
            f"| {r['case']} | {r['control']} | {r['steps']} | {r['operator_evaluations']} | "
            f"{err} | {dtm} |"
        )
    return 0


def _cost(res) -> dict:
    return {"steps": res.steps, "operator_evaluations": res.operator_evaluations}


if __name__ == "__main__":
    raise SystemExit(main())
