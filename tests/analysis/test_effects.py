"""Between-arm effects: Newcombe's published intervals, R's fisher.test and survival::coxph
(tests/data/r_reference/effects_R.R, R 4.2.2, survival 3.5-3), hand-counted numbers at risk."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from cryoneuro.analysis import effects, survival

REF = Path(__file__).resolve().parents[1] / "data" / "r_reference"


@pytest.mark.parametrize(
    ("counts", "lower", "upper"),
    [
        # Newcombe 1998 (Stat Med 17:873) Table II, method 10 (hybrid score, no correction)
        ((56, 70, 48, 80), 0.0524, 0.3339),
        ((9, 10, 3, 10), 0.1705, 0.8090),
        ((6, 7, 2, 7), 0.0582, 0.8062),
        ((5, 56, 0, 29), -0.0381, 0.1926),
    ],
)
def test_risk_difference_uses_newcombes_interval(counts, lower, upper):
    rd, lo, hi = effects.risk_difference(*counts)
    k1, n1, k2, n2 = counts
    assert rd == pytest.approx(k1 / n1 - k2 / n2)
    assert lo == pytest.approx(lower, abs=5e-5)
    assert hi == pytest.approx(upper, abs=5e-5)


@pytest.fixture(scope="module")
def r_ref():
    return pd.read_csv(REF / "effects_reference.csv").set_index("what")


@pytest.mark.parametrize("cells", [(48, 11, 16, 42), (5, 51, 0, 29), (3, 17, 9, 11)])
def test_odds_ratio_equals_r_fisher_test(r_ref, cells):
    a, b, c, d = cells
    ref = r_ref.loc["fisher_" + "_".join(str(x) for x in cells)]
    est, lo, hi, p = effects.odds_ratio(a, a + b, c, c + d)
    for mine, theirs in ((est, ref["estimate"]), (lo, ref["lower"]), (hi, ref["upper"])):
        if math.isinf(float(theirs)):
            assert math.isinf(mine)
        else:
            # R's fisher.test solves the conditional MLE and limits with uniroot at its default
            # tolerance (≈1.2e-4 on a transformed scale): agreement is to about 1e-3
            assert mine == pytest.approx(float(theirs), rel=1e-3)
    assert p == pytest.approx(ref["p"], rel=1e-6)


def test_cox_hazard_ratio_equals_r_coxph(r_ref):
    data = pd.read_csv(REF / "cox_data.csv")
    times = data.assign(arm=data["treated"].map({1: "cryo", 0: "sham"}))
    hr = effects.hazard_ratio(times, "cryo", "sham", "recurrence")
    ref = r_ref.loc["cox_efron"]
    assert hr["hazard_ratio"] == pytest.approx(ref["estimate"], rel=1e-5)
    assert hr["ci_lower"] == pytest.approx(ref["lower"], rel=1e-5)
    assert hr["ci_upper"] == pytest.approx(ref["upper"], rel=1e-5)
    assert hr["p"] == pytest.approx(ref["p"], rel=1e-4)


def test_risk_ratio_is_defined_with_zero_events_in_one_arm():
    rr, lo, hi = effects.risk_ratio(0, 30, 4, 30)
    assert rr == 0.0
    assert lo == 0.0
    assert 0 < hi < 1.5
    assert all(math.isnan(x) for x in effects.risk_ratio(0, 30, 0, 30))


def test_numbers_at_risk_are_counted_by_hand():
    times = pd.DataFrame(
        {
            "arm": ["a"] * 4 + ["b"] * 3,
            "duration": [10, 91, 200, 400, 5, 91, 90],
            "event": [1, 0, 1, 0, 1, 1, 0],
        }
    )
    table = survival.at_risk(times, days=(0, 91, 182, 365)).set_index("arm")
    assert list(table.loc["a"]) == [4, 3, 2, 1]  # 91 is still at risk on day 91
    assert list(table.loc["b"]) == [3, 1, 0, 0]


def test_subgroup_interaction_f_test_by_hand():
    import numpy as np
    from scipy import stats

    from cryoneuro.analysis.outcomes import outcome_values, scored
    from cryoneuro.analysis.synthetic import SyntheticStudy, generate

    data = generate(SyntheticStudy(n_per_arm=30, seed=12))
    scores = scored(data)
    table, tests = effects.subgroups(data, scores, None, "m3")
    site = tests.set_index("factor").loc["site"]
    v = (
        outcome_values(data, "pain", scores)
        .query("visit_code == 'm3'")
        .dropna(subset=["baseline", "change"])
    )
    level = v["participant_id"].map(data.participants.set_index("participant_id")["site"])
    t = (v["arm"] == "cryoablation").to_numpy(float)
    dummies = [(level == s).to_numpy(float) for s in sorted(set(level))[1:]]
    base = [np.ones(len(v)), v["baseline"].to_numpy(float), t, *dummies]
    X0 = np.column_stack(base)
    X1 = np.column_stack(base + [t * d for d in dummies])
    y = v["change"].to_numpy(float)
    rss0 = np.sum((y - X0 @ np.linalg.lstsq(X0, y, rcond=None)[0]) ** 2)
    rss1 = np.sum((y - X1 @ np.linalg.lstsq(X1, y, rcond=None)[0]) ** 2)
    q, df_den = len(dummies), len(y) - X1.shape[1]
    f = (rss0 - rss1) / q / (rss1 / df_den)
    assert site["interaction_F"] == pytest.approx(f, rel=1e-10)
    assert site["interaction_p"] == pytest.approx(stats.f.sf(f, q, df_den), rel=1e-8)
    # within-level effects: one row per site level, each with both arms
    assert set(table.query("factor == 'site'")["level"]) == set(level)
