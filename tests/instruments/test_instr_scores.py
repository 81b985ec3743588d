"""MOXFQ, BPI, stump, mobility, NRS/VAS scoring and the MCID helpers, worked by hand."""

from __future__ import annotations

import pytest

from cryoneuro.errors import InputError
from cryoneuro.instruments import (
    INSTRUMENTS,
    improvement_category,
    is_responder,
    percent_change,
    score,
    score_bpi,
    score_mobility,
    score_moxfq,
    score_nrs,
    score_stump,
    score_vas,
)

# ----------------------------------------------------------------------------------- MOXFQ
# Mapping used (Dawson 2006; commonly cited, *check* against the user manual):
# walking/standing q2–q8 (7 items, max 28), pain q1, q11, q12, q15, q16 (5, max 20),
# social interaction q9, q10, q13, q14 (4, max 16); Index all 16 (max 64, Morley 2013).
MIXED = dict(
    zip(
        [f"q{i}" for i in range(1, 17)],
        [3, 2, 2, 1, 1, 0, 4, 3, 1, 0, 2, 3, 1, 2, 4, 1],
        strict=True,
    )
)
# By hand:
#   W/S    q2..q8 = 2+2+1+1+0+4+3 = 13 → 13/28 × 100 = 46.428571…
#   pain   q1, q11, q12, q15, q16 = 3+2+3+4+1 = 13 → 13/20 × 100 = 65
#   social q9, q10, q13, q14 = 1+0+1+2 = 4 → 4/16 × 100 = 25
#   index  (13+13+4) = 30 → 30/64 × 100 = 46.875


def test_moxfq_extremes() -> None:
    assert score_moxfq({f"q{i}": 0 for i in range(1, 17)}) == {
        "walking_standing": 0.0,
        "pain": 0.0,
        "social_interaction": 0.0,
        "index": 0.0,
    }
    assert score_moxfq({f"q{i}": "4" for i in range(1, 17)}) == {
        "walking_standing": 100.0,
        "pain": 100.0,
        "social_interaction": 100.0,
        "index": 100.0,
    }


def test_moxfq_mixed_by_hand() -> None:
    out = score("moxfq", MIXED)
    assert out["walking_standing"] == pytest.approx(1300 / 28)
    assert out["pain"] == pytest.approx(65.0)
    assert out["social_interaction"] == pytest.approx(25.0)
    assert out["index"] == pytest.approx(46.875)


def test_moxfq_one_missing_item_is_imputed_by_the_domain_mean() -> None:
    answers = {k: v for k, v in MIXED.items() if k != "q7"}
    out = score_moxfq(answers)
    # answered W/S items 2,2,1,1,0,3: sum 9, mean 1.5 → 10.5/28 × 100 = 37.5
    assert out["walking_standing"] == pytest.approx(37.5)
    # index (10.5 + 13 + 4)/64 × 100 = 42.96875
    assert out["index"] == pytest.approx(42.96875)
    assert out["pain"] == pytest.approx(65.0)


def test_moxfq_two_missing_in_one_domain_leaves_it_unscored() -> None:
    answers = {k: v for k, v in MIXED.items() if k not in ("q7", "q8")}
    out = score_moxfq(answers)
    assert out["walking_standing"] is None
    assert out["index"] is None
    assert out["pain"] == pytest.approx(65.0)
    assert out["social_interaction"] == pytest.approx(25)


def test_moxfq_one_missing_in_every_domain_still_scores() -> None:
    answers = {k: v for k, v in MIXED.items() if k not in ("q2", "q1", "q9")}
    out = score_moxfq(answers)
    assert None not in out.values()
    # social: q10, q13, q14 = 0, 1, 2 → mean 1 → (3 + 1)/16 × 100 = 25
    assert out["social_interaction"] == pytest.approx(25.0)


def test_moxfq_nothing_answered_is_an_error() -> None:
    with pytest.raises(InputError, match="q1–q16"):
        score_moxfq({})


# ------------------------------------------------------------------------------------- BPI
SEVERITY = {"worst": 8, "least": 2, "average": 5, "now": "6"}  # mean 21/4 = 5.25


def test_bpi_interference_needs_four_items() -> None:
    three = {**SEVERITY, "mood": 3, "sleep": 4, "work": 5}
    assert score_bpi(three) == {"severity": 5.25, "interference": None}
    four = {**three, "walking": 8}  # (3+4+5+8)/4 = 5
    assert score_bpi(four) == {"severity": 5.25, "interference": 5.0}
    seven = {**four, "general_activity": 1, "relations": 0, "enjoyment": 7}  # 28/7 = 4
    assert score_bpi(seven)["interference"] == pytest.approx(4.0)


def test_bpi_empty_optional_fields_count_as_missing() -> None:
    out = score_bpi(
        {
            **SEVERITY,
            "mood": "",
            "sleep": None,
            "work": 1,
            "walking": 1,
            "enjoyment": 1,
            "relations": 1,
        }
    )
    assert out["interference"] == 1.0


# ---------------------------------------------------------------------- stump, mobility, NRS
def test_stump_keeps_residual_and_phantom_apart() -> None:
    assert score_stump({"residual_limb_pain": 3, "phantom_pain": 7}) == {
        "residual_limb_pain": 3.0,
        "phantom_pain": 7.0,
    }
    out = score_stump(
        {
            "residual_limb_pain": 3,
            "phantom_pain": 7,
            "phantom_episodes_per_day": 6,
            "phantom_episode_duration_min": "2.5",
        }
    )
    assert out["phantom_burden"] == 15.0
    assert out["phantom_episode_duration_min"] == 2.5


