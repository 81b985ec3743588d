"""GPU benchmark of the thermal engine (issue 17, item 6): the CuPy backend timed on the
benchmarks/thermal.py case, against the device's own measured memory bandwidth, and checked
against the Numba CPU backend on the same machine.

    PYTHONPATH=src python3 benchmarks/gpu.py            # on a machine with an NVIDIA GPU + CuPy
    PYTHONPATH=src .venv/bin/python benchmarks/gpu.py --quick   # CPU smoke run (NumPy "array"
                                                        # backend = the CuPy code on NumPy)

Why a separate script: the GPU is lent rarely and briefly (one short call), so everything that
needs it is measured in one run that cannot lose all its results to one failure. Each part runs
in its own Python process with its own time box; the JSON is rewritten after every part, so a
part that fails or runs out of time is reported as such and the others still come back.

Parts, in order:

1. ``env``: device name, memory, driver, CuPy/Numba/NumPy versions (read-only queries).
2. ``bandwidth``: the achievable device-memory bandwidth, measured in this run: a STREAM triad
   ``a = b + s c`` (McCalpin 1995; 3 x 8 bytes per element, as benchmarks/thermal.py counts it on
   the CPU) and a device-to-device copy (read + write counted), median and best of 20 timed
   launches with CUDA events after a warm-up. The triad is the reference for the fraction.
3. ``main``: the benchmark model (``thermal.benchmark_model``: 2 probes, 50 x 50 x 60 mm at
   0.5 mm, freeze 180 s / passive thaw 60 s / freeze 180 s, RKL2) on the backend ``cupy``.
   Warm-ups excluded from timing: a tiny model (compiles CuPy's kernels) and the full-size model
   on a 4 s and an 8 s protocol (allocate the memory pool; the difference of their times gives
   the time per operator evaluation, which predicts the full run's time). The
   timed run is ``simulate``'s own wall time, which ends with the copy of the fields back to the
   host (a synchronisation); it is also timed outside with explicit device synchronisation.
   If the prediction does not fit the time box, the first freeze is shortened and the row says so.
4. ``agreement``: the same model at 1 mm on Numba (this machine's CPU) and on CuPy: max
   |T_cupy - T_numba| over the final and the minimum-temperature fields and the 0/-20/-40 °C
   isotherm diameters of both (round-off agreement expected: same equations, same order of
   stages; the GPU's reductions sum in another order).
5. ``large``: the same case at 0.25 mm (8x the cells, 2x the evaluations) to show how the rate
   scales with problem size (a GPU needs large arrays to hide launch latency); time-boxed the
   same way as ``main``.

Figures use benchmarks/thermal.py's definitions: cell updates per second = cells x operator
evaluations / wall time; the bandwidth fraction = cell updates/s x BYTES_RKL (the fewest bytes one
RKL2 stage must move per cell) / measured triad bandwidth. The array backend moves many more bytes
than that (one pass per array expression), so the fraction is an *effective* figure: how close the
engine comes to a fused one-pass stencil, not how busy the memory bus is.

Output: JSON to ``$OUT/gpu.json`` when ``OUT`` is set, else benchmarks/results/gpu.json (with
``--quick``: benchmarks/results/gpu_quick.json), or ``--out``; a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

LEVELS = (0.0, -20.0, -40.0)
#: Short protocol used to warm up (and, on the full-size model, to predict the full run's time);
#: it exercises freeze, passive thaw (probe-cell equilibration) and the switch back.
WARM_PROTOCOL = (("freeze", 2.0), ("thaw-passive", 1.0), ("freeze", 1.0))
#: Parts, with their share of the time budget (s) in the full run; ``large`` gets what is left.
PART_BOX_S = {"env": 25.0, "bandwidth": 45.0, "main": 110.0, "agreement": 90.0}


# --------------------------------------------------------------------------- configuration
def config(quick: bool) -> dict:
    """Problem sizes and backend. ``--quick`` shrinks the domain (1 mm is the coarsest voxel the
    1.47 mm probes allow) and the protocol so that the NumPy array backend runs in seconds."""
    if quick:
        short = (("freeze", 20.0), ("thaw-passive", 5.0), ("freeze", 10.0))
        return {
            "backend": "array",
            "quick": True,
            "main": {"voxel_mm": 1.0, "size_mm": (20.0, 20.0, 40.0), "protocol": short},
            "agreement": {"voxel_mm": 1.0, "size_mm": (20.0, 20.0, 40.0), "protocol": short},
            "large": {"voxel_mm": 1.0, "size_mm": (30.0, 30.0, 50.0), "protocol": short},
        }
    from thermal import PROTOCOL

    full = tuple((p.kind, p.duration_s) for p in PROTOCOL)
    return {
        "backend": "cupy",
        "quick": False,
        "main": {"voxel_mm": 0.5, "size_mm": (50.0, 50.0, 60.0), "protocol": full},
        "agreement": {"voxel_mm": 1.0, "size_mm": (50.0, 50.0, 60.0), "protocol": full},
        "large": {"voxel_mm": 0.25, "size_mm": (50.0, 50.0, 60.0), "protocol": full},
    }


def phases(spec) -> list:
    from cryoneuro.thermal import Phase

    return [Phase(kind, float(d)) for kind, d in spec]


def synchronize(backend: str) -> None:
    if backend == "cupy":
        import cupy

        cupy.cuda.Device().synchronize()


def count_evaluations(model, protocol) -> int:
    """Operator evaluations ``simulate`` will do (RKL2), from the same schedule functions."""
    from cryoneuro.thermal import rkl
    from cryoneuro.thermal.geometry import rasterise_probes
    from cryoneuro.thermal.solver import stable_time_step

    raster = rasterise_probes(model.grid, model.probes, insulated_shaft=model.insulated_shaft)
    dt = stable_time_step(model, raster)
    return sum(
        rkl.stages_for(s, dt)
        for p in protocol
        for s in rkl.step_schedule(p.duration_s, 0.5, dt)  # at most this many (front control)
    )


# --------------------------------------------------------------------------- parts
def part_env(cfg: dict, deadline: float, out: dict) -> None:
    import numba
    import numpy

    out.update(
        {
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "numba": numba.__version__,
            "numba_threads": numba.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
        }
    )
    if cfg["backend"] != "cupy":
        out["device"] = "none (quick mode: the CuPy code runs on NumPy, on the CPU)"
        return
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    out.update(
        {
            "cupy": cupy.__version__,
            "device": name,
            "device_memory_gib": props["totalGlobalMem"] / 2**30,
            "multiprocessors": props["multiProcessorCount"],
            "l2_cache_mb": props.get("l2CacheSize", 0) / 1e6,
            "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
            "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
        }
    )
    try:
        query = (
            "--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem,"
            "clocks.max.sm,clocks.max.mem,temperature.gpu,power.draw,utilization.gpu"
        )
        smi = subprocess.run(
            ["nvidia-smi", query, "--format=csv"],
            check=False,
            capture_output=True,
            text=True,
            timeout=15,
        )
        out["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except Exception as exc:
        out["nvidia_smi"] = f"not available: {exc}"


def part_bandwidth(cfg: dict, deadline: float, out: dict) -> None:
    if cfg["backend"] != "cupy":
        from thermal import memory_bandwidth_gb_s  # the CPU benchmark's Numba triad

        out.update(
            {
                "method": "CPU STREAM triad (Numba, benchmarks/thermal.py)",
                "triad_gb_s": memory_bandwidth_gb_s(10_000_000),
            }
        )
        out["reference_gb_s"] = out["triad_gb_s"]
        return
    import cupy
    import numpy as np

    n = 1 << 27  # 134 M doubles: 1.07 GB per array, far beyond the 60 MB L2
    b = cupy.random.random(n)  # random data, not zeros (METHOD.md)
    c = cupy.random.random(n)
    a = cupy.empty_like(b)
    triad = cupy.ElementwiseKernel(
        "float64 b, float64 c, float64 s", "float64 a", "a = b + s * c", "cryoneuro_triad"
    )

    def timed(fn, reps=20):
        fn()
        cupy.cuda.Device().synchronize()
        times = []
        for _ in range(reps):
            e0, e1 = cupy.cuda.Event(), cupy.cuda.Event()
            e0.record()
            fn()
            e1.record()
            e1.synchronize()
            times.append(cupy.cuda.get_elapsed_time(e0, e1) / 1e3)
        return float(np.median(times)), float(np.min(times))

    med, best = timed(lambda: triad(b, c, 3.0, a))
    # check every element was written with the right value (a sample of indices suffices
    # for wrong indexing; the full comparison is cheap on the device)
    err = float(cupy.max(cupy.abs(a - (b + 3.0 * c))))
    out.update(
        {
            "method": "CuPy ElementwiseKernel triad a = b + s*c, 2^27 float64, CUDA events",
            "triad_bytes": 3 * 8 * n,
            "triad_gb_s_median": 3 * 8 * n / med / 1e9,
            "triad_gb_s_best": 3 * 8 * n / best / 1e9,
            "triad_max_error": err,
        }
    )
    med, best = timed(lambda: cupy.copyto(a, b))
    out.update(
        {
            "copy_gb_s_median": 2 * 8 * n / med / 1e9,
            "copy_gb_s_best": 2 * 8 * n / best / 1e9,
            "copy_exact": bool(cupy.array_equal(a, b)),
        }
    )
    out["reference_gb_s"] = out["triad_gb_s_median"]


def _row(res, model, wall_outer: float | None = None) -> dict:
    from thermal import BYTES_RKL

    from cryoneuro.thermal.summary import isotherms

    n = model.grid.n_cells
    rate = n * res.operator_evaluations / res.wall_time_s
    row = {
        "wall_time_s": res.wall_time_s,
        "cells": n,
        "grid": list(model.grid.shape),
        "voxel_mm": model.grid.voxel_mm,
        "steps": res.steps,
        "operator_evaluations": res.operator_evaluations,
        "cell_updates_per_s": rate,
        "traffic_gb_s": rate * BYTES_RKL / 1e9,
        "isotherms": isotherms(res, list(LEVELS)),
    }
    if wall_outer is not None:
        row["wall_time_outer_s"] = wall_outer
    return row


def _timed_case(case: dict, backend: str, deadline: float, out: dict, repeats: int = 2) -> None:
    """Warm up, predict, then time the case's protocol (shortened if it would not fit)."""
    from thermal import benchmark_model

    from cryoneuro.thermal import Phase, simulate

    t0 = time.perf_counter()
    tiny = benchmark_model(1.0, size=(12.0, 12.0, 30.0))
    simulate(tiny, phases(WARM_PROTOCOL), backend=backend)  # compiles the kernels
    out["warmup_compile_s"] = time.perf_counter() - t0
    model = benchmark_model(case["voxel_mm"], size=tuple(case["size_mm"]))
    # Two full-size warm-ups of different lengths: their difference gives the time per
    # operator evaluation without the fixed setup (rasterisation, transfers, first-touch
    # allocation), which dominates a short run and would over-predict the full one.
    warms = [
        simulate(model, phases(spec), backend=backend)
        for spec in (WARM_PROTOCOL, tuple((k, 2 * d) for k, d in WARM_PROTOCOL))
    ]
    (w1, e1), (w2, e2) = ((w.wall_time_s, w.operator_evaluations) for w in warms)
    per_eval = (w2 - w1) / (e2 - e1) if e2 > e1 and w2 > w1 else w2 / e2
    setup = max(0.0, w2 - e2 * per_eval)
    out["warmup_full_size"] = {
        "protocols": [WARM_PROTOCOL, "the same, twice as long"],
        "wall_time_s": [w1, w2],
        "operator_evaluations": [e1, e2],
        "seconds_per_evaluation": per_eval,
        "setup_s": setup,
    }
    protocol = phases(case["protocol"])
    evals = count_evaluations(model, protocol)
    predicted = setup + evals * per_eval
    left = deadline - time.time()
    out["predicted_s"] = predicted
    if predicted > 0.8 * left:  # shorten the first freeze to what fits; say so
        fit = max(5.0, protocol[0].duration_s * 0.8 * left / predicted)
        protocol = [Phase("freeze", round(min(fit, protocol[0].duration_s), 1))]
        out["shortened"] = (
            f"predicted {predicted:.0f} s for the full protocol, {left:.0f} s "
            f"left: timed the first {protocol[0].duration_s:g} s of freeze only"
        )
    out["protocol"] = [(p.kind, p.duration_s) for p in protocol]
    runs = []
    for r in range(repeats):
        if r and 1.3 * runs[0]["wall_time_s"] > deadline - time.time():
            break
        synchronize(backend)
        t1 = time.perf_counter()
        res = simulate(model, protocol, backend=backend)
        synchronize(backend)
        runs.append(_row(res, model, time.perf_counter() - t1))
        print(
            f"  {backend} {case['voxel_mm']} mm run {r + 1}: {res.wall_time_s:.2f} s, "
            f"{runs[-1]['cell_updates_per_s'] / 1e6:.0f} M cell-updates/s",
            file=sys.stderr,
        )
    out["runs"] = runs
    best = min(runs, key=lambda x: x["wall_time_s"])
    out.update({k: v for k, v in best.items()})
    out["backend"] = backend


