"""Plan a bundled phantom from a named approach with a protocol preset, and print the verdict.

Why: the issue-12 figures of docs/planning.md ("Plantar approach", "Cazzato 2016 ...") come from
this script, so they can be re-measured after any change to the search, the score or the
boundaries. One JSON line per run: feasible, reasons, block, skin minimum, skin protection,
the chosen placement, the search's counts and the wall time.

    python benchmarks/plan_approaches.py --phantom morton --approach oblique --protocol cazzato-2016
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from cryoneuro.anatomy.phantoms import amputation_stump, morton_forefoot
from cryoneuro.planning.pipeline import Boundaries, plan_phantom

PHANTOMS = {"morton": morton_forefoot, "stump": amputation_stump}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phantom", choices=sorted(PHANTOMS), default="morton")
    ap.add_argument("--approach", default=None, help="a named approach, or top (default)")
    ap.add_argument("--protocol", default=None, help="a preset (planning/protocols.py)")
    ap.add_argument("--skin", default="convective", choices=["convective", "warm-saline"])
    ap.add_argument("--skin-protection", default="if-needed", choices=["if-needed", "never"])
    ap.add_argument("--sobol", type=int, default=16)
    ap.add_argument("--local", type=int, default=16)
    ap.add_argument("--screen-mm", type=float, default=1.0)
    ap.add_argument("--confirm-mm", type=float, default=0.5)
    a = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        plan = plan_phantom(
            PHANTOMS[a.phantom](),
            out,
            approach=a.approach,
            protocol=a.protocol,
            boundaries=Boundaries(skin=a.skin),
            skin_protection=a.skin_protection,
            n_sobol=a.sobol,
            n_local=a.local,
            screen_voxel_mm=a.screen_mm,
            confirm_voxel_mm=a.confirm_mm,
        )
    skin = next((s["min_temperature_c"] for s in plan.safety if s["structure"] == "skin"), None)
    found = plan.inputs.get("search", {})
    print(
        json.dumps(
            {
                "args": vars(a),
                "feasible": plan.feasible,
                "reasons": plan.reasons,
                "complete_block": plan.nerve.get("complete_block"),
                "blocked_mm": plan.nerve.get("blocked_length_mm"),
                "skin_min_c": skin,
                "skin_protection": plan.inputs.get("skin_protection"),
                "chosen": found.get("chosen"),
                "simulated": found.get("simulated"),
                "refused": found.get("refused"),
                "confirmed_scores": found.get("confirmed_scores"),
                "wall_s": round(time.perf_counter() - t0, 1),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
