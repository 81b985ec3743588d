"""Why data are absent, in the analysis (issue 14): visits not done, items coded missing and
protocol deviations are checked, counted in the CONSORT flow with their reasons, never scored.

Expected counts are those of the small data sets built here by hand; the scorer's behaviour is
``cryoneuro.instruments.score`` itself.
"""

from __future__ import annotations

import pandas as pd
import pytest

from cryoneuro.analysis import missing, rct
from cryoneuro.analysis.outcomes import scored
from cryoneuro.analysis.tidy import (
    DEVIATION_CATEGORIES,
    MISSING_CODES,
    NOT_DONE_REASONS,
    from_frames,
)
from cryoneuro.analysis.validate import check
from cryoneuro.errors import InputError
from cryoneuro.instruments import score


def _trial(**extra: pd.DataFrame):
    """Two arms of four; everyone has baseline pain; follow-up m3 for A1, A2, B1, B2 only."""
    people = [(f"{arm}{i}", arm.lower()) for arm in "AB" for i in range(1, 5)]
    participants = pd.DataFrame(
        {
            "participant_id": [p for p, _ in people],
            "design": "rct",
            "arm": [a for _, a in people],
            "site": "S1",
            "status": "enrolled",
        }
    )
    procedures = pd.DataFrame(
        {
            "participant_id": [p for p, _ in people],
            "procedure_id": [f"x{p}" for p, _ in people],
            "procedure_date": "2026-01-10",
        }
    )
    rows = []
    for pid, _ in people:
        rows.append((pid, "baseline", "2026-01-05", -5, 7))
        if pid[1] in "12":
            rows.append((pid, "m3", "2026-04-10", 90, 3))
    scores = pd.DataFrame(
        [
            {
                "participant_id": p,
                "visit_code": v,
                "visit_date": d,
                "days_since_procedure": day,
                "instrument": "nrs",
                "kind": "score",
                "measure": "pain",
                "value": value,
            }
            for p, v, d, day, value in rows
        ]
    )
    return from_frames(
        "trial", participants=participants, procedures=procedures, scores=scores, **extra
    )


NOT_DONE = pd.DataFrame(
    {
        "participant_id": ["A3", "B3", "B4"],
        "visit_code": ["m3", "m3", "m3"],
        "reason": ["lost_to_follow_up", "died", "other"],
        "reason_text": ["", "", "moved abroad"],
    }
)


def test_vocabularies_match_the_registry() -> None:
    from cryoneuro.registry.models import DeviationCategory, MissingCode, NotDoneReason

    assert tuple(NotDoneReason.codes()) == NOT_DONE_REASONS
    assert tuple(MissingCode.codes()) == MISSING_CODES
    assert tuple(DeviationCategory.codes()) == DEVIATION_CATEGORIES


def test_flow_counts_reasons_per_arm_and_keeps_unexplained_apart() -> None:
    data = check(_trial(visits_not_done=NOT_DONE)).data
    counts = rct.flow(data, "m3", "pain", scored(data))
    a, b = counts["arms"]["a"], counts["arms"]["b"]
    # arm a: A1, A2 have m3; A3 lost to follow-up; A4 has nothing and no reason
    assert (a["with_primary_visit"], a["primary_not_done"], a["primary_no_reason"]) == (2, 1, 1)
    assert a["primary_not_done_reasons"] == {"lost_to_follow_up": 1}
    # arm b: B3 died, B4 'other'; nobody unexplained
    assert b["primary_not_done_reasons"] == {"died": 1, "other": 1}
    assert b["primary_no_reason"] == 0
    for arm in (a, b):
        assert (
            arm["with_primary_visit"]
            + arm["primary_not_done"]
            + arm["primary_item_missing"]
            + sum(arm["primary_by_status"].values())
            + arm["primary_no_reason"]
            == arm["allocated"]
        )


def test_withdrawn_or_lost_by_status_are_not_counted_as_unexplained() -> None:
    base = _trial(visits_not_done=NOT_DONE)
    people = base.participants.copy()
    people.loc[people["participant_id"] == "A4", ["status", "status_reason"]] = [
        "withdrawn",
        "moved away",
    ]
    data = check(
        from_frames(
            "status",
            participants=people,
            procedures=base.procedures,
            scores=base.scores,
            visits_not_done=NOT_DONE,
        )
    ).data
    a = rct.flow(data, "m3", "pain", scored(data))["arms"]["a"]
    assert (a["discontinued"], a["discontinued_reasons"]) == (1, {"moved away": 1})
    assert a["primary_by_status"] == {"withdrawn": 1}
    assert a["primary_no_reason"] == 0


def test_flow_figure_shows_the_reasons() -> None:
    import matplotlib

    matplotlib.use("Agg")
    data = check(_trial(visits_not_done=NOT_DONE)).data
    fig = rct.flow_figure(rct.flow(data, "m3", "pain", scored(data)), True)
    text = "\n".join(t.get_text() for t in fig.axes[0].texts)
    assert "m3 not done (n = 1)\n  • lost to follow up: 1" in text
    assert "• died: 1" in text
    assert "no m3 value, no reason recorded (n = 1)" in text


