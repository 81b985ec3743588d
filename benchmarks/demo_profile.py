"""Where the warm `cryoneuro demo` spends its time (issue 17 item 4: the bar is 5 s).

    PYTHONPATH=src .venv/bin/python benchmarks/demo_profile.py [--phantom morton] [--repeat 2]

Each repeat is a fresh process running ``python -m cryoneuro.cli demo --out TMP``, timed from
outside (the figure a user sees; the first repeat also fills the Numba cache if it is empty, so
the last one is the warm figure). One more process plans the same phantom in process with
timing wrappers around the planner's stages: every simulation (its grid, protocol, steps,
operator evaluations, wall time), the judging of each result (nerve profile and structure
safety), the steady probe state (CoolProp) and the writing of the plan and its report.
JSON to benchmarks/results/demo_profile.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent


def demo_process(phantom: str) -> float:
    with tempfile.TemporaryDirectory(prefix="demo_profile_") as tmp:
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "cryoneuro.cli", "demo", "--out", tmp, "--phantom", phantom],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return time.perf_counter() - t


def stages(phantom: str) -> dict:
    """Plan in this process with the stages wrapped; returns their times and the simulations."""
    t0 = time.perf_counter()
    from cryoneuro import probe
    from cryoneuro.anatomy import phantoms
    from cryoneuro.planning import pipeline, report

    imported = time.perf_counter() - t0
    spent: dict[str, float] = defaultdict(float)
    sims: list[dict] = []

    def timed(name, func):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return func(*a, **kw)
            finally:
                spent[name] += time.perf_counter() - t

        return wrapper

    original_simulate = pipeline.simulate

    def simulate(model, phases, **kw):
        t = time.perf_counter()
        res = original_simulate(model, phases, **kw)
        sims.append(
            {
                "grid": list(model.grid.shape),
                "voxel_mm": model.grid.voxel_mm,
                "protocol_s": [p.duration_s for p in phases],
                "steps": res.steps,
                "operator_evaluations": res.operator_evaluations,
                "wall_s": time.perf_counter() - t,
            }
        )
        return res

    pipeline.simulate = simulate
    pipeline.Level.judge = timed("judge", pipeline.Level.judge)
    probe._tip_state.cache_clear()
    pipeline.probe_physics.tip_state = timed("tip_state (CoolProp)", probe.tip_state)
    pipeline.write_plan = timed("write plan and report", pipeline.write_plan)
    report.write_report = timed("of which the HTML/PDF report", report.write_report)
    make = {"morton": phantoms.morton_forefoot, "stump": phantoms.amputation_stump}[phantom]
    with tempfile.TemporaryDirectory(prefix="demo_profile_") as tmp:
        t = time.perf_counter()
        pipeline.plan_phantom(make(), Path(tmp))
        total = time.perf_counter() - t
    by_voxel: dict[str, dict] = {}
    for s in sims:
        row = by_voxel.setdefault(f"{s['voxel_mm']:g} mm", {"count": 0, "wall_s": 0.0, "evals": 0})
        row["count"] += 1
        row["wall_s"] += s["wall_s"]
        row["evals"] += s["operator_evaluations"]
    return {
        "import_s": imported,
        "plan_phantom_s": total,
        "stages_s": dict(spent),
        "simulations_by_voxel": by_voxel,
        "simulations": sims,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phantom", default="morton", choices=("morton", "stump"))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "demo_profile.json")
    args = ap.parse_args()
    record: dict = {"phantom": args.phantom, "load_average_start": os.getloadavg()}
    record["demo_process_s"] = [demo_process(args.phantom) for _ in range(args.repeat)]
    record["in_process"] = stages(args.phantom)
    record["load_average_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1), encoding="utf-8")
    r = record["in_process"]
    runs = ", ".join(f"{s:.1f} s" for s in record["demo_process_s"])
    print(f"cryoneuro demo, fresh processes: {runs}")
    print(f"in process: imports {r['import_s']:.1f} s, plan_phantom {r['plan_phantom_s']:.1f} s")
    for name, row in r["simulations_by_voxel"].items():
        print(
            f"  simulations at {name}: {row['count']}, {row['wall_s']:.1f} s, {row['evals']} evals"
        )
    for name, s in r["stages_s"].items():
        print(f"  {name}: {s:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
