"""Every invalid answer raises InputError with one line naming the item and its range."""

from __future__ import annotations

import pytest

from cryoneuro.errors import InputError
from cryoneuro.instruments import INSTRUMENTS, score

EQ = {
    "mobility": 1,
    "self_care": 1,
    "usual_activities": 1,
    "pain_discomfort": 1,
    "anxiety_depression": 1,
    "vas": 80,
}
MOX = {f"q{i}": 1 for i in range(1, 17)}
BPI = {"worst": 5, "least": 1, "average": 3, "now": 2}
STUMP = {"residual_limb_pain": 4, "phantom_pain": 6}
MOB = {"walking_distance_m": 200}

CASES = [
    # (instrument, answers, item the message must name, range text it must show)
    ("nrs", {"pain": 11}, "pain", "0–10"),
    ("nrs", {"pain": -1}, "pain", "0–10"),
    ("nrs", {"pain": True}, "pain", "0–10"),
    ("nrs", {"pain": 2.5}, "pain", "0–10"),
    ("nrs", {"pain": "two"}, "pain", "0–10"),
    ("nrs", {"pain": float("nan")}, "pain", "0–10"),
    ("nrs", {}, "pain", "0–10"),
    ("nrs", {"pain": 3, "mood": 2}, "mood", "known items: pain"),
    ("vas", {"pain": 101}, "pain", "0–100"),
    ("vas", {"pain": ""}, "pain", "0–100"),
    ("eq5d5l", {**EQ, "self_care": 7}, "self_care", "1–5"),
    ("eq5d5l", {**EQ, "anxiety_depression": 0}, "anxiety_depression", "1–5"),
    ("eq5d5l", {**EQ, "mobility": "3.5"}, "mobility", "1–5"),
    ("eq5d5l", {k: v for k, v in EQ.items() if k != "usual_activities"}, "usual_activities", "1–5"),
    ("eq5d5l", {**EQ, "vas": 101}, "vas", "0–100"),
    ("eq5d5l", {**EQ, "usual_activity": 1}, "usual_activity", "known items"),
    ("eq5d5l", {"profile": "1234"}, "profile '1234'", "each 1–5"),
    ("eq5d5l", {"profile": "11611"}, "profile '11611'", "each 1–5"),
    ("eq5d5l", {"profile": "1a111"}, "profile '1a111'", "each 1–5"),
    ("eq5d5l", {"vas": 50}, "profile", "1–5"),
    ("moxfq", {**MOX, "q3": 5}, "q3", "0–4"),
    ("moxfq", {**MOX, "q16": False}, "q16", "0–4"),
    ("moxfq", {**MOX, "q17": 1}, "q17", "known items"),
    ("bpi", {k: v for k, v in BPI.items() if k != "worst"}, "worst", "0–10"),
    ("bpi", {**BPI, "mood": 11}, "mood", "0–10"),
    ("bpi", {**BPI, "now": True}, "now", "0–10"),
    ("stump", {"residual_limb_pain": 4}, "phantom_pain", "0–10"),
    ("stump", {**STUMP, "phantom_pain": 2.5}, "phantom_pain", "0–10"),
    ("stump", {**STUMP, "phantom_episodes_per_day": -1}, "phantom_episodes_per_day", "0–1000"),
    ("stump", {**STUMP, "phantom_episodes_per_day": 1.5}, "phantom_episodes_per_day", "an integer"),
    (
        "stump",
        {**STUMP, "phantom_episode_duration_min": -3},
        "phantom_episode_duration_min",
        "0–1440",
    ),
    ("mobility", {"walking_distance_m": 100001}, "walking_distance_m", "0–100000"),
    ("mobility", {"walking_distance_m": -5}, "walking_distance_m", "0–100000"),
    ("mobility", {**MOB, "walking_time_min": "abc"}, "walking_time_min", "0–1440"),
    ("mobility", {**MOB, "walking_time_min": 1441}, "walking_time_min", "0–1440"),
    ("mobility", {**MOB, "aid": "cane"}, "aid", "none, stick, crutches, frame, wheelchair"),
    ("mobility", {**MOB, "aid": 3}, "aid", "one of"),
]


@pytest.mark.parametrize(
    ("code", "answers", "item", "allowed"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_invalid_answer_names_item_and_range(
    code: str, answers: dict, item: str, allowed: str
) -> None:
    with pytest.raises(InputError) as err:
        score(code, answers)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{code}: ")
    assert item in message
    assert allowed in message


def test_every_instrument_has_a_validation_case() -> None:
    assert {c[0] for c in CASES} == set(INSTRUMENTS)


@pytest.mark.parametrize("code", ["nrs", "vas", "eq5d5l", "moxfq", "bpi", "stump", "mobility"])
def test_answers_must_be_a_mapping(code: str) -> None:
    with pytest.raises(InputError, match=f"^{code}: answers must be a mapping"):
        score(code, [("pain", 3)])  # type: ignore[arg-type]


def test_unknown_instrument_and_option() -> None:
    with pytest.raises(InputError, match="unknown instrument 'sf36'"):
        score("sf36", {})
    with pytest.raises(InputError, match="unknown option 'foo'"):
        score("nrs", {"pain": 1}, foo=1)


@pytest.mark.parametrize("value", ["3", " 3 ", 3.0, "3.0"])
def test_integer_valued_strings_and_floats_are_accepted(value: object) -> None:
    assert score("nrs", {"pain": value}) == {"pain": 3.0}


def test_numpy_values() -> None:
    import numpy as np

    assert score("nrs", {"pain": np.int64(4)}) == {"pain": 4.0}
    with pytest.raises(InputError, match="'pain'"):
        score("nrs", {"pain": np.bool_(True)})


def test_registry_bridge_agrees_on_items_and_scores() -> None:
    from cryoneuro.registry import instruments_bridge as bridge

    for code, spec in bridge.ITEM_SPECS.items():
        ins = INSTRUMENTS[code]
        for name, asked in spec.items():
            item = ins.item(name)
            assert (item.min, item.max) == (asked.min, asked.max), (code, name)
    clean = bridge.validate_answers(
        {"nrs": {"pain": "4"}, "eq5d5l": {**EQ, "vas": "70"}, "bpi": BPI}
    )
    scores = bridge.score_answers(clean)
    assert scores["nrs"] == {"pain": 4.0}
    assert scores["eq5d5l"]["index_england"] == 1.0
    assert scores["eq5d5l"]["vas"] == 70.0
    assert scores["bpi"] == {"severity": 2.75, "interference": None}
