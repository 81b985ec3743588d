"""The checks before analysis: each silent case of issue 15 is refused with file, row and column,
or left out by a rule that the report lists."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from cryoneuro.analysis import safety, survival
from cryoneuro.analysis.synthetic import SyntheticStudy, generate
from cryoneuro.analysis.tidy import load_tidy, write_tidy
from cryoneuro.analysis.validate import check, measure_range
from cryoneuro.cli import app
from cryoneuro.errors import InputError
from cryoneuro.instruments import INSTRUMENTS


@pytest.fixture(scope="module")
def trial():
    return generate(SyntheticStudy(n_per_arm=10, screen_failures=1, dropout_per_visit=0.0, seed=3))


def _folder(tmp_path, data, edit=None, table="scores"):
    write_tidy(data, tmp_path)
    if edit is not None:
        path = tmp_path / f"{table}.csv"
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame = edit(frame)
        frame.to_csv(path, index=False)
    return tmp_path


def _pain_row(frame, pid=None, visit="m3"):
    mask = (
        (frame["instrument"] == "nrs")
        & (frame["measure"] == "pain")
        & (frame["visit_code"] == visit)
    )
    if pid is not None:
        mask &= frame["participant_id"] == pid
    return frame.index[mask][0]


def _refused(folder, *, file, row, column, words):
    with pytest.raises(InputError) as info:
        check(load_tidy(folder))
    message = str(info.value)
    assert f"{folder / file}, row {row}, column {column}" in message, message
    assert re.search(words, message), message
    return message


def test_clean_synthetic_data_pass_with_nothing_hidden(trial):
    checked = check(trial)
    # no dropouts, every participant has a procedure: nothing to exclude or derive
    assert checked.exclusions == []
    assert len(checked.data.scores) == len(trial.scores)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("-30", "outside its range 0 to 10"),
        ("70", "outside its range 0 to 10"),
        ("seven", "not a number"),
    ],
)
def test_an_impossible_or_non_numeric_pain_score_is_refused(tmp_path, trial, value, words):
    rows = {}

    def edit(frame):
        rows["i"] = _pain_row(frame)
        frame.loc[rows["i"], "value"] = value
        return frame

    folder = _folder(tmp_path, trial, edit)
    _refused(folder, file="scores.csv", row=rows["i"] + 2, column="value", words=words)


def test_the_cli_refuses_with_exit_2_and_one_line(tmp_path, trial):
    folder = _folder(
        tmp_path / "d",
        trial,
        lambda f: f.assign(value=f["value"].where(f.index != _pain_row(f), "-30")),
    )
    result = CliRunner().invoke(app, ["analyse", str(folder), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "scores.csv, row" in result.output
    assert "column value" in result.output
    assert not (tmp_path / "o" / "analysis.html").exists()


def test_an_out_of_range_raw_answer_is_refused_by_the_instrument(tmp_path, trial):
    rows = {}

    def edit(frame):
        profile = frame.index[frame["measure"] == "profile"][0]
        frame.loc[profile, "value"] = "61111"
        rows["i"] = profile
        return frame

    folder = _folder(tmp_path, trial, edit)
    _refused(folder, file="scores.csv", row=rows["i"] + 2, column="value", words="eq5d5l")


def test_a_duplicated_participant_visit_is_refused(tmp_path, trial):
    def edit(frame):
        copy = frame.loc[[_pain_row(frame)]].copy()
        copy["value"] = "3"  # a second, different pain value for the same visit
        return pd.concat([frame, copy], ignore_index=True)

    folder = _folder(tmp_path, trial, edit)
    n = len(trial.scores)
    message = _refused(
        folder, file="scores.csv", row=n + 2, column="measure", words="duplicates row"
    )
    assert "the rows differ" in message


def test_identical_duplicates_are_dropped_only_when_asked_and_listed(tmp_path, trial):
    folder = _folder(
        tmp_path, trial, lambda f: pd.concat([f, f.loc[[_pain_row(f)]]], ignore_index=True)
    )
    with pytest.raises(InputError, match="drop-identical"):
        check(load_tidy(folder))
    checked = check(load_tidy(folder), duplicates="drop_identical")
    assert len(checked.data.scores) == len(trial.scores)
    listed = checked.table()
    assert list(listed["row"]) == [len(trial.scores) + 2]
    assert "identical duplicate" in listed["rule"].iloc[0]


def test_a_second_baseline_is_refused_not_picked(tmp_path, trial):
    def edit(frame):
        base = frame.loc[[_pain_row(frame, visit="baseline")]].copy()
        base["value"] = "2"
        base["days_since_procedure"] = "-30"
        return pd.concat([frame, base], ignore_index=True)

    folder = _folder(tmp_path, trial, edit)
    with pytest.raises(InputError, match="duplicates row"):
        check(load_tidy(folder))


def test_a_follow_up_dated_before_the_procedure_is_refused(tmp_path, trial):
    rows = {}

    def edit(frame):
        i = _pain_row(frame, visit="w2")
        rows["i"] = i
        frame.loc[i, "days_since_procedure"] = "-2"
        frame.loc[i, "visit_date"] = ""
        return frame

    folder = _folder(tmp_path, trial, edit)
    _refused(
        folder,
        file="scores.csv",
        row=rows["i"] + 2,
        column="days_since_procedure",
        words="follow-up must be after day 0",
    )


def test_days_that_disagree_with_the_dates_are_refused(tmp_path, trial):
    rows = {}

    def edit(frame):
        i = _pain_row(frame, visit="m6")
        rows["i"] = i
        frame.loc[i, "days_since_procedure"] = str(int(frame.loc[i, "days_since_procedure"]) + 9)
        return frame

    folder = _folder(tmp_path, trial, edit)
    _refused(
        folder,
        file="scores.csv",
        row=rows["i"] + 2,
        column="days_since_procedure",
        words="disagrees with visit_date",
    )


def test_missing_days_are_derived_from_dates_and_listed_or_refused(tmp_path, trial):
    reint = pd.DataFrame(
        [
            {
                "participant_id": pid,
                "reintervention_id": f"{pid}-R",
                "reintervention_date": (date + pd.Timedelta(days=100)).date().isoformat(),
                "days_since_procedure": "",
                "kind": "repeat cryoablation",
            }
            for pid, date in zip(
                trial.procedures["participant_id"][:4],
                trial.procedures["procedure_date"][:4],
                strict=True,
            )
        ]
    )
    folder = _folder(tmp_path, trial)
    reint.to_csv(folder / "reinterventions.csv", index=False)
    checked = check(load_tidy(folder))
    assert list(checked.data.reinterventions["days_since_procedure"]) == [100] * 4
    assert (checked.table()["rule"] == "days_since_procedure derived from the dates").sum() == 4
    times = survival.reintervention_times(checked.data)
    # every exposed participant keeps a time: 4 events, the rest censored at last contact
    assert len(times) == 20
    assert int(times["event"].sum()) == 4
    reint["reintervention_date"] = ""
    reint.to_csv(folder / "reinterventions.csv", index=False)
    _refused(
        folder,
        file="reinterventions.csv",
        row=2,
        column="days_since_procedure",
        words="empty, and no reintervention_date",
    )


def test_a_control_arm_without_procedure_rows_keeps_its_denominators(trial):
    from cryoneuro.analysis.tidy import from_frames

    sham = set(trial.participants.loc[trial.participants["arm"] == "sham", "participant_id"])
    data = from_frames(
        participants=trial.participants,
        procedures=trial.procedures[~trial.procedures["participant_id"].isin(sham)],
        visits=trial.visits,
        scores=trial.scores,
        adverse_events=trial.adverse_events,
        reinterventions=trial.reinterventions,
    )
    table = safety.safety_table(data)
    assert set(table.loc[table["arm"] == "sham", "exposed"]) == {10}
    times = survival.reintervention_times(data)
    assert (times["arm"] == "sham").sum() == 10
    # the CONSORT flow says the sham arm's treatment is not recorded, rather than "0 received"
    from cryoneuro.analysis.rct import flow

    arms = flow(data, "m3")["arms"]
    assert arms["sham"]["received"] is None
    assert arms["cryoablation"]["received"] == 10
    # in the arm whose procedures are recorded, a participant without one is left out, listed
    first = min(set(trial.procedures["participant_id"]) - sham)
    fewer = from_frames(
        participants=trial.participants,
        procedures=trial.procedures[trial.procedures["participant_id"] != first],
        visits=trial.visits,
        scores=trial.scores,
    )
    checked = check(fewer)
    assert list(checked.table()["participant_id"]) == [first]
    assert set(safety.safety_table(fewer).query("arm == 'cryoablation'")["exposed"]) == {9}


def test_a_randomised_participant_without_an_arm_or_site_is_refused(tmp_path, trial):
    i = int(trial.participants.index[trial.participants["status"] != "screen_failed"][0])
    folder = _folder(
        tmp_path,
        trial,
        lambda f: f.assign(arm=f["arm"].where(f.index != i, "")),
        table="participants",
    )
    _refused(folder, file="participants.csv", row=i + 2, column="arm", words="has no arm")
    folder = _folder(
        tmp_path,
        trial,
        lambda f: f.assign(site=f["site"].where(f.index != i, "")),
        table="participants",
    )
    _refused(folder, file="participants.csv", row=i + 2, column="site", words="has none")


def test_measure_ranges_come_from_the_instruments_and_match_their_descriptions():
    # the measure descriptions state the index floors (Devlin 2018; Rowen 2026; van Hout 2012)
    for measure in ("index_england", "index_uk_2026", "index_uk_crosswalk"):
        text = next(m.description for m in INSTRUMENTS["eq5d5l"].measures if m.name == measure)
        floor = float(re.search(r"−(\d\.\d+) to 1", text).group(1))
        assert measure_range("eq5d5l", measure) == (-floor, 1.0)
    assert measure_range("nrs", "pain") == (0.0, 10.0)
    assert measure_range("moxfq", "walking_standing") == (0.0, 100.0)
    assert measure_range("eq5d5l", "profile") is None


def test_consort_flow_counts_reasons():
    from cryoneuro.analysis.rct import flow

    data = generate(SyntheticStudy(n_per_arm=20, screen_failures=5, dropout_per_visit=0.1, seed=8))
    counts = flow(data, "m3")
    people = data.participants
    failed = people[people["status"] == "screen_failed"]["status_reason"]
    assert counts["excluded_reasons"] == failed.value_counts().to_dict()
    assert sum(counts["excluded_reasons"].values()) == counts["excluded"] == 5
    for arm, a in counts["arms"].items():
        lost = people[(people["arm"] == arm) & (people["status"] == "lost_to_follow_up")]
        assert sum(a["lost_reasons"].values()) == a["lost_to_follow_up"] == len(lost)


def test_a_status_spelled_differently_is_refused_not_miscounted(tmp_path, trial):
    i = int(trial.participants.index[trial.participants["status"] == "completed"][0])
    folder = _folder(
        tmp_path,
        trial,
        lambda f: f.assign(status=f["status"].where(f.index != i, "Withdrawn")),
        table="participants",
    )
    _refused(
        folder,
        file="participants.csv",
        row=i + 2,
        column="status",
        words="not one of screen_failed",
    )


def test_arms_and_sites_outside_the_protocol_lists_are_refused(tmp_path, trial):
    folder = _folder(tmp_path, trial)
    data = load_tidy(folder)
    check(data, arms=("cryoablation", "sham"), sites=("S01", "S02", "S03"))
    first = int(data.participants.index[data.participants["status"] != "screen_failed"][0])
    with pytest.raises(InputError) as info:
        check(data, arms=("cryoablation", "surgery"))
    assert "participants.csv, row" in str(info.value)
    assert "column arm" in str(info.value)
    with pytest.raises(InputError, match=f"row {first + 2}, column site"):
        check(data, sites=("S99",))
    result = CliRunner().invoke(
        app,
        ["analyse", str(folder), "--out", str(tmp_path / "o"), "--arms", "cryoablation,surgery"],
    )
    assert result.exit_code == 2
    assert "declared arms" in result.stderr
