"""Thermal engine benchmark (issue 3): a 3-cycle protocol with 2 probes on 50 x 50 x 60 mm at
0.5 mm voxels, timed side by side with a peer in the same run.

    .venv/bin/python benchmarks/thermal.py            # full benchmark + peer comparison
    .venv/bin/python benchmarks/thermal.py --quick    # smaller grid, for a smoke run

Reports, for each configuration: wall time, cell updates per second (operator evaluations x
cells / s), and the fraction of the machine's memory bandwidth the stencil uses, with the
bandwidth measured in the same run by a STREAM-style triad (McCalpin 1995). The peer is FiPy
(benchmarks/peers/fipy_bioheat.py) on the same problem; it is compared at equal accuracy on the
single-probe reference case (docs/contracts.md), where the independent axisymmetric solver gives
the reference.
Results go to benchmarks/results/thermal.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

from cryoneuro.thermal import Grid, Phase, ProbeGeometry, ThermalModel, constant, simulate
from cryoneuro.thermal.summary import isotherms
from cryoneuro.tissue import get_tissue

HERE = Path(__file__).resolve().parent
#: Bytes moved per cell by one operator evaluation (8-byte words; see kernels.stage): Euler
#: reads T, k (stencil, cached), H, label and writes H, T, k; an RKL2 stage also reads
#: Y(j-2), Y0 and M0.
BYTES_EULER = 8 * 6 + 1
BYTES_RKL = 8 * 9 + 1


@njit(parallel=True, cache=True)
def _triad(a, b, c, s):
    for i in prange(a.shape[0]):
        a[i] = b[i] + s * c[i]


def memory_bandwidth_gb_s(n: int = 40_000_000, repeats: int = 5) -> float:
    """Best-of STREAM triad bandwidth (3 arrays x 8 bytes per element), GB/s."""
    a, b, c = np.zeros(n), np.ones(n), np.full(n, 2.0)
    _triad(a, b, c, 3.0)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        _triad(a, b, c, 3.0)
        best = min(best, time.perf_counter() - t0)
    return 3 * 8 * n / best / 1e9


def benchmark_model(voxel_mm: float = 0.5, size=(50.0, 50.0, 60.0)) -> ThermalModel:
    grid = Grid.from_size(size, voxel_mm)
    cx, cy = size[0] / 2, size[1] / 2
    probes = [
        ProbeGeometry((cx - 5.0, cy, 20.0), (0, 0, 1), 1.47, 20.0, name="A"),
        ProbeGeometry((cx + 5.0, cy, 20.0), (0, 0, 1), 1.47, 20.0, name="B"),
    ]
    return ThermalModel(
        grid, np.zeros(grid.shape, np.uint8), [get_tissue("muscle")], probes, [constant(-150.0)] * 2
    )


PROTOCOL = [Phase("freeze", 180.0), Phase("thaw-passive", 60.0), Phase("freeze", 180.0)]


def run_engine(model, protocol, **kw) -> dict:
    from cryoneuro.thermal import threads as thr

    chosen = thr.choose_threads()  # cached: the run uses the same count
    res = simulate(model, protocol, **kw)
    n = model.grid.n_cells
    evals = res.operator_evaluations
    rate = n * evals / res.wall_time_s
    per = BYTES_RKL if kw.get("scheme", "rkl2") == "rkl2" else BYTES_EULER
    return {
        "wall_time_s": res.wall_time_s,
        "cells": n,
        "steps": res.steps,
        "operator_evaluations": evals,
        "cell_updates_per_s": rate,
        "traffic_gb_s": rate * per / 1e9,
        "isotherms": isotherms(res, [0, -20, -40]),
        "threads": chosen,
    }


def isotherm_error_mm(got: dict, ref: dict) -> float:
    """Largest difference of any isotherm diameter or length (0, −20, −40 °C), mm."""
    return max(
        abs(got[lv][key] - ref[lv][key]) for lv in ref for key in ("diameter_mm", "length_mm")
    )


def _spin(stop) -> None:  # another process keeping one core busy (a Dask worker, CI, a browser)
    while not stop.is_set():
        pass


def run_with_threads(model, protocol, threads: str, busy: bool) -> dict:
    """The default scheme with ``CRYONEURO_THREADS=threads`` (``auto``: the engine's choice
    from the cores free now, thermal/threads.py), optionally beside a busy process."""
    import multiprocessing as mp

    from cryoneuro.thermal import threads as thr

    if threads == "auto":
        os.environ.pop("CRYONEURO_THREADS", None)
    else:
        os.environ["CRYONEURO_THREADS"] = threads
    stop = mp.Event()
    spinner = mp.Process(target=_spin, args=(stop,), daemon=True) if busy else None
    try:
        if spinner is not None:
            spinner.start()
            time.sleep(1.0)
        thr._cached = None  # decide from the load now
        row = run_engine(model, protocol, backend="numba")
    finally:
        stop.set()
        if spinner is not None:
            spinner.join(5)
        os.environ.pop("CRYONEURO_THREADS", None)
        thr._cached = None
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 mm voxels (smoke run)")
    parser.add_argument("--no-peer", action="store_true", help="skip the FiPy peer")
    parser.add_argument(
        "--array", action="store_true", help="also time the GPU code on NumPy (slow)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "thermal.json")
    args = parser.parse_args(argv)

    voxel = 1.0 if args.quick else 0.5
    load_at_start = os.getloadavg()
    bandwidth = memory_bandwidth_gb_s(10_000_000 if args.quick else 40_000_000)
    model = benchmark_model(voxel)
    # warm the JIT so compile time is not counted
    small = benchmark_model(1.0, size=(12.0, 12.0, 30.0))
    simulate(small, [Phase("freeze", 2.0), Phase("thaw-passive", 1.0)])
    simulate(small, [Phase("freeze", 2.0)], scheme="euler")
    rows = {}
    from cryoneuro.thermal.backends import gpu_available

    reference = "cryoneuro forward Euler (reference: time-converged on this grid)"
    configs = [
        (reference, {"scheme": "euler", "backend": "numba"}),
        (
            "cryoneuro rkl2, steps sized by the front, <= 8 s (default)",
            {"scheme": "rkl2", "backend": "numba"},
        ),
        (
            "cryoneuro rkl2, fixed 0.5 s steps (the default before issue 17)",
            {"scheme": "rkl2", "backend": "numba", "time_step_s": 0.5, "step_control": "fixed"},
        ),
    ]
    if args.array:  # the GPU code run through NumPy on the CPU: what the GPU backend computes
        configs.append(("cryoneuro default, array backend on CPU (NumPy)", {"backend": "array"}))
    if gpu_available():
        simulate(small, [Phase("freeze", 2.0)], backend="cupy")  # warm CuPy's kernels
        configs.append(("cryoneuro default, GPU (CuPy)", {"backend": "cupy"}))
    for label, kw in configs:
        rows[label] = run_engine(model, PROTOCOL, **kw)
        print(f"{label}: {rows[label]['wall_time_s']:.1f} s", file=sys.stderr)
    # shared cores (issue 17 item 2): one thread, and the engine's choice beside a busy process
    for label, threads, busy in (
        ("cryoneuro default, 1 thread", "1", False),
        ("cryoneuro default, one core busy, 1 thread forced", "1", True),
        ("cryoneuro default, one core busy with another process (engine's choice)", "auto", True),
        ("cryoneuro default, one core busy, 2 threads forced", str(os.cpu_count()), True),
    ):
        rows[label] = run_with_threads(model, PROTOCOL, threads, busy)
        print(f"{label}: {rows[label]['wall_time_s']:.1f} s", file=sys.stderr)
    for r in rows.values():
        r["bandwidth_fraction"] = r["traffic_gb_s"] / bandwidth
        r["isotherm_error_mm"] = isotherm_error_mm(r["isotherms"], rows[reference]["isotherms"])

    peer = None
    if not args.no_peer:
        from peer_compare import compare_with_peer  # benchmarks/peer_compare.py

        peer = compare_with_peer(quick=args.quick)

    report = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": numba.get_num_threads(),
            "cores": os.cpu_count(),
            "memory_bandwidth_gb_s": bandwidth,
            "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg(),
        },
        "case": {
            "grid": list(model.grid.shape),
            "voxel_mm": voxel,
            "probes": 2,
            "protocol": [(p.kind, p.duration_s) for p in PROTOCOL],
        },
        "engine": rows,
        "peer": peer,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(markdown(report))
    return 0


def markdown(report: dict) -> str:
    lines = [
        f"Machine: {report['machine']['cores']} cores, {report['machine']['threads']} threads, "
        f"triad bandwidth {report['machine']['memory_bandwidth_gb_s']:.1f} GB/s",
        f"Case: {report['case']['grid']} voxels of {report['case']['voxel_mm']} mm, 2 probes, "
        "freeze 180 s / passive thaw 60 s / freeze 180 s",
        "",
        "| solver | wall (s) | threads | operator evals | cell updates/s | bandwidth used | "
        "isotherm error vs reference (mm) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, r in report["engine"].items():
        lines.append(
            f"| {label} | {r['wall_time_s']:.1f} | {r['threads']} | {r['operator_evaluations']} | "
            f"{r['cell_updates_per_s'] / 1e6:.0f} M | {100 * r['bandwidth_fraction']:.0f} % | "
            f"{r['isotherm_error_mm']:.4f} |"
        )
    if report.get("peer"):
        lines += ["", report["peer"]["markdown"]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    raise SystemExit(main())