def test_stump_burden_cannot_exceed_a_day() -> None:
    with pytest.raises(InputError, match="phantom_episodes_per_day"):
        score_stump(
            {
                "residual_limb_pain": 3,
                "phantom_pain": 7,
                "phantom_episodes_per_day": 100,
                "phantom_episode_duration_min": 60,
            }
        )


def test_mobility_passes_through() -> None:
    assert score_mobility(
        {"walking_distance_m": "350", "walking_time_min": 6, "aid": "Crutches"}
    ) == {"walking_distance_m": 350.0, "walking_time_min": 6.0, "aid": "crutches"}
    assert score_mobility({"walking_distance_m": 0}) == {"walking_distance_m": 0.0}


def test_nrs_vas() -> None:
    assert score_nrs({"pain": "7"}) == {"pain": 7.0}
    assert score_vas({"pain": 100}) == {"pain": 100.0}
    assert score("NRS", {"pain": 0}) == {"pain": 0.0}


# ------------------------------------------------------------------------------------ MCID
def test_percent_change_and_responders() -> None:
    # Farrar 2001 (Pain 94:149): ~30 % or ~2 points on the NRS is clinically important.
    assert percent_change(8, 4) == -50.0
    assert percent_change(0, 3) is None  # undefined: nothing to reduce
    assert is_responder(10, 7) is True  # exactly 30 %
    assert is_responder(10, 7.5) is False
    assert is_responder(5, 3.6) is False
    assert is_responder(5, 3, points=2) is True
    assert is_responder(0, 0) is False
    assert is_responder(8, 4, threshold=0.5) is True


@pytest.mark.parametrize(
    ("baseline", "follow_up", "category"),
    [
        (10, 5, "substantial"),
        (10, 6, "moderate"),
        (10, 9, "minimal"),
        (10, 9.5, "none"),
        (10, 10, "none"),
        (5, 6, "worse"),
        (0, 2, None),
    ],
)
def test_immpact_categories(baseline: float, follow_up: float, category: str | None) -> None:
    # IMMPACT (Dworkin 2008): ≥10 % minimal, ≥30 % moderate, ≥50 % substantial.
    assert improvement_category(baseline, follow_up) == category


@pytest.mark.parametrize("bad", [-1, float("nan"), "5", True])
def test_mcid_helpers_refuse_bad_ratings(bad: object) -> None:
    with pytest.raises(InputError, match="baseline"):
        percent_change(bad, 3)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- registry
def test_every_instrument_is_described() -> None:
    assert {"nrs", "vas", "eq5d5l", "moxfq", "bpi", "stump", "mobility"} <= set(INSTRUMENTS)
    for ins in INSTRUMENTS.values():
        assert ins.citation
        assert ins.items
        assert ins.measures
    declared = {
        (code, m.name): m.direction for code, ins in INSTRUMENTS.items() for m in ins.measures
    }
    assert declared == PUBLISHED_DIRECTIONS
    for code, ins in INSTRUMENTS.items():
        for m in ins.measures:  # the sentence users read says the same
            if m.direction == "not ordered":
                assert "higher is" not in m.description, (code, m.name)
            else:
                assert m.description.endswith(f"; {m.direction}."), (code, m.name)


#: The direction of every measure, from the instruments' publications (not from the code):
#: pain ratings and MOXFQ/BPI scores rise with pain or disability (Farrar 2001; Huskisson 1974;
#: Dawson 2006 and Morley 2013; Cleeland 2009); EQ-5D VAS and index values rise with health
#: (Herdman 2011; Devlin 2018; van Hout 2012); walking distance rises with mobility (NICE
#: HTG652 outcome); the EQ-5D profile, walking time alone and the walking aid are labels or
#: durations with no better/worse order by themselves.
PUBLISHED_DIRECTIONS = {
    ("nrs", "pain"): "higher is worse",
    ("vas", "pain"): "higher is worse",
    ("bpi", "severity"): "higher is worse",
    ("bpi", "interference"): "higher is worse",
    ("moxfq", "walking_standing"): "higher is worse",
    ("moxfq", "pain"): "higher is worse",
    ("moxfq", "social_interaction"): "higher is worse",
    ("moxfq", "index"): "higher is worse",
    ("eq5d5l", "profile"): "not ordered",
    ("eq5d5l", "vas"): "higher is better",
    ("eq5d5l", "index_england"): "higher is better",
    ("eq5d5l", "index_uk_2026"): "higher is better",
    ("eq5d5l", "index_uk_crosswalk"): "higher is better",
    ("stump", "residual_limb_pain"): "higher is worse",
    ("stump", "phantom_pain"): "higher is worse",
    ("stump", "phantom_episodes_per_day"): "higher is worse",
    ("stump", "phantom_episode_duration_min"): "higher is worse",
    ("stump", "phantom_burden"): "higher is worse",
    ("mobility", "walking_distance_m"): "higher is better",
    ("mobility", "walking_time_min"): "not ordered",
    ("mobility", "aid"): "not ordered",
}
