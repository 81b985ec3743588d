"""Issue 7 bar: a 200-sample uncertainty sweep of the demo plan on Dask.

    .venv/bin/python benchmarks/sweep_demo.py    # plans the demo first (~1.5 min)
    .venv/bin/python benchmarks/sweep_demo.py --plan out/demo/plan.json --samples 200 --voxel-mm 1.0

It runs the same seeded sweep (a) on a local cluster with 1 worker, (b) with 2 workers, and
(c) on a separately started ``dask scheduler`` + 2 ``dask worker`` processes on 127.0.0.1, checks
that the three tables are identical (``pandas.testing.assert_frame_equal``, exact), and writes
timings, the identity check and the headline results (P(complete block) with its Wilson 95 % CI,
P(skin safe), coverage and skin-minimum distributions) to ``benchmarks/results/sweep_demo.json``
(one entry per grid, ``runs["1mm"]`` / ``runs["0.5mm"]``, with the load average: the machine
may be shared).
Wall times include starting the local cluster (a few seconds); the remote run's excludes
starting the scheduler and workers (they are up before the clock starts).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_workers(address: str, n: int, timeout_s: float = 60.0) -> None:
    from dask.distributed import Client

    with Client(address, timeout="20s") as c:
        c.wait_for_workers(n, timeout=timeout_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--plan", type=Path, default=None, help="plan.json (default: plan the demo now)"
    )
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--voxel-mm", type=float, default=1.0)
    parser.add_argument("--skip-remote", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sweep_demo.json")
    args = parser.parse_args()

    from cryoneuro.planning.plan import Plan
    from cryoneuro.planning.replay import replay
    from cryoneuro.sweep import (
        PlanUncertainty,
        run_plan_sweep,
        summarise_plan_sweep,
        write_plan_sweep,
    )

    work = Path(tempfile.mkdtemp(prefix="sweep_demo_"))
    record: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "samples": args.samples,
        "seed": args.seed,
        "voxel_mm": args.voxel_mm,
    }
    if args.plan is None:
        from cryoneuro.anatomy.phantoms import morton_forefoot
        from cryoneuro.planning.pipeline import plan_phantom

        t = time.perf_counter()
        plan = plan_phantom(morton_forefoot(), work / "demo")
        record["demo_plan_s"] = round(time.perf_counter() - t, 1)
        plan_path = work / "demo" / "plan.json"
    else:
        plan = Plan.load(args.plan)
        plan_path = args.plan
    record["plan"] = str(plan_path)
    spec = PlanUncertainty()  # the CLI defaults: 1 mm per axis, 5 °C, perfusion 0.5–2
    record["uncertainty"] = {k: v for k, v in spec.__dict__.items()}

    t = time.perf_counter()
    nominal = replay(plan, voxel_mm=args.voxel_mm).as_dict()
    record["single_replay_s_in_process"] = round(time.perf_counter() - t, 2)

    tables: dict[str, pd.DataFrame] = {}
    timings: dict[str, float] = {}
    for workers in (1, 2):
        t = time.perf_counter()
        tables[f"local_{workers}"] = run_plan_sweep(
            plan,
            spec,
            samples=args.samples,
            seed=args.seed,
            voxel_mm=args.voxel_mm,
            workers=workers,
        )
        timings[f"local_{workers}_workers_s"] = round(time.perf_counter() - t, 1)
        print(
            f"local cluster, {workers} worker(s): {timings[f'local_{workers}_workers_s']} s",
            flush=True,
        )

    if not args.skip_remote:
        dask = shutil.which("dask", path=str(Path(sys.executable).parent))
        port = _free_port()
        address = f"tcp://127.0.0.1:{port}"
        procs = [
            subprocess.Popen(
                [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        ]
        try:
            time.sleep(3)
            procs += [
                subprocess.Popen(
                    [
                        dask,
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--nworkers",
                        "2",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            ]
            _wait_for_workers(address, 2)
            t = time.perf_counter()
            tables["remote_2"] = run_plan_sweep(
                plan,
                spec,
                samples=args.samples,
                seed=args.seed,
                voxel_mm=args.voxel_mm,
                scheduler=address,
            )
            timings["remote_scheduler_2_workers_s"] = round(time.perf_counter() - t, 1)
            print(
                f"separate scheduler, 2 workers: {timings['remote_scheduler_2_workers_s']} s",
                flush=True,
            )
        finally:
            for p in reversed(procs):
                p.terminate()
                p.wait(timeout=30)

    identical = {}
    for name, table in tables.items():
        if name == "local_1":
            continue
        try:
            pd.testing.assert_frame_equal(tables["local_1"], table, check_exact=True)
            identical[f"local_1_vs_{name}"] = True
        except AssertionError:
            identical[f"local_1_vs_{name}"] = False
    summary = summarise_plan_sweep(
        tables["local_2"],
        spec=spec,
        seed=args.seed,
        voxel_mm=args.voxel_mm,
        nominal=nominal,
        plan_name=plan.case,
    )
    out_dir = work / "sweep"
    out_dir.mkdir()
    write_plan_sweep(tables["local_2"], summary, out_dir)
    d = summary["distributions"]
    record.update(
        {
            "timings": timings,
            "identical": identical,
            "nominal": nominal,
            "p_complete_block": summary["p_complete_block"],
            "p_skin_safe": summary["p_skin_safe"],
            "p_neurotmesis_risk": summary["p_neurotmesis_risk"],
            "coverage_20": d["coverage_20"],
            "coverage_40": d["coverage_40"],
            "skin_min_c": d["skin_min_c"],
            "warmest_min_c": d["warmest_min_c"],
            "block_by_position_error": summary["block_by_position_error"],
            "outputs": str(out_dir),
        }
    )
    with open("/proc/loadavg", encoding="ascii") as f:
        record["load_average_1_5_15_min_at_end"] = [float(v) for v in f.read().split()[:3]]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:  # one entry per grid: a 0.5 mm run does not overwrite the 1 mm one
        runs = json.loads(args.out.read_text(encoding="utf-8")).get("runs", {})
    except (OSError, ValueError):
        runs = {}
    runs[f"{args.voxel_mm:g}mm"] = record
    args.out.write_text(
        json.dumps(
            {"benchmark": "benchmarks/sweep_demo.py", "runs": runs}, indent=2, default=float
        ),
        encoding="utf-8",
    )
    print(
        json.dumps(
            {k: record[k] for k in ("timings", "identical", "p_complete_block", "p_skin_safe")},
            indent=1,
        )
    )
    if not all(identical.values()):
        sys.exit("tables differ between runs")


if __name__ == "__main__":
    main()
