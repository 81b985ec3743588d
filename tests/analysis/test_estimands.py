"""Estimands: Rubin's rules by hand, MI equal to complete-case ANCOVA without missing data, a
monotone tipping point, and composite-strategy responders counted by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cryoneuro.analysis import estimands
from cryoneuro.analysis.outcomes import scored
from cryoneuro.analysis.synthetic import SyntheticStudy, generate
from cryoneuro.analysis.tidy import from_frames


def test_rubins_rules_by_hand():
    res = estimands.rubin(np.array([1.0, 1.2, 0.8]), np.array([0.04, 0.05, 0.06]), 50)
    # Q̄ = 1.0; Ū = 0.05; B = 0.04; T = 0.05 + (4/3)·0.04 = 0.103333
    assert res["estimate"] == pytest.approx(1.0)
    assert res["se"] ** 2 == pytest.approx(0.05 + 4 / 3 * 0.04)
    # γ = 0.053333/0.103333 = 0.516129; ν_old = 2/γ² = 7.50781; ν_obs = (51/53)·50·(1 − γ)
    # = 48.11321·0.483871 = 23.28058; Barnard–Rubin ν = 1/(0.133195 + 0.042954) = 5.67702
    assert res["df"] == pytest.approx(5.67702, abs=1e-4)
    from scipy.stats import t

    assert res["ci_upper"] - 1.0 == pytest.approx(
        t.ppf(0.975, 5.67702) * math.sqrt(0.31 / 3), rel=1e-5
    )


def test_without_missing_values_mi_is_the_complete_case_ancova():
    import statsmodels.formula.api as smf

    data = generate(SyntheticStudy(n_per_arm=20, dropout_per_visit=0.0, screen_failures=0, seed=9))
    scores = scored(data)
    table = estimands.tipping_point(
        data, scores, None, "m3", imputations=5, deltas=np.array([0.0, 1.0])
    )
    from cryoneuro.analysis.outcomes import outcome_values

    v = outcome_values(data, "pain", scores).query("visit_code == 'm3'")
    v = v.assign(treated=(v["arm"] == "cryoablation").astype(float))
    ols = smf.ols("change ~ baseline + treated", v).fit()
    row = table.iloc[0]
    assert row["between_variance"] == 0.0
    assert row["estimate"] == pytest.approx(ols.params["treated"], abs=1e-10)
    assert row["se"] == pytest.approx(ols.bse["treated"], abs=1e-10)
    assert row["df"] == ols.df_resid
    # nothing imputed: δ changes nothing
    assert table.iloc[1]["estimate"] == pytest.approx(row["estimate"], abs=1e-12)


def test_tipping_point_moves_the_effect_towards_null_and_is_seeded():
    data = generate(SyntheticStudy(n_per_arm=30, dropout_per_visit=0.12, effect=-2.0, seed=3))
    scores = scored(data)
    table = estimands.tipping_point(data, scores, None, "m3", imputations=20, seed=5)
    assert (np.diff(table["estimate"]) > 0).all()  # pain: δ worsens treated → effect up to 0
    point = table["tipping_point"].iloc[0]
    assert math.isfinite(point)
    before = table[table["delta"] < point].iloc[-1]
    at = table[table["delta"] == point].iloc[0]
    assert before["ci_upper"] < 0 <= at["ci_upper"]
    again = estimands.tipping_point(data, scores, None, "m3", imputations=20, seed=5)
    pd.testing.assert_frame_equal(table, again)


def test_composite_responders_count_reintervention_and_missing_as_failure():
    people = pd.DataFrame(
        [
            {"participant_id": p, "design": "rct", "arm": arm, "status": "completed"}
            for p, arm in (
                ("A", "cryo"),
                ("B", "cryo"),
                ("C", "cryo"),
                ("D", "sham"),
                ("E", "sham"),
            )
        ]
    )
    pain = {"A": (8, 2), "B": (8, 3), "C": (8, None), "D": (8, 7), "E": (6, 3)}
    rows = []
    for pid, (base, m3) in pain.items():
        rows.append(
            {
                "participant_id": pid,
                "visit_code": "baseline",
                "days_since_procedure": -7,
                "instrument": "nrs",
                "kind": "score",
                "measure": "pain",
                "value": str(base),
            }
        )
        if m3 is not None:
            rows.append(
                {
                    "participant_id": pid,
                    "visit_code": "m3",
                    "days_since_procedure": 91,
                    "instrument": "nrs",
                    "kind": "score",
                    "measure": "pain",
                    "value": str(m3),
                }
            )
    reint = pd.DataFrame([{"participant_id": "B", "days_since_procedure": 60}])
    data = from_frames(participants=people, scores=pd.DataFrame(rows), reinterventions=reint)
    table = estimands.composite_responders(data, scored(data), "sham")
    row = table.iloc[0]
    # cryo: A responds; B responded but was re-intervened on day 60 < 91; C missing → 1/3
    # sham: D 12.5 % (no), E 50 % (yes) → 1/2
    assert row["responders_treated"] == "1/3"
    assert row["responders_control"] == "1/2"
    assert row["risk_difference"] == pytest.approx(1 / 3 - 1 / 2)
