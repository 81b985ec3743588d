"""EQ-5D-5L index values: every profile, every value set, against independent expectations.

Independent here means: not read from the package. The England and UK 2026 coefficients are
typed again below from their sources (Devlin 2018, Health Econ 27:7, doi 10.1002/hec.3564;
Rowen 2026, Value Health, doi 10.1016/j.jval.2026.03.008; both as quoted in docs/domain-facts.md)
and evaluated by a second code path (an outer sum over a level-major table); the crosswalk is
compared with the shared source CSV read here directly (not the package's copy).
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest

from cryoneuro.errors import InputError
from cryoneuro.instruments import (
    VALUE_SETS,
    AdditiveValueSet,
    LookupValueSet,
    all_profiles,
    eq5d5l_index,
    register_value_set,
    score,
)

PROFILES = ["".join(p) for p in itertools.product("12345", repeat=5)]

# Level-major tables (row = level 2..5, columns MO SC UA PD AD): a different layout from the
# package's per-dimension data file, typed from the publications' coefficient tables.
ENGLAND_2018 = [  # Devlin 2018, Table (final model), levels 2, 3, 4, 5
    (0.058, 0.050, 0.050, 0.063, 0.078),
    (0.076, 0.080, 0.063, 0.084, 0.104),
    (0.207, 0.164, 0.162, 0.276, 0.285),
    (0.274, 0.203, 0.184, 0.335, 0.289),
]
UK_2026 = [  # Rowen 2026, levels 2, 3, 4, 5
    (0.032, 0.038, 0.049, 0.056, 0.041),
    (0.058, 0.060, 0.086, 0.066, 0.126),
    (0.179, 0.162, 0.184, 0.371, 0.313),
    (0.279, 0.206, 0.212, 0.479, 0.391),
]


def _additive(table: list[tuple[float, ...]], profile: str) -> float:
    loss = 0.0
    for column, level in enumerate(profile):
        if level != "1":
            loss += table[int(level) - 2][column]
    return round(1 - loss, 3)


def _shared_crosswalk() -> Path:
    # The whole EuroQol crosswalk table as received (all 13 countries; from the eq5d R
    # package data), kept verbatim under tests/data as the independent source: the package
    # ships only the UK column, extracted from it.
    return Path(__file__).resolve().parents[1] / "data" / "eq5d5l_crosswalk_van_hout_2012.csv"


def test_all_profiles_is_the_full_set() -> None:
    assert all_profiles() == PROFILES
    assert len(PROFILES) == 3125


@pytest.mark.parametrize("name", ["england", "uk-2026", "uk-crosswalk"])
def test_every_value_set_covers_every_profile(name: str) -> None:
    vs = VALUE_SETS[name]
    values = [vs.index(p) for p in PROFILES]
    assert len(values) == 3125
    assert values[0] == 1.0  # 11111 is full health in every value set
    if isinstance(vs, LookupValueSet):
        assert vs.missing_profiles == []


def test_england_all_profiles_match_second_computation() -> None:
    mismatches = [
        (p, eq5d5l_index(p, "england"), _additive(ENGLAND_2018, p))
        for p in PROFILES
        if abs(eq5d5l_index(p, "england") - _additive(ENGLAND_2018, p)) > 5e-4
    ]
    assert mismatches == []


def test_england_published_anchors() -> None:
    # Devlin 2018: full health 1, worst state 55555 = -0.285, and 5.1 % of the 3125 states
    # (159) are valued worse than dead.
    assert eq5d5l_index("11111", "england") == 1.0
    assert eq5d5l_index("55555", "england") == pytest.approx(-0.285, abs=5e-4)
    worse_than_dead = sum(eq5d5l_index(p, "england") < 0 for p in PROFILES)
    assert worse_than_dead == 159
    assert round(100 * worse_than_dead / 3125, 1) == 5.1


def test_uk_2026_all_profiles_match_second_computation() -> None:
    assert all(abs(eq5d5l_index(p, "uk-2026") - _additive(UK_2026, p)) < 5e-4 for p in PROFILES)
    # Rowen 2026: 55555 = 1 - (0.279 + 0.206 + 0.212 + 0.479 + 0.391) = 1 - 1.567 = -0.567
    assert eq5d5l_index("55555", "uk-2026") == pytest.approx(-0.567, abs=5e-4)


def test_crosswalk_published_values() -> None:
    # van Hout 2012 UK crosswalk (EuroQol crosswalk table): 11111 = 1, 11112 = 0.879,
    # 55555 = -0.594 (the lowest UK 3L-based value).
    assert eq5d5l_index("11111", "uk-crosswalk") == 1.0
    assert eq5d5l_index("11112", "uk-crosswalk") == pytest.approx(0.879, abs=5e-4)
    assert eq5d5l_index("55555", "uk-crosswalk") == pytest.approx(-0.594, abs=5e-4)


def test_crosswalk_all_profiles_match_shared_source_csv() -> None:
    path = _shared_crosswalk()
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    uk = rows[0].index("UK")
    source = {r[0]: float(r[uk]) for r in rows[1:]}
    # The shared file has 3124 newline-terminated rows plus a last row without a newline:
    # 3125 data rows, every profile once.
    assert len(rows) - 1 == 3125
    assert sorted(source) == PROFILES
    bad = [p for p in PROFILES if abs(eq5d5l_index(p, "uk-crosswalk") - source[p]) > 5e-4]
    assert bad == []


@pytest.mark.parametrize("name", ["england", "uk-2026", "uk-crosswalk"])
def test_worse_levels_never_raise_the_index(name: str) -> None:
    # Logical consistency of a value set: a worse level in any dimension cannot add utility.
    vs = VALUE_SETS[name]
    index = {p: vs.index(p) for p in PROFILES}
    for p in PROFILES:
        for i, level in enumerate(p):
            if level != "5":
                worse = p[:i] + str(int(level) + 1) + p[i + 1 :]
                assert index[worse] <= index[p] + 1e-12, (p, worse)


def test_score_returns_flat_dict_with_all_value_sets() -> None:
    out = score(
        "eq5d5l",
        {
            "mobility": 1,
            "self_care": "2",
            "usual_activities": 3,
            "pain_discomfort": 4,
            "anxiety_depression": 5,
            "vas": "70",
        },
    )
    # England 12345 = 1 - (0.050 + 0.063 + 0.276 + 0.289) = 0.322
    assert out == {
        "profile": "12345",
        "vas": 70.0,
        "index_england": 0.322,
        "index_uk_2026": eq5d5l_index("12345", "uk-2026"),
        "index_uk_crosswalk": eq5d5l_index("12345", "uk-crosswalk"),
    }
    assert score("eq5d5l", {"profile": "12345"}) == {k: v for k, v in out.items() if k != "vas"}
    assert score("eq5d5l", {"profile": 12345}, value_sets="england") == {
        "profile": "12345",
        "index_england": 0.322,
    }


@pytest.mark.parametrize(
    "profile", ["1234", "123456", "12a45", "12605", "", " ", "1111.", True, 1.5, None]
)
def test_bad_profile_names_the_rule(profile: object) -> None:
    with pytest.raises(InputError) as err:
        eq5d5l_index(profile)  # type: ignore[arg-type]
    assert "5 digits, each 1–5" in str(err.value)
    assert "\n" not in str(err.value)


def test_profile_and_items_must_agree() -> None:
    with pytest.raises(InputError, match="'self_care'"):
        score("eq5d5l", {"profile": "11111", "self_care": 2})
    assert score("eq5d5l", {"profile": "11111", "self_care": "1"})["profile"] == "11111"


def test_unknown_value_set_lists_the_known_ones() -> None:
    with pytest.raises(InputError, match="england, uk-2026, uk-crosswalk"):
        eq5d5l_index("11111", "usa")


def test_lookup_with_a_missing_profile_refuses_to_invent_a_value() -> None:
    table = {p: 0.5 for p in PROFILES if p != "33333"}
    vs = LookupValueSet("partial", "partial", "0", "test", None, table=table)
    assert vs.missing_profiles == ["33333"]
    assert vs.index("33334") == 0.5
    with pytest.raises(InputError, match="'33333'"):
        vs.index("33333")


def test_value_sets_are_pluggable() -> None:
    flat = {
        d: (0.01, 0.02, 0.03, 0.04)
        for d in (
            "mobility",
            "self_care",
            "usual_activities",
            "pain_discomfort",
            "anxiety_depression",
        )
    }
    vs = AdditiveValueSet("test-flat", "test", "1", "made up for a test", None, decrements=flat)
    register_value_set(vs)
    try:
        assert eq5d5l_index("55555", "test-flat") == 0.8
        assert score("eq5d5l", {"profile": "22222"})["index_test_flat"] == 0.95
    finally:
        del VALUE_SETS["test-flat"]
    with pytest.raises(ValueError, match="already registered"):
        register_value_set(VALUE_SETS["england"])
