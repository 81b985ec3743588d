"""Threads under shared cores (issue 17 item 2): the benchmark case with the cores idle and with
one core kept busy by another process, at 1 thread, 2 threads and the engine's own choice.

    PYTHONPATH=src .venv/bin/python benchmarks/threads.py [--voxel-mm 1.0] [--out FILE]

The busy process is a Python busy loop (one core, ``os.sched_setaffinity`` not used, like a
real neighbour). Each run is the engine's own wall time on benchmarks/thermal.py's model and
protocol (2 probes, freeze 180 s / thaw 60 s / freeze 180 s). The engine's choice
(:mod:`cryoneuro.thermal.threads`) samples the per-core load just before the run. Reported:
wall times, ratios to the single-thread run in the same condition, and the thread count the
engine chose. Run alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))


def _spin(stop):
    while not stop.is_set():
        pass


def _run(threads: str, voxel: float) -> dict:
    from thermal import PROTOCOL, benchmark_model

    from cryoneuro.thermal import simulate
    from cryoneuro.thermal import threads as thr

    thr._cached = None
    if threads == "auto":
        os.environ.pop("CRYONEURO_THREADS", None)
    else:
        os.environ["CRYONEURO_THREADS"] = threads
    chosen = thr.choose_threads()
    thr._cached = None
    res = simulate(benchmark_model(voxel), PROTOCOL)
    return {"threads": threads, "chosen": chosen, "wall_time_s": res.wall_time_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voxel-mm", type=float, default=1.0)
    ap.add_argument("--out", default=str(HERE / "results" / "threads.json"))
    args = ap.parse_args()
    import numba

    _run("1", args.voxel_mm)  # compile outside the timings
    rows = []
    for condition in ("idle", "one core busy"):
        stop = mp.Event()
        spinner = None
        if condition != "idle":
            spinner = mp.Process(target=_spin, args=(stop,), daemon=True)
            spinner.start()
            time.sleep(1.0)
        try:
            for threads in ("1", "2", "auto"):
                r = _run(threads, args.voxel_mm)
                r["condition"] = condition
                rows.append(r)
                print(r, file=sys.stderr)
        finally:
            stop.set()
            if spinner is not None:
                spinner.join(5)
    for r in rows:
        one = next(
            x["wall_time_s"]
            for x in rows
            if x["condition"] == r["condition"] and x["threads"] == "1"
        )
        r["vs_one_thread"] = r["wall_time_s"] / one
    out = {
        "cpus": os.cpu_count(),
        "numba_pool": numba.config.NUMBA_NUM_THREADS,
        "voxel_mm": args.voxel_mm,
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(out, indent=1), encoding="utf-8")
    print("| condition | threads | chosen | wall (s) | vs 1 thread |\n|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['condition']} | {r['threads']} | {r['chosen']} | {r['wall_time_s']:.2f} | "
            f"{r['vs_one_thread']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
