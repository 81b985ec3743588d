"""Live-preview benchmark (issue 17 item 4): the single-probe preview against the full 3D
engine on the same poses, in one run.

    PYTHONPATH=src .venv/bin/python benchmarks/preview.py [--phantom morton|stump] [--poses 5]

For each phantom:

1. ``build``: the r–z table, cold (no cache: one r–z solve) and warm (read from the cache).
2. ``readout``: :meth:`PlacementPreview.readout` for ``--poses`` poses around the target
   (needle vertical, tip shifted laterally and along the needle), median and max wall time; the
   goal is ≤ 0.5 s per pose on the 2-core machine.
3. ``peer``: the planner's own 3D evaluation of the same poses at 0.5 mm
   (:meth:`cryoneuro.planning.pipeline.Level.evaluate`, device drive), timed side by side; the
   ratio of the two times and the error of the preview against it: isotherm volumes in tissue
   (ml), block verdict and blocked length (mm), skin minimum (°C).

Output: JSON (benchmarks/results/preview.json or ``--out``) and a Markdown table on stdout.
Timings are wall times of this process; run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _poses(target, n):
    """Vertical needle (tip → handle = +z), tip 5 mm below the target centre shifted laterally."""
    offsets = [(0.0, 0.0), (-2.5, 0.0), (2.5, 0.0), (0.0, 2.0), (-1.0, -1.5), (1.5, 1.0)]
    d = np.array([0.0, 0.0, 1.0])
    return [(target + np.array([ox, 0.0, oz]) - 5.0 * d, d) for ox, oz in offsets[:n]]


def run(phantom_name: str, n_poses: int) -> dict:
    from cryoneuro.planning.pipeline import (
        ACTIVE_LENGTH_MM,
        PROBE_DIAMETER_MM,
        Level,
        device_for,
        protocol,
    )
    from cryoneuro.planning.preview import PlacementPreview
    from cryoneuro.planning.replay import _phantom_makers
    from cryoneuro.thermal import ProbeGeometry, simulate

    phantom = _phantom_makers()[
        {"morton": "morton_forefoot", "stump": "amputation_stump"}[phantom_name]
    ]()
    freeze_s = 120.0
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        pv = PlacementPreview(phantom, freeze_s=freeze_s, cache_dir=cache)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        PlacementPreview(phantom, freeze_s=freeze_s, cache_dir=cache)
        warm = time.perf_counter() - t0
    level: Level = pv.level
    device = device_for("argon")
    rows = []
    for tip, d in _poses(pv.target_mm, n_poses):
        r = pv.readout(tip, d)
        geometry = ProbeGeometry(
            tuple(tip), tuple(d), PROBE_DIAMETER_MM, ACTIVE_LENGTH_MM, name="probe 1"
        )
        t0 = time.perf_counter()
        res = simulate(
            level.model(geometry, device.gas_temperature_c, device=device), protocol(freeze_s)
        )
        prof, safety, _ = level.judge(
            res, phantom.centreline_mm, getattr(phantom, "block_proximal_to_mm", None)
        )
        t3d = time.perf_counter() - t0
        tissue = res.tissue_mask & pv.body
        v_cell = level.grid.voxel_mm**3 / 1000.0
        vol3d = {
            f"{iso:g}": float(np.count_nonzero((res.min_temperature_c <= iso) & tissue) * v_cell)
            for iso in (0.0, -20.0, -40.0)
        }
        skin = next(s for s in safety if s.name == "skin")
        rows.append(
            {
                "tip_mm": [round(float(v), 2) for v in tip],
                "preview_s": r.elapsed_s,
                "full_3d_s": t3d,
                "speedup": t3d / r.elapsed_s,
                "volumes_ml_preview": r.volumes_ml,
                "volumes_ml_3d": vol3d,
                "complete_block_preview": r.complete_block,
                "complete_block_3d": bool(prof.complete_block),
                "blocked_mm_preview": r.blocked_length_mm,
                "blocked_mm_3d": float(prof.blocked_length_mm),
                "skin_min_c_preview": r.skin_min_c,
                "skin_min_c_3d": float(skin.min_c),
            }
        )
    times = [r["preview_s"] for r in rows]
    rel = {
        iso: [
            abs(r["volumes_ml_preview"][iso] - r["volumes_ml_3d"][iso])
            / max(r["volumes_ml_3d"][iso], 1e-9)
            for r in rows
        ]
        for iso in ("0", "-20", "-40")
    }
    return {
        "phantom": phantom_name,
        "tissue": pv.tissue_name,
        "grid": list(level.grid.shape),
        "voxel_mm": level.grid.voxel_mm,
        "protocol": f"freeze {freeze_s:g} s, passive thaw 30 s, freeze {freeze_s:g} s; argon "
        "17G device drive",
        "table_build_cold_s": cold,
        "table_build_warm_s": warm,
        "rz_solve_s": pv.table.build_s,
        "readout_median_s": statistics.median(times),
        "readout_max_s": max(times),
        "full_3d_median_s": statistics.median(r["full_3d_s"] for r in rows),
        "volume_rel_error_max": {k: max(v) for k, v in rel.items()},
        "block_verdicts_agree": sum(
            r["complete_block_preview"] == r["complete_block_3d"] for r in rows
        ),
        "poses": len(rows),
        "rows": rows,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phantom", action="append", choices=["morton", "stump"])
    ap.add_argument("--poses", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "preview.json"))
    args = ap.parse_args()
    import numba

    out = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numba_threads": numba.get_num_threads(),
            "load_avg_at_start": os.getloadavg(),
        },
        "results": [run(p, args.poses) for p in (args.phantom or ["morton", "stump"])],
    }
    Path(args.out).write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(
        "| phantom | table cold (s) | table warm (s) | readout median / max (s) | full 3D "
        "median (s) | speed-up | max |ΔV|/V 0/−20/−40 °C | block verdicts agree |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in out["results"]:
        e = r["volume_rel_error_max"]
        print(
            f"| {r['phantom']} | {r['table_build_cold_s']:.2f} | {r['table_build_warm_s']:.2f} "
            f"| {r['readout_median_s']:.3f} / {r['readout_max_s']:.3f} | "
            f"{r['full_3d_median_s']:.1f} | "
            f"{r['full_3d_median_s'] / r['readout_median_s']:.0f}× | "
            f"{e['0']:.0%} / {e['-20']:.0%} / {e['-40']:.0%} | "
            f"{r['block_verdicts_agree']}/{r['poses']} |"
        )
    print(f"written: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
