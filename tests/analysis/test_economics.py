"""Cost-utility: a hand-worked example (QALY by AUC, costs, ICER, NMB), the baseline
adjustment against statsmodels OLS, a reproducible seeded bootstrap, refused unpriced items."""

from __future__ import annotations

import pandas as pd
import pytest

from cryoneuro.analysis import economics
from cryoneuro.analysis.tidy import from_frames
from cryoneuro.errors import InputError

UTILITY = {
    "T1": (0.5, 0.7, 0.9),
    "T2": (0.7, 0.8, 0.8),  # treated; baseline mean 0.6
    "C1": (0.6, 0.6, 0.7),
    "C2": (0.6, 0.5, 0.6),
}  # control; baseline mean 0.6
DAYS = {"baseline": -7, "m6": 183, "m12": 365}
COSTS = {"procedure": 1000.0, "procedure:sham": 400.0, "visit": 50.0, "reintervention": 800.0}


def _data(utility=UTILITY):
    people = pd.DataFrame(
        [
            {
                "participant_id": p,
                "design": "rct",
                "site": "S1",
                "status": "completed",
                "arm": "cryo" if p[0] == "T" else "sham",
            }
            for p in utility
        ]
    )
    scores, visits = [], []
    for pid, values in utility.items():
        for (code, day), value in zip(DAYS.items(), values, strict=True):
            visits.append({"participant_id": pid, "visit_code": code, "days_since_procedure": day})
            scores.append(
                {
                    "participant_id": pid,
                    "visit_code": code,
                    "days_since_procedure": day,
                    "instrument": "eq5d5l",
                    "kind": "score",
                    "measure": "index_england",
                    "value": str(value),
                }
            )
    # the sham arm's procedure is not a cryoablation: no procedures rows, priced per participant
    procedures = pd.DataFrame(
        [
            {"participant_id": p, "procedure_id": f"{p}-1", "days_since_procedure": 0}
            for p in utility
            if p[0] == "T"
        ]
    )
    reint = pd.DataFrame(
        [{"participant_id": "T1", "days_since_procedure": 250, "kind": "repeat cryoablation"}]
    )
    return from_frames(
        participants=people,
        procedures=procedures,
        visits=pd.DataFrame(visits),
        scores=pd.DataFrame(scores),
        reinterventions=reint,
    )


def test_hand_worked_qaly_cost_icer_and_nmb():
    data = _data()
    res = economics.cost_utility(data, data.scores, COSTS, "cryo", "sham", n_bootstrap=200)
    # QALY = Σ Δt·(u_a + u_b)/2 with t in years; baseline at day 0, then days 183 and 365
    a, b = 183 / 365.25, (365 - 183) / 365.25
    qaly = {p: a * (u[0] + u[1]) / 2 + b * (u[1] + u[2]) / 2 for p, u in UTILITY.items()}
    got = res.per_participant.set_index("participant_id")
    for pid, value in qaly.items():
        assert got.loc[pid, "qaly"] == pytest.approx(value, abs=1e-12)
    # costs: T1 1000 + 2 visits × 50 + re-intervention 800 = 1900; T2 1100; C1, C2 400 + 100
    assert dict(got["cost_gbp"]) == {"T1": 1900.0, "T2": 1100.0, "C1": 500.0, "C2": 500.0}
    dq = (qaly["T1"] + qaly["T2"]) / 2 - (qaly["C1"] + qaly["C2"]) / 2
    # equal baseline means: the baseline-adjusted increment is the raw difference
    assert res.summary["incremental_qaly_adjusted"] == pytest.approx(dq, abs=1e-12)
    assert res.summary["incremental_cost"] == pytest.approx(1000.0)
    assert res.summary["icer"] == pytest.approx(1000.0 / dq, rel=1e-12)
    assert res.summary["nmb_at_20000"] == pytest.approx(20000 * dq - 1000, rel=1e-12)
    assert res.summary["nmb_at_30000"] == pytest.approx(30000 * dq - 1000, rel=1e-12)
    # worked by hand (a = 0.50102669, b = 0.49828884 years): T1 0.6·a + 0.8·b = 0.69924709,
    # T2 0.75·a + 0.8·b = 0.77440109, C1 0.6·a + 0.65·b = 0.62450376, C2 0.55·(a + b) =
    # 0.54962354; ΔQ = 0.73682409 − 0.58706365 = 0.14976044 QALY, ICER = 1000 / 0.14976044 =
    # £6,677.33 per QALY, NMB(£20,000) = 2995.21 − 1000 = £1,995.21
    assert res.summary["incremental_qaly_adjusted"] == pytest.approx(0.14976044, abs=1e-8)
    assert res.summary["icer"] == pytest.approx(6677.3, abs=0.05)
    assert res.summary["nmb_at_20000"] == pytest.approx(1995.21, abs=0.01)


