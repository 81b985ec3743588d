"""Small plan sweeps (issue 17): a bin where every sample blocks must plot (statsmodels' Wilson
bound is 1 - 2e-16 at k = n = 7, 9, 12, 20: negative error bars), and the results are
written before any plot is drawn."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from cryoneuro import sweep


@pytest.mark.parametrize(("k", "n"), [(7, 7), (0, 9), (12, 12), (20, 20), (7, 16)])
def test_wilson_interval_contains_the_proportion(k, n) -> None:
    lo, hi = sweep._wilson(k, n)
    assert lo <= k / n <= hi
    ref_lo, ref_hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert lo == pytest.approx(ref_lo, abs=1e-12)
    assert hi == pytest.approx(ref_hi, abs=1e-12)


def _table(n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "position_error_mm": rng.uniform(0, 2, n),
            "complete_block": np.ones(n, bool),
            "skin_safe": np.ones(n, bool),
            "neurotmesis_risk": np.zeros(n, bool),
            "coverage_20": rng.uniform(0.9, 1, n),
            "coverage_40": rng.uniform(0.5, 0.9, n),
            "skin_min_c": rng.uniform(5, 15, n),
            "warmest_min_c": rng.uniform(-40, -25, n),
            "tip_temperature_c": np.full(n, -88.5),
            "relief_median_days": rng.uniform(40, 60, n),
        }
    )


def test_all_blocked_sweep_plots_without_negative_error_bars(tmp_path) -> None:
    table = _table()
    rows = sweep.block_by_error(table)
    assert rows
    assert all(r["ci95"][0] <= r["p_block"] <= r["ci95"][1] for r in rows)
    path = sweep.plot_plan_sweep(table, tmp_path / "u.png", title="12 samples")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_results_are_written_before_the_plot(tmp_path) -> None:
    table = _table()

    def broken_plot(_path):
        raise RuntimeError("plotting failed")

    with pytest.raises(RuntimeError):
        sweep.write_results(table, {"plan": "x"}, tmp_path, "sweep", "u.png", broken_plot)
    assert len(pd.read_csv(tmp_path / "sweep.csv")) == len(table)
    assert json.loads((tmp_path / "summary.json").read_text("utf-8"))["plan"] == "x"
