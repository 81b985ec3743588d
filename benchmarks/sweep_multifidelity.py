"""Uncertainty in a minute (issue 17 item 5): the multi-fidelity plan sweep against the plain
0.5 mm sweep of the same 200 samples, side by side in one run.

    PYTHONPATH=src .venv/bin/python benchmarks/sweep_multifidelity.py [--plan out/demo/plan.json]
        [--samples 200] [--high-samples 24] [--workers 2] [--skip-plain]

1. The demo plan (planned now unless ``--plan`` is given).
2. ``multifidelity``: all samples at 1 mm + ``--high-samples`` of them at 0.5 mm on one local
   Dask cluster (:func:`cryoneuro.sweep_multifidelity.run_plan_sweep_multifidelity`), timed
   including the cluster start.
3. ``plain``: the plain 0.5 mm sweep of the same samples and seed (the reference the
   multi-fidelity estimate targets), timed the same way.

Reported per metric: the multi-fidelity estimate and its 95 % interval, the plain 0.5 mm value
(with its Wilson interval for probabilities), their difference, whether the reference lies in
the multi-fidelity interval, and the speed-up. JSON to benchmarks/results/sweep_multifidelity.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", type=Path, default=None)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--high-samples", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "sweep_multifidelity.json")
    args = ap.parse_args()

    from cryoneuro.planning.plan import Plan
    from cryoneuro.sweep import PlanUncertainty, dask_client, run_plan_sweep
    from cryoneuro.sweep_multifidelity import METRICS, run_plan_sweep_multifidelity

    record: dict = {"samples": args.samples, "high_samples": args.high_samples, "seed": args.seed}
    record["load_average_start"] = os.getloadavg()
    if args.plan is None:
        from cryoneuro.anatomy.phantoms import morton_forefoot
        from cryoneuro.planning.pipeline import plan_phantom

        work = Path(tempfile.mkdtemp(prefix="sweep_mf_"))
        t = time.perf_counter()
        plan = plan_phantom(morton_forefoot(), work / "demo")
        record["demo_plan_s"] = time.perf_counter() - t
    else:
        plan = Plan.load(args.plan)
    spec = PlanUncertainty()
    t = time.perf_counter()
    with dask_client(None, args.workers) as client:
        _low, _high, est = run_plan_sweep_multifidelity(
            plan,
            spec,
            samples=args.samples,
            high_samples=args.high_samples,
            seed=args.seed,
            client=client,
        )
    record["multifidelity_s"] = time.perf_counter() - t
    record["estimates"] = {k: v.as_dict() for k, v in est.items()}
    if not args.skip_plain:
        t = time.perf_counter()
        with dask_client(None, args.workers) as client:
            plain = run_plan_sweep(
                plan, spec, samples=args.samples, seed=args.seed, voxel_mm=0.5, client=client
            )
        record["plain_0.5mm_s"] = time.perf_counter() - t
        from statsmodels.stats.proportion import proportion_confint

        ref = {}
        for name, prob in METRICS:
            x = plain[name].astype(float)
            r = {"value": float(x.mean())}
            if prob:
                lo, hi = proportion_confint(int(x.sum()), len(x), method="wilson")
                r["ci95"] = [float(lo), float(hi)]
            e = est[name]
            r["in_multifidelity_ci"] = bool(e.ci95[0] <= r["value"] <= e.ci95[1])
            r["difference"] = e.estimate - r["value"]
            ref[name] = r
        record["plain_0.5mm"] = ref
        record["speedup"] = record["plain_0.5mm_s"] / record["multifidelity_s"]
    record["load_average_end"] = os.getloadavg()
    args.out.write_text(json.dumps(record, indent=1, default=float), encoding="utf-8")
    print("| metric | multi-fidelity (95 % CI) | plain 0.5 mm | in CI |\n|---|---|---|---|")
    for name, _ in METRICS:
        e = est[name]
        p = record.get("plain_0.5mm", {}).get(name, {})
        print(
            f"| {name} | {e.estimate:.3f} ({e.ci95[0]:.3f}–{e.ci95[1]:.3f}) | "
            f"{p.get('value', float('nan')):.3f} | {p.get('in_multifidelity_ci', '')} |"
        )
    print(
        f"multi-fidelity {record['multifidelity_s']:.1f} s"
        + (f"; plain 0.5 mm {record['plain_0.5mm_s']:.1f} s" if "plain_0.5mm_s" in record else ""),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