def part_main(cfg: dict, deadline: float, out: dict) -> None:
    _timed_case(cfg["main"], cfg["backend"], deadline, out)


def part_large(cfg: dict, deadline: float, out: dict) -> None:
    _timed_case(cfg["large"], cfg["backend"], deadline, out, repeats=1)


def part_agreement(cfg: dict, deadline: float, out: dict) -> None:
    import numpy as np
    from thermal import benchmark_model

    from cryoneuro.thermal import simulate

    case = cfg["agreement"]
    model = benchmark_model(case["voxel_mm"], size=tuple(case["size_mm"]))
    tiny = benchmark_model(1.0, size=(12.0, 12.0, 30.0))
    results = {}
    for backend in ("numba", cfg["backend"]):
        t0 = time.perf_counter()
        simulate(tiny, phases(WARM_PROTOCOL), backend=backend)  # JIT / kernel compile
        out[f"{backend}_warmup_s"] = time.perf_counter() - t0
        res = simulate(model, phases(case["protocol"]), backend=backend)
        results[backend] = res
        out[backend] = _row(res, model)
        print(
            f"  agreement: {backend} {case['voxel_mm']} mm {res.wall_time_s:.2f} s", file=sys.stderr
        )
    a, b = results["numba"], results[cfg["backend"]]
    out["protocol"] = case["protocol"]
    out["max_abs_diff_final_c"] = float(np.nanmax(np.abs(a.temperature_c - b.temperature_c)))
    out["max_abs_diff_min_c"] = float(np.nanmax(np.abs(a.min_temperature_c - b.min_temperature_c)))
    out["max_abs_diff_time_below_s"] = float(np.nanmax(np.abs(a.time_below_s - b.time_below_s)))
    out["probe_heat_rel_diff"] = float(
        np.max(np.abs(a.probe_heat_j - b.probe_heat_j)) / np.max(np.abs(a.probe_heat_j))
    )
    out["max_isotherm_diameter_diff_mm"] = max(
        abs(
            out["numba"]["isotherms"][k]["diameter_mm"]
            - out[cfg["backend"]]["isotherms"][k]["diameter_mm"]
        )
        for k in out["numba"]["isotherms"]
    )


