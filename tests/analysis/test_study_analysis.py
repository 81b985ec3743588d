"""Study analysis against known truths: synthetic effects, hand-worked KM and exact CIs."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from cryoneuro.analysis import outcomes, rct, safety, survival
from cryoneuro.analysis.synthetic import SyntheticStudy, generate
from cryoneuro.analysis.tidy import from_frames
from cryoneuro.cli import app


@pytest.fixture(scope="module")
def trial():
    return generate(SyntheticStudy(seed=7))


@pytest.mark.parametrize("effect", [-2.0, 0.0])
def test_mmrm_recovers_the_known_treatment_effect(effect):
    # the generator's truth: treated − control difference in change = `effect` at every visit
    data = generate(SyntheticStudy(effect=effect, seed=11))
    mm = rct.mmrm(data, "pain")
    an = rct.ancova(data, "pain")
    primary = mm[mm["visit"] == "m3"].iloc[0]
    assert primary["converged"]
    assert primary["ci_lower"] <= effect <= primary["ci_upper"]
    # a second method (per-visit ANCOVA) agrees with the mixed model within a tenth of a point
    assert abs(primary["effect"] - an[an["visit"] == "m3"].iloc[0]["effect"]) < 0.15
    # pooled over visits the estimate is within 0.25 of the truth (6 visits, n=60 per arm)
    assert abs(mm["effect"].mean() - effect) < 0.25
    # the comparison is named treated − control, control recognised by its name
    assert primary["comparison"] == "cryoablation − sham"


def test_change_from_baseline_matches_a_one_sample_t_interval(trial):
    table = outcomes.change_from_baseline(trial, "pain")
    values = outcomes.outcome_values(trial, "pain")
    row = table[(table["arm"] == "sham") & (table["visit"] == "m6")].iloc[0]
    change = values[(values["arm"] == "sham") & (values["visit_code"] == "m6")]["change"]
    ci = stats.ttest_1samp(change, 0.0).confidence_interval(0.95)
    assert row["n"] == len(change)
    assert row["ci_lower"] == pytest.approx(ci.low, abs=1e-12)
    assert row["ci_upper"] == pytest.approx(ci.high, abs=1e-12)
    # the generator's control change is −1.0 (rounding to the integer NRS is zero-mean)
    assert row["ci_lower"] < -1.0 < row["ci_upper"]


def test_responder_rates_use_exact_binomial_intervals(trial):
    table = outcomes.responder_rates(trial, "pain")
    assert set(table["threshold_percent"]) == {30, 50}
    for _, row in table.sample(6, random_state=1).iterrows():
        ci = stats.binomtest(int(row["responders"]), int(row["n"])).proportion_ci(
            confidence_level=0.95, method="exact"
        )
        assert row["ci_lower"] == pytest.approx(ci.low, abs=1e-9)
        assert row["ci_upper"] == pytest.approx(ci.high, abs=1e-9)


def _tiny(**tables):
    return from_frames("tiny", **{k: pd.DataFrame(v).astype(object) for k, v in tables.items()})


def _pain_rows(pid, series):
    return [
        {
            "participant_id": pid,
            "visit_code": code,
            "days_since_procedure": day,
            "instrument": "nrs",
            "kind": "score",
            "measure": "pain",
            "value": value,
        }
        for code, day, value in series
    ]


def test_responder_threshold_counts_an_exact_30_percent_reduction():
    data = _tiny(
        participants=[{"participant_id": "A"}],
        scores=_pain_rows("A", [("baseline", 0, 10), ("m1", 30, 7)]),
    )
    table = outcomes.responder_rates(data, "pain")
    assert table.set_index("threshold_percent").loc[30, "responders"] == 1  # 10 → 7 is 30 %
    assert table.set_index("threshold_percent").loc[50, "responders"] == 0


def test_recurrence_is_the_midpoint_of_the_interval_where_relief_was_lost():
    # baseline 8: day 30 → 4 (50 %), day 91 → 5 (37.5 %), day 182 → 7 (12.5 %: relief lost)
    data = _tiny(
        participants=[{"participant_id": "A"}, {"participant_id": "B"}],
        scores=_pain_rows("A", [("baseline", -3, 8), ("m1", 30, 4), ("m3", 91, 5), ("m6", 182, 7)])
        + _pain_rows("B", [("baseline", -3, 6), ("m1", 30, 2), ("m3", 91, 3)]),
    )
    times = survival.recurrence_times(data).set_index("participant_id")
    assert times.loc["A", "event"] == 1
    assert times.loc["A", "duration"] == pytest.approx((91 + 182) / 2)
    assert (times.loc["A", "interval_lower"], times.loc["A", "interval_upper"]) == (91, 182)
    assert times.loc["B", "event"] == 0
    assert times.loc["B", "duration"] == 91


def test_kaplan_meier_median_matches_a_hand_worked_product_limit():
    # S(5) = 5/6, S(8) = 5/6 · 4/5 = 2/3 (one censored at 8), S(12) = 2/3 · 2/3 = 4/9 < 1/2
    # → median 12 (Kaplan & Meier 1958 product-limit estimator, worked by hand)
    times = pd.DataFrame(
        {"arm": "all", "duration": [5, 8, 8, 12, 15, 20], "event": [1, 1, 0, 1, 0, 1]}
    )
    table, _fig = survival.kaplan_meier(times, "recurrence", at_days=(10,))
    assert table.loc[0, "median_days"] == 12
    assert table.loc[0, "free_at_day_10"] == pytest.approx(2 / 3)
    assert table.loc[0, "events"] == 4


def test_safety_rates_per_nice_category_with_exact_cis():
    people = [{"participant_id": f"P{i}", "status": "enrolled"} for i in range(10)]
    procedures = [{"participant_id": f"P{i}", "procedure_id": f"C{i}"} for i in range(10)]
    events = [
        {"participant_id": "P1", "category": "infection", "serious": "false"},
        {"participant_id": "P1", "category": "infection", "serious": "true"},
        {"participant_id": "P2", "category": "infection", "serious": "false"},
        {"participant_id": "P3", "category": "further_intervention"},
    ]
    reint = [{"participant_id": "P4", "kind": "neurectomy"}]
    data = _tiny(
        participants=people, procedures=procedures, adverse_events=events, reinterventions=reint
    )
    table = safety.safety_table(data).set_index("category")
    assert table.loc["infection", "participants_with_event"] == 2
    assert table.loc["infection", "events"] == 3
    assert table.loc["infection", "serious"] == 1
    ci = stats.binomtest(2, 10).proportion_ci(method="exact")
    assert table.loc["infection", "ci_lower"] == pytest.approx(ci.low)
    assert table.loc["infection", "ci_upper"] == pytest.approx(ci.high)
    # an adverse event in the category and a recorded re-intervention both count
    assert table.loc["further_intervention", "participants_with_event"] == 2
    assert table.loc["damage_to_adjacent_structures", "participants_with_event"] == 0
    assert table.loc["damage_to_adjacent_structures", "ci_upper"] == pytest.approx(
        1 - 0.025 ** (1 / 10)
    )  # exact upper bound with 0 events: 1 − (α/2)^(1/n)


@pytest.mark.parametrize(("scale", "expected"), [(1.0, 1.0), (0.5, 2.0)])
def test_calibration_detects_when_predictions_are_too_short(scale, expected):
    # truth: relief = prediction · exp(N(0, 0.05)); halving the predictions doubles the ratio
    data = generate(
        SyntheticStudy(
            design="case_series",
            n_per_arm=60,
            effect=-3.5,
            relief_median_days=150,
            calibration_sd=0.05,
            seed=3,
        )
    )
    data.procedures["predicted_relief_days"] *= scale
    times = survival.recurrence_times(data)
    table, summary, fig = survival.calibration(times)
    # the figure plots each participant once at (predicted, observed): recurrences and the
    # censored, exactly the rows of the recurrence times
    known = times.dropna(subset=["predicted_relief_days"])
    drawn = {c.get_label(): c.get_offsets() for c in fig.axes[0].collections}
    for label, event in (("recurrence", 1), ("no recurrence yet (censored)", 0)):
        rows = known[known["event"] == event]
        points = sorted(map(tuple, rows[["predicted_relief_days", "duration"]].to_numpy(float)))
        np.testing.assert_allclose(sorted(map(tuple, np.asarray(drawn[label], float))), points)
    assert table["n"].sum() == len(known) == summary["n"]  # tertiles partition the sample
    plt.close(fig)
    # visit-grid noise and misclassified visits: within 25 % of the true ratio
    assert summary["median_observed_over_predicted"] == pytest.approx(expected, rel=0.25)
    assert summary["concordance_index"] > 0.6  # longer predictions do last longer


def test_flow_counts_every_participant_once(trial):
    counts = rct.flow(trial, "m3")
    assert counts["assessed"] == counts["excluded"] + counts["enrolled"]
    assert sum(a["allocated"] for a in counts["arms"].values()) == counts["enrolled"]
    for arm in counts["arms"].values():
        assert arm["with_primary_visit"] <= arm["analysed_itt"] <= arm["allocated"]


def test_control_arm_must_be_identifiable(trial):
    data = generate(SyntheticStudy(arms=("a", "b"), n_per_arm=5, seed=2))
    with pytest.raises(Exception, match="--control"):
        rct.arms(data)
    assert rct.arms(data, "b") == ("a", "b")


def test_cli_analyse_writes_the_report_and_json(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app, ["analyse", "--synthetic", "case-series", "--out", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["design"] == "case_series"
    html = (tmp_path / "analysis.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 5
    for name in ("safety", "responders", "km_recurrence", "characteristics", "change_pain"):
        assert (tmp_path / "tables" / f"{name}.csv").is_file()
    assert (tmp_path / "analysis.pdf").read_bytes()[:4] == b"%PDF"
    # the tables written for --synthetic re-load and give the same answer
    again = runner.invoke(
        app, ["analyse", str(tmp_path / "data"), "--out", str(tmp_path / "again"), "--json"]
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["responders"] == payload["responders"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyse", "/no/such/folder"], "no such folder"),
        (["analyse", "--synthetic", "cohort"], "--synthetic must be"),
        (["analyse", "--synthetic", "rct", "--primary-visit", "m99"], "m99"),
    ],
)
def test_cli_analyse_bad_input_is_one_line(tmp_path, args, message):
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_analysis_without_pain_scores_is_refused(tmp_path):
    data = _tiny(participants=[{"participant_id": "A"}])
    from cryoneuro.analysis.study import analyse
    from cryoneuro.errors import InputError

    with pytest.raises(InputError, match="no pain scores"):
        analyse(data, tmp_path)


def test_percent_change_undefined_at_zero_baseline():
    data = _tiny(
        participants=[{"participant_id": "A"}],
        scores=_pain_rows("A", [("baseline", 0, 0), ("m1", 30, 2)]),
    )
    values = outcomes.outcome_values(data, "pain")
    assert np.isnan(values.loc[0, "percent_change"])
    assert outcomes.responder_rates(data, "pain").empty


def test_rct_report_has_between_arm_effects_for_every_outcome(tmp_path):
    from cryoneuro.analysis.study import analyse

    data = generate(
        SyntheticStudy(
            n_per_arm=25,
            screen_failures=2,
            relief_median_days=120,
            reintervention_probability=0.9,
            visits={"baseline": -7, "m1": 30, "m3": 91, "m6": 182},
            seed=21,
        )
    )
    results = analyse(data, tmp_path, report=False)  # the report itself: the CLI test
    secondary = pd.DataFrame(results["secondary_effects"])
    # every continuous outcome in the data has its MMRM effect at every visit
    assert set(secondary["outcome"]) == {"qol", "qol_vas", "foot_walking", "mobility"}
    assert secondary.groupby("outcome").size().eq(3).all()
    assert secondary["method"].eq("MMRM (unstructured)").all()
    # the generator makes EQ-5D better when pain is lower: the treated arm gains index points
    qol_m1 = secondary.query("outcome == 'qol' and visit == 'm1'").iloc[0]
    assert qol_m1["ci_lower"] > 0
    responders = pd.DataFrame(results["responder_effects"])
    assert {30, 50} == set(responders["threshold_percent"])
    assert set(pd.DataFrame(results["safety_effects"])["category"]) >= {"pain"}
    hazards = {h["endpoint"]: h for h in results["hazard_ratios"]}
    assert hazards["pain recurrence"]["hazard_ratio"] < 1  # relief lasts longer when treated
    assert results["treatment_effect"][0]["df"] > 0
    # estimands: the MI table at the primary visit and the composite responders are there
    assert {row["delta"] for row in results["multiple_imputation"]} >= {0.0}
    assert len(results["composite_responders"]) == 3


@pytest.mark.parametrize(("median_days", "expected"), [(100, "contradiction"), (300, "consistent")])
def test_calibration_sets_registry_relief_against_published_series(median_days, expected):
    """Same definitions as the plan: the plans' regrowth-limited median and the registry's KM
    median are set against the Morton's series (relief still present at 6 months, CVIR 2024,
    to 19.7 months, Cazzato 2016 = 183–600 days): 100 days ends before 183 (contradiction),
    300 days lies inside."""
    data = generate(
        SyntheticStudy(
            design="case_series",
            n_per_arm=60,
            effect=-3.5,
            neuroma_type="morton",
            relief_median_days=median_days,
            calibration_sd=0.05,
            seed=3,
        )
    )
    _table, summary, _fig = survival.calibration(survival.recurrence_times(data))
    [row] = summary["published_series"]
    assert row["neuroma_type"] == "morton"
    assert row["published_interval_days"] == "183–600"
    assert row["prediction_vs_published"] == expected
