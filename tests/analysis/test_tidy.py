"""The tidy format: round trips, the registry's zip, re-scoring raw answers, one-line errors."""

from __future__ import annotations

import zipfile

import pandas as pd
import pytest

from cryoneuro.analysis.outcomes import outcome_values, scored
from cryoneuro.analysis.synthetic import SyntheticStudy, generate
from cryoneuro.analysis.tidy import SCHEMA, TABLES, from_frames, load_tidy, write_tidy
from cryoneuro.errors import InputError
from cryoneuro.instruments import eq5d5l_index


@pytest.fixture(scope="module")
def small():
    return generate(SyntheticStudy(n_per_arm=8, screen_failures=2, seed=5))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trip_keeps_every_value(tmp_path, small, fmt):
    write_tidy(small, tmp_path, fmt)
    again = load_tidy(tmp_path)
    for table in SCHEMA:
        left = small.table(table)[TABLES[table]].reset_index(drop=True)
        right = again.table(table)[TABLES[table]].reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right, check_dtype=False)


def test_a_zip_of_csvs_reads_like_a_folder(tmp_path, small):
    paths = write_tidy(small, tmp_path / "csv")
    archive = tmp_path / "tidy.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for table, path in paths.items():
            z.write(path, f"{table}.csv")
    data = load_tidy(archive)
    assert len(data.scores) == len(small.scores)
    assert data.design == "rct"


def test_raw_answers_are_scored_with_the_instruments_package():
    # a visit typed in elsewhere with only the EQ-5D-5L items gets the value-set indices
    items = {
        "mobility": 2,
        "self_care": 1,
        "usual_activities": 3,
        "pain_discomfort": 4,
        "anxiety_depression": 1,
        "vas": 60,
    }
    rows = [
        {
            "participant_id": "A",
            "visit_code": "m1",
            "days_since_procedure": 30,
            "instrument": "eq5d5l",
            "kind": "item",
            "measure": k,
            "value": str(v),
        }
        for k, v in items.items()
    ]
    data = from_frames(
        participants=pd.DataFrame([{"participant_id": "A"}]), scores=pd.DataFrame(rows)
    )
    scores = scored(data).set_index("measure")["value"]
    assert float(scores["index_england"]) == pytest.approx(eq5d5l_index("21341", "england"))
    # Devlin 2018 by hand: 1 − (MO2 .058 + UA3 .063 + PD4 .276) = 0.603
    assert float(scores["index_england"]) == pytest.approx(0.603, abs=5e-4)


def _write(tmp_path, **tables):
    for name, text in tables.items():
        (tmp_path / f"{name}.csv").write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"visits": "participant_id,visit_code\nA,m1\n"}, "no participants.csv"),
        ({"participants": "id\nA\n"}, "lacks required column 'participant_id'"),
        ({"participants": "participant_id\nA\nA\n"}, "'A' appears twice"),
        (
            {"participants": "participant_id,age_at_enrolment_years\nA,forty\n"},
            "age_at_enrolment_years in row 2 is 'forty', not an integer",
        ),
        ({"participants": "participant_id,enrolment_date\nA,31/02/2026\n"}, "not a date"),
        (
            {"participants": "participant_id\nA\n", "visits": "participant_id,visit_code\nB,m1\n"},
            "participant_id 'B'",
        ),
        (
            {
                "participants": "participant_id\nA\n",
                "adverse_events": "participant_id,category\nA,frostbite\n",
            },
            "'frostbite' is not one of",
        ),
        (
            {
                "participants": "participant_id\nA\n",
                "scores": "participant_id,visit_code,instrument,kind,measure,value\n"
                "A,m1,nrs,total,p,1\n",
            },
            "scores.kind must be",
        ),
        (
            {
                "participants": "participant_id\nA\n",
                "scores": "participant_id,visit_code,instrument,kind,measure,value\n"
                "A,,nrs,score,pain,1\n",
            },
            "scores.visit_code is empty in row 2",
        ),
    ],
)
def test_malformed_tables_are_named_in_one_line(tmp_path, tables, message):
    with pytest.raises(InputError) as info:
        load_tidy(_write(tmp_path, **tables))
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_not_a_zip(tmp_path):
    bad = tmp_path / "tidy.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable zip"):
        load_tidy(bad)


def test_baseline_is_the_last_value_on_or_before_day_zero():
    rows = [
        {
            "participant_id": "A",
            "visit_code": code,
            "days_since_procedure": day,
            "instrument": "nrs",
            "kind": "score",
            "measure": "pain",
            "value": v,
        }
        for code, day, v in (("screen", -30, 9), ("pre", -1, 8), ("m1", 30, 4))
    ]
    data = from_frames(
        participants=pd.DataFrame([{"participant_id": "A"}]), scores=pd.DataFrame(rows)
    )
    values = outcome_values(data, "pain")
    assert values[["baseline", "value", "change"]].values.tolist() == [[8.0, 4.0, -4.0]]


def test_the_documented_format_is_the_schema():
    # docs/tidy-format.md must stay the same as the definitions the code validates against
    from pathlib import Path

    from cryoneuro.analysis.tidy import schema_markdown

    doc = (Path(__file__).resolve().parents[2] / "docs" / "tidy-format.md").read_text(
        encoding="utf-8"
    )
    assert schema_markdown() in doc