PARTS = {
    "env": part_env,
    "bandwidth": part_bandwidth,
    "main": part_main,
    "agreement": part_agreement,
    "large": part_large,
}


def run_part_in_process(name: str, quick: bool, deadline: float, result_file: Path) -> int:
    out: dict = {}
    try:
        PARTS[name](config(quick), deadline, out)
        out["status"] = "ok"
        code = 0
    except Exception as exc:
        out["status"] = "error"
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc()
        traceback.print_exc()
        code = 1
    result_file.write_text(json.dumps(out, default=str), encoding="utf-8")
    return code


# --------------------------------------------------------------------------- orchestration
def default_out(quick: bool) -> Path:
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"]) / ("gpu_quick.json" if quick else "gpu.json")
    return HERE / "results" / ("gpu_quick.json" if quick else "gpu.json")


def cpu_reference() -> dict | None:
    """The CPU figure of record (benchmarks/results/thermal.json, the 2-core machine)."""
    path = HERE / "results" / "thermal.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        row = data["engine"]["cryoneuro rkl2 (default, 0.5 s)"]
        return {
            "source": "benchmarks/results/thermal.json",
            "machine": data["machine"],
            "grid": data["case"]["grid"],
            "wall_time_s": row["wall_time_s"],
            "cell_updates_per_s": row["cell_updates_per_s"],
        }
    except (OSError, KeyError, ValueError):
        return None