@pytest.mark.parametrize(
    ("table", "frame", "message"),
    [
        (
            "visits_not_done",
            pd.DataFrame({"participant_id": ["A1"], "visit_code": ["m3"], "reason": ["died"]}),
            "marked not done but has visit or score rows",
        ),
        (
            "visits_not_done",
            pd.DataFrame({"participant_id": ["A4"], "visit_code": ["m3"], "reason": ["other"]}),
            "needs a reason_text",
        ),
        (
            "visits_not_done",
            pd.DataFrame(
                {"participant_id": ["A4", "A4"], "visit_code": ["m3", "m3"], "reason": ["died"] * 2}
            ),
            "twice",
        ),
        (
            "visits_not_done",
            pd.DataFrame({"participant_id": ["A4"], "visit_code": ["m3"], "reason": ["bored"]}),
            "is not one of",
        ),
        (
            "missing_items",
            pd.DataFrame(
                {
                    "participant_id": ["A4"],
                    "visit_code": ["m3"],
                    "instrument": ["nrs"],
                    "item": ["pain"],
                    "missing_code": ["asked-declined"],
                }
            ),
            "belongs to a visit that took place",
        ),
        (
            "missing_items",
            pd.DataFrame(
                {
                    "participant_id": ["A1"],
                    "visit_code": ["m3"],
                    "instrument": ["nrs"],
                    "item": ["pain"],
                    "missing_code": ["declined"],
                }
            ),
            "is not one of",
        ),
        (
            "deviations",
            pd.DataFrame({"participant_id": ["A1"], "category": ["late"]}),
            "is not one of",
        ),
    ],
)
def test_contradictory_absence_records_are_refused(table, frame, message) -> None:
    with pytest.raises(InputError, match=message):
        check(_trial(**{table: frame}))


def test_coded_items_are_not_scored_and_are_listed() -> None:
    eq5d = {"self_care": 1, "usual_activities": 2, "pain_discomfort": 2, "anxiety_depression": 1}
    moxfq = {f"q{i}": 2 for i in range(1, 16)}
    items = [("eq5d5l", k, v) for k, v in eq5d.items()] + [
        ("moxfq", k, v) for k, v in moxfq.items()
    ]
    base = _trial()
    extra = pd.DataFrame(
        [
            {
                "participant_id": "A1",
                "visit_code": "m3",
                "visit_date": "2026-04-10",
                "days_since_procedure": 90,
                "instrument": instrument,
                "kind": "item",
                "measure": item,
                "value": value,
            }
            for instrument, item, value in items
        ]
    )
    coded = pd.DataFrame(
        {
            "participant_id": ["A1", "A1"],
            "visit_code": ["m3", "m3"],
            "instrument": ["eq5d5l", "moxfq"],
            "item": ["mobility", "q16"],
            "missing_code": ["asked-declined", "not-applicable"],
        }
    )
    data = from_frames(
        "coded",
        participants=base.participants,
        procedures=base.procedures,
        scores=pd.concat([base.scores, extra], ignore_index=True),
        missing_items=coded,
    )
    checked = check(data)
    rows = scored(checked.data)
    # EQ-5D-5L cannot be valued without mobility: no score, and the report says why
    assert not (rows["instrument"] == "eq5d5l").any()
    assert [e.detail for e in checked.exclusions if e.table == "missing_items"] == [
        "eq5d5l at m3: mobility=asked-declined"
    ]
    # MOXFQ's own rule scores 15 of 16 items; the code is not a value
    got = rows[rows["instrument"] == "moxfq"].set_index("measure")["value"].astype(float)
    assert got.to_dict() == pytest.approx(score("moxfq", moxfq))
    # without the code, the same gap is refused when re-scoring, not skipped
    silent = from_frames(
        "silent",
        participants=base.participants,
        procedures=base.procedures,
        scores=pd.concat([base.scores, extra], ignore_index=True),
    )
    with pytest.raises(InputError, match="mobility"):
        scored(silent)


def test_absence_tables() -> None:
    deviations = pd.DataFrame(
        {
            "participant_id": ["A1", "A1", "B2"],
            "category": ["visit_window", "visit_window", "consent"],
        }
    )
    data = check(_trial(visits_not_done=NOT_DONE, deviations=deviations)).data
    table = missing.not_done_table(data)
    assert sorted(map(tuple, table.to_numpy().tolist())) == [
        ("m3", "died", "b", 1),
        ("m3", "lost_to_follow_up", "a", 1),
        ("m3", "other", "b", 1),
    ]
    dev = missing.deviations_table(data)
    assert sorted(map(tuple, dev.to_numpy().tolist())) == [
        ("consent", "b", 1, 1),
        ("visit_window", "a", 2, 1),
    ]