def test_baseline_adjustment_equals_ols():
    import statsmodels.formula.api as smf

    utility = {**UTILITY, "T1": (0.3, 0.7, 0.9), "C2": (0.8, 0.5, 0.6)}
    data = _data(utility)
    res = economics.cost_utility(data, data.scores, COSTS, "cryo", "sham", n_bootstrap=100)
    frame = res.per_participant.assign(treated=lambda f: (f["arm"] == "cryo").astype(float))
    ols = smf.ols("qaly ~ treated + baseline_utility", frame).fit()
    assert res.summary["incremental_qaly_adjusted"] == pytest.approx(
        ols.params["treated"], abs=1e-12
    )
    assert res.summary["incremental_qaly_adjusted"] != pytest.approx(
        res.summary["incremental_qaly_unadjusted"]
    )


def test_seeded_bootstrap_is_reproducible():
    data = _data()
    one = economics.cost_utility(data, data.scores, COSTS, "cryo", "sham", n_bootstrap=300, seed=7)
    two = economics.cost_utility(data, data.scores, COSTS, "cryo", "sham", n_bootstrap=300, seed=7)
    pd.testing.assert_frame_equal(one.ceac, two.ceac)
    pd.testing.assert_frame_equal(one.bootstrap, two.bootstrap)
    other = economics.cost_utility(
        data, data.scores, COSTS, "cryo", "sham", n_bootstrap=300, seed=8
    )
    assert not one.bootstrap.equals(other.bootstrap)
    # CEAC: a probability, non-decreasing in λ here because ΔQ > 0 in every replicate
    p = one.ceac["probability_cost_effective"]
    assert p.between(0, 1).all()


def test_unpriced_items_are_refused():
    data = _data()
    with pytest.raises(InputError, match="procedure:sham"):
        economics.cost_utility(
            data,
            data.scores,
            {k: v for k, v in COSTS.items() if k != "procedure:sham"},
            "cryo",
            "sham",
        )
    with pytest.raises(InputError, match="reintervention"):
        economics.cost_utility(
            data,
            data.scores,
            {k: v for k, v in COSTS.items() if k != "reintervention"},
            "cryo",
            "sham",
        )


def test_unit_cost_file_errors_name_row_and_column(tmp_path):
    path = tmp_path / "costs.csv"
    path.write_text("item,unit_cost_gbp,source\nprocedure,1000,x\nvisit,-5,x\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"row 3, column unit_cost_gbp"):
        economics.load_unit_costs(path)
    path.write_text("item,unit_cost_gbp,source\ndrug,10,x\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"row 2, column item"):
        economics.load_unit_costs(path)


def test_cli_refuses_a_bad_unit_cost_file_before_analysing(tmp_path):
    from typer.testing import CliRunner

    from cryoneuro.cli import app

    path = tmp_path / "costs.csv"
    path.write_text("item,unit_cost_gbp\nprocedure,abc\n", encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["analyse", "--synthetic", "rct", "--out", str(tmp_path / "o"), "--economics", str(path)],
    )
    assert result.exit_code == 2
    assert "row 2, column unit_cost_gbp" in result.stderr
    assert not (tmp_path / "o" / "analysis.html").exists()
