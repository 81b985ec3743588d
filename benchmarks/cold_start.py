"""Cold and warm start of `cryoneuro simulate` (issue 17 item 3).

    PYTHONPATH=src .venv/bin/python benchmarks/cold_start.py [--case CASE.toml]

Each row is a fresh process (``python -m cryoneuro.cli simulate CASE --json --quiet``), timed
from outside:

* ``cold``: an empty Numba cache directory (``NUMBA_CACHE_DIR``), i.e. the first run after a
  fresh install: every kernel is compiled by Numba's JIT;
* ``warm``: the same cache directory again, now filled by the cold run: kernels load from the
  cache (the kernels are ``@njit(cache=True)``; an installed package whose directory is not
  writable caches in the per-user directory Numba picks, or in ``NUMBA_CACHE_DIR``);
* ``import``: ``python -c "import cryoneuro.thermal"`` (the floor of any command).

The difference cold − warm is the JIT cost a new user pays once. The simulation's own wall time
(``wall_time_s`` in the JSON) is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent


def _timed(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, encoding="utf-8", check=True)
    return time.perf_counter() - t0, out.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default=str(HERE.parent / "examples" / "homogeneous_muscle.toml"))
    ap.add_argument("--out", default=str(HERE / "results" / "cold_start.json"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        sim = [sys.executable, "-m", "cryoneuro.cli", "simulate", args.case, "--json", "--quiet"]
        t_imp, _ = _timed([sys.executable, "-c", "import cryoneuro.thermal"], env)
        rows.append({"run": "import", "process_s": t_imp})
        for label in ("cold", "warm", "warm again"):
            t, out = _timed(sim, env)
            wall = json.loads(out).get("wall_time_s")
            rows.append({"run": label, "process_s": t, "simulation_wall_s": wall})
            print(rows[-1], file=sys.stderr)
    cold = rows[1]["process_s"]
    warm = min(r["process_s"] for r in rows[2:])
    report = {"case": args.case, "rows": rows, "jit_cost_s": cold - warm}
    Path(args.out).write_text(json.dumps(report, indent=1), encoding="utf-8")
    print("| run | process (s) | simulation (s) |\n|---|---|---|")
    for r in rows:
        sim_s = r.get("simulation_wall_s")
        print(f"| {r['run']} | {r['process_s']:.1f} | {'' if sim_s is None else f'{sim_s:.1f}'} |")
    print(f"JIT cost paid once: {cold - warm:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
