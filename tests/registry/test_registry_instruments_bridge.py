"""Answers are checked with the instruments' own items and scored by cryoneuro.instruments
(the limits themselves: test_registry_instrument_limits.py)."""

from __future__ import annotations

import pytest

from cryoneuro.registry.errors import RegistryInputError
from cryoneuro.registry.instruments_bridge import score_answers, validate_answers


def test_validation_names_the_item() -> None:
    with pytest.raises(RegistryInputError) as info:
        validate_answers({"eq5d5l": {"mobility": 6}})
    assert info.value.field == "answers.eq5d5l.mobility"
    with pytest.raises(RegistryInputError) as info:
        validate_answers({"bpi": {"worst": 5, "least": 1, "average": 3, "now": 2, "mood": 4}})
    assert info.value.field == "answers.bpi.general_activity"
    assert validate_answers({"nrs": {"pain": "7"}}) == {"nrs": {"pain": 7}}
    with pytest.raises(RegistryInputError):
        validate_answers({"nrs": {"pain": True}})
    with pytest.raises(RegistryInputError):
        validate_answers({"nrs": {"pain": 3.5}})


EQ5D_ITEMS = ("mobility", "self_care", "usual_activities", "pain_discomfort", "anxiety_depression")


def test_scores_come_from_the_real_instruments() -> None:
    """The registry stores what cryoneuro.instruments computes, checked against the published
    scoring rules worked by hand: NRS = the rating (Farrar 2001); MOXFQ domains = item sum /
    (4 × items) × 100 (Dawson 2006; index over all 16 items, Morley 2013) for the answers
    q_i = i mod 5; EQ-5D-5L full health 11111 = 1 and the worst state 55555 = −0.285 on the
    England value set (Devlin 2018) and −0.594 on the crosswalk (van Hout 2012); BPI severity =
    mean of the four severity items (Cleeland 2009)."""
    answers = validate_answers(
        {
            "nrs": {"pain": 3},
            "moxfq": {f"q{i}": i % 5 for i in range(1, 17)},
            "bpi": {"worst": 8, "least": 2, "average": 5, "now": 3},
        }
    )
    scores = score_answers(answers)
    assert scores["nrs"] == {"pain": 3.0}
    assert scores["moxfq"] == pytest.approx(
        {
            "walking_standing": (2 + 3 + 4 + 0 + 1 + 2 + 3) / 28 * 100,  # items 2-8
            "pain": (1 + 1 + 2 + 0 + 1) / 20 * 100,  # items 1, 11, 12, 15, 16
            "social_interaction": (4 + 0 + 3 + 4) / 16 * 100,  # items 9, 10, 13, 14
            "index": 31 / 64 * 100,
        }
    )
    assert scores["bpi"]["severity"] == pytest.approx((8 + 2 + 5 + 3) / 4)
    for level, england, crosswalk in ((1, 1.0, 1.0), (5, -0.285, -0.594)):
        eq5d = score_answers(
            validate_answers({"eq5d5l": {**dict.fromkeys(EQ5D_ITEMS, level), "vas": 50}})
        )
        assert eq5d["eq5d5l"]["profile"] == str(level) * 5
        assert eq5d["eq5d5l"]["index_england"] == pytest.approx(england, abs=5e-4)
        assert eq5d["eq5d5l"]["index_uk_crosswalk"] == pytest.approx(crosswalk, abs=5e-4)
        assert eq5d["eq5d5l"]["vas"] == 50.0


def test_an_answer_the_instruments_refuse_names_the_instrument() -> None:
    """Unvalidated answers reach the real scorer, whose InputError becomes a field error."""
    with pytest.raises(RegistryInputError) as info:
        score_answers({"vas": {"pain": 140}})
    assert info.value.field == "answers.vas"
    assert "0–100" in str(info.value)


def test_a_failing_scorer_keeps_the_answers(monkeypatch, caplog) -> None:
    """Fault injection (not a stand-in for the instruments): if scoring one instrument raises
    an unexpected error, the others are still scored and the failure is logged."""
    import cryoneuro.instruments as instruments

    real = instruments.score

    def failing(code: str, answers: dict, **options):
        if code == "eq5d5l":
            raise RuntimeError("scorer bug")
        return real(code, answers, **options)

    monkeypatch.setattr(instruments, "score", failing)
    answers = validate_answers(
        {"nrs": {"pain": 4}, "eq5d5l": {**dict.fromkeys(EQ5D_ITEMS, 1), "vas": 80}}
    )
    assert score_answers(answers) == {"nrs": {"pain": 4.0}}
    assert "scoring eq5d5l failed: scorer bug" in caplog.text