def orchestrate(args) -> int:
    cfg = config(args.quick)
    start = time.time()
    end = start + args.budget
    report: dict = {
        "benchmark": "cryoneuro thermal engine on GPU (issue 17 item 6)",
        "backend": cfg["backend"],
        "quick": args.quick,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
        "budget_s": args.budget,
        "cases": {k: cfg[k] for k in ("main", "agreement", "large")},
        "cpu_reference": cpu_reference(),
        "parts": {},
    }
    boxes = {k: v * (args.budget / 330.0) for k, v in PART_BOX_S.items()}
    for name in ("env", "bandwidth", "main", "agreement", "large"):
        left = end - time.time()
        box = left if name == "large" else min(boxes[name], left)
        if box < 5:
            report["parts"][name] = {"status": "skipped", "error": f"no time left ({left:.0f} s)"}
            continue
        deadline = time.time() + box
        print(f"[{time.time() - start:6.1f} s] part {name} (time box {box:.0f} s)", file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            rf = Path(tmp) / "part.json"
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--part",
                name,
                "--deadline",
                str(deadline),
                "--result-file",
                str(rf),
            ]
            if args.quick:
                cmd.append("--quick")
            t0 = time.time()
            try:
                proc = subprocess.run(cmd, check=False, timeout=box + 10.0)
                rc = proc.returncode
            except subprocess.TimeoutExpired:
                rc = None
            try:
                res = json.loads(rf.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                res = {
                    "status": "error",
                    "error": (
                        f"timed out after {box + 10:.0f} s"
                        if rc is None
                        else f"process exited {rc} without a result"
                    ),
                }
            res["part_wall_s"] = time.time() - t0
            report["parts"][name] = res
        report["elapsed_s"] = time.time() - start
        write(report, args.out)  # after every part: partial results survive a later failure
        print(
            f"[{time.time() - start:6.1f} s] part {name}: {res['status']}"
            + (f" ({res.get('error')})" if res["status"] != "ok" else ""),
            file=sys.stderr,
        )
    summarise(report)
    write(report, args.out)
    print(markdown(report))
    return 0 if all(p.get("status") == "ok" for p in report["parts"].values()) else 1


def write(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)  # never a half-written file


def summarise(report: dict) -> None:
    """Derived figures: bandwidth fractions and the speed-up over the CPU figure of record."""
    parts = report["parts"]
    bw = parts.get("bandwidth", {}).get("reference_gb_s")
    for name in ("main", "large"):
        p = parts.get(name, {})
        if p.get("status") == "ok" and bw:
            p["bandwidth_fraction"] = p["traffic_gb_s"] / bw
    ref = report.get("cpu_reference")
    main = parts.get("main", {})
    if ref and main.get("status") == "ok":
        main["speedup_vs_cpu_reference_rate"] = (
            main["cell_updates_per_s"] / ref["cell_updates_per_s"]
        )
        if not main.get("shortened") and list(main["grid"]) == list(ref["grid"]):
            main["speedup_vs_cpu_reference_wall"] = ref["wall_time_s"] / main["wall_time_s"]


def markdown(report: dict) -> str:
    parts = report["parts"]
    env, bw = parts.get("env", {}), parts.get("bandwidth", {})
    lines = [
        (
            f"Device: {env.get('device', '?')} ({env.get('cpu_count', '?')} CPU cores, "
            f"Numba {env.get('numba', '?')} with {env.get('numba_threads', '?')} threads, "
            f"CuPy {env.get('cupy', '-')})"
        )
    ]
    if bw.get("status") == "ok":
        extra = (
            f"; device-to-device copy {bw['copy_gb_s_median']:.0f} GB/s"
            if "copy_gb_s_median" in bw
            else ""
        )
        lines.append(
            f"Measured bandwidth (reference): triad {bw['reference_gb_s']:.0f} GB/s{extra}"
        )
    else:
        lines.append(f"Bandwidth: not measured ({bw.get('error', 'skipped')})")
    lines += [
        "",
        (
            "| case | backend | grid | protocol | wall (s) | operator evals | "
            "cell updates/s | bandwidth used |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("main", "large"):
        p = parts.get(name, {})
        if p.get("status") != "ok":
            lines.append(
                f"| {name} | {report['backend']} | - | - | not measured: "
                f"{p.get('error', 'skipped')} | | | |"
            )
            continue
        proto = " / ".join(f"{k} {d:g} s" for k, d in p["protocol"])
        frac = f"{100 * p['bandwidth_fraction']:.0f} %" if "bandwidth_fraction" in p else "-"
        lines.append(
            f"| {name} | {p['backend']} | {'x'.join(map(str, p['grid']))} @ {p['voxel_mm']} mm "
            f"| {proto} | {p['wall_time_s']:.2f} | {p['operator_evaluations']} | "
            f"{p['cell_updates_per_s'] / 1e6:.0f} M | {frac} |"
        )
    ag = parts.get("agreement", {})
    if ag.get("status") == "ok":
        be = report["backend"]
        lines += [
            "",
            (
                f"Agreement at {ag[be]['voxel_mm']} mm ({'x'.join(map(str, ag[be]['grid']))}), "
                f"protocol {' / '.join(f'{k} {d:g} s' for k, d in ag['protocol'])}: "
                f"max |T_{be} - T_numba| final {ag['max_abs_diff_final_c']:.2e} °C, "
                f"minimum-temperature field {ag['max_abs_diff_min_c']:.2e} °C; "
                f"probe heat rel. diff {ag['probe_heat_rel_diff']:.1e}"
            ),
            "",
            f"| isotherm | numba diameter (mm) | {be} diameter (mm) | numba wall (s) | {be} "
            f"wall (s) |",
            "|---|---|---|---|---|",
        ]
        for k in ag["numba"]["isotherms"]:
            lines.append(
                f"| {k} °C | {ag['numba']['isotherms'][k]['diameter_mm']:.4f} | "
                f"{ag[be]['isotherms'][k]['diameter_mm']:.4f} | "
                f"{ag['numba']['wall_time_s']:.2f} | {ag[be]['wall_time_s']:.2f} |"
            )
    else:
        lines += ["", f"Agreement: not measured ({ag.get('error', 'skipped')})"]
    main, ref = parts.get("main", {}), report.get("cpu_reference")
    if "speedup_vs_cpu_reference_rate" in main and not report["quick"]:
        lines += [
            "",
            f"Speed-up vs the CPU figure of record ({ref['source']}: "
            f"{ref['cell_updates_per_s'] / 1e6:.0f} M cell-updates/s, {ref['wall_time_s']:.1f} s "
            f"on {ref['machine']['cores']} cores): x{main['speedup_vs_cpu_reference_rate']:.1f} "
            f"in rate"
            + (
                f", x{main['speedup_vs_cpu_reference_wall']:.1f} in wall time"
                if "speedup_vs_cpu_reference_wall" in main
                else ""
            ),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CPU smoke run: the CuPy code on NumPy (backend 'array'), tiny grids",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds for all parts together (default 330; 120 with --quick)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default: see docstring)")
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part:
        return run_part_in_process(args.part, args.quick, args.deadline, args.result_file)
    if args.budget is None:
        args.budget = 120.0 if args.quick else 330.0
    if args.out is None:
        args.out = default_out(args.quick)
    return orchestrate(args)


if __name__ == "__main__":
    raise SystemExit(main())
