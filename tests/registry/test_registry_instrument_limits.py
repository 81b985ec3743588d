"""One source of item ranges (issue 16): the registry checks follow-up answers with the
instruments' own items, and stump and mobility answers go through the same follow-up path
(form, service, scores) as every other instrument.

Independent expectations: the published scales (NRS 0–10, Farrar 2001; VAS 0–100 mm,
Huskisson 1974; EQ-5D-5L levels 1–5 and EQ VAS 0–100, Herdman 2011; MOXFQ items 0–4, Dawson
2006; BPI items 0–10, Cleeland 2009) and, for the stump and mobility scores, arithmetic done by
hand beside the instrument functions called directly.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from registry_helpers import enrolment, followup, login
from sqlalchemy import select

from cryoneuro.instruments import INSTRUMENTS, score_mobility, score_stump
from cryoneuro.registry.errors import RegistryInputError
from cryoneuro.registry.instruments_bridge import (
    ITEM_SPECS,
    NOT_ASKED,
    asked_items,
    validate_answers,
)
from cryoneuro.registry.models import FollowUpVisit

#: (instrument, item) → (min, max) of the published scale.
PUBLISHED = {
    ("nrs", "pain"): (0, 10),
    ("vas", "pain"): (0, 100),
    **{
        ("eq5d5l", d): (1, 5)
        for d in ("mobility", "self_care", "usual_activities", "pain_discomfort")
    },
    ("eq5d5l", "anxiety_depression"): (1, 5),
    ("eq5d5l", "vas"): (0, 100),
    **{("moxfq", f"q{i}"): (0, 4) for i in range(1, 17)},
    **{
        ("bpi", k): (0, 10)
        for k in ("worst", "least", "average", "now", "general_activity", "mood", "sleep")
    },
    ("stump", "residual_limb_pain"): (0, 10),
    ("stump", "phantom_pain"): (0, 10),
    # a duration within one day (1440 minutes)
    ("stump", "phantom_episode_duration_min"): (0, 1440),
    ("mobility", "walking_time_min"): (0, 1440),
}


def _valid(code: str) -> dict[str, object]:
    """A complete, valid answer set for one instrument: every numeric item at its minimum."""
    return {name: item.min for name, item in ITEM_SPECS[code].items() if item.kind != "choice"}


def test_the_registry_asks_the_instruments_items_with_their_limits() -> None:
    for code, items in ITEM_SPECS.items():
        instrument = INSTRUMENTS[code]
        expected = [i.name for i in instrument.items if i.name not in NOT_ASKED.get(code, ())]
        assert list(items) == expected, code
        for name, item in items.items():
            own = instrument.item(name)
            assert (item.kind, item.min, item.max, item.choices) == (
                own.kind,
                own.min,
                own.max,
                own.choices,
            ), (code, name)
    for (code, name), bounds in PUBLISHED.items():
        assert (ITEM_SPECS[code][name].min, ITEM_SPECS[code][name].max) == bounds, (code, name)
    assert ITEM_SPECS["mobility"]["aid"].choices == (
        "none",
        "stick",
        "crutches",
        "frame",
        "wheelchair",
    )


@pytest.mark.parametrize(
    ("code", "name"),
    [(c, n) for c, items in ITEM_SPECS.items() for n, i in items.items() if i.kind != "choice"],
)
def test_out_of_range_answers_are_refused_at_the_instruments_limits(code: str, name: str) -> None:
    item = INSTRUMENTS[code].item(name)
    step = 1 if item.kind == "integer" else 0.5
    for inside in (item.min, item.max):
        clean = validate_answers({code: {**_valid(code), name: inside}})
        assert clean[code][name] == inside
    for outside in (item.min - step, item.max + step):
        with pytest.raises(RegistryInputError) as info:
            validate_answers({code: {**_valid(code), name: outside}})
        assert info.value.field == f"answers.{code}.{name}"
        assert f"{item.min:g}–{item.max:g}" in str(info.value)  # the instrument's own words


def test_a_choice_outside_the_instruments_choices_is_refused() -> None:
    with pytest.raises(RegistryInputError) as info:
        validate_answers({"mobility": {"walking_distance_m": 100, "aid": "skateboard"}})
    assert info.value.field == "answers.mobility.aid"
    assert validate_answers({"mobility": {"walking_distance_m": 100, "aid": " Crutches "}}) == {
        "mobility": {"walking_distance_m": 100.0, "aid": "crutches"}
    }


def test_the_registry_follows_the_instrument_when_its_limit_changes(monkeypatch) -> None:
    """The limits are derived, not copied: narrow the stump instrument's phantom_pain to 0–5
    and the registry's item is 0–5 too."""
    stump = INSTRUMENTS["stump"]
    narrowed = tuple(
        dataclasses.replace(i, max=5) if i.name == "phantom_pain" else i for i in stump.items
    )
    monkeypatch.setitem(INSTRUMENTS, "stump", dataclasses.replace(stump, items=narrowed))
    assert asked_items("stump")["phantom_pain"].max == 5
    assert asked_items("stump")["residual_limb_pain"].max == 10


TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')

STUMP = {
    "residual_limb_pain": 3,
    "phantom_pain": 6,
    "phantom_episodes_per_day": 4,
    "phantom_episode_duration_min": 2.5,
}
MOBILITY = {"walking_distance_m": 350.5, "walking_time_min": 6, "aid": "crutches"}


def test_stump_and_mobility_are_recorded_through_the_followup_form(client) -> None:
    headers = login(client, "nurse")
    r = client.post("/api/participants", json=enrolment(), headers=headers)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    url = f"/participants/{pid}/followup"
    page = client.get(url).text
    token = TOKEN.search(page).group(1)
    # the form offers the instrument's choices for the aid and decimals for the distance
    aid = re.search(r'<select name="answers.mobility.aid".*?</select>', page, re.S).group(0)
    assert re.findall(r'<option value="([a-z]+)"', aid) == list(
        INSTRUMENTS["mobility"].item("aid").choices
    )
    distance = re.search(r'<input[^>]*name="answers.mobility.walking_distance_m"[^>]*>', page)
    assert 'step="any"' in distance.group(0)
    assert 'max="100000"' in distance.group(0)
    visit = followup()
    form = {
        "visit_code": visit["visit_code"],
        "visit_date": visit["visit_date"],
        "csrf_token": token,
        **{f"answers.stump.{k}": str(v) for k, v in STUMP.items()},
        **{f"answers.mobility.{k}": str(v) for k, v in MOBILITY.items()},
    }
    bad = client.post(url, data={**form, "answers.stump.phantom_pain": "11"})
    assert bad.status_code == 422
    assert re.search(r'id="error-answers.stump.phantom_pain"[^>]*>[^<]*0–10', bad.text)
    r = client.post(url, data=form, follow_redirects=False)
    assert r.status_code == 303, r.text[:2000]

    with client.registry.factory() as session:
        stored = session.scalars(
            select(FollowUpVisit).where(FollowUpVisit.participant_id == pid)
        ).one()
        answers, scores = stored.answers, stored.scores
    assert answers == {"stump": STUMP, "mobility": MOBILITY}
    # the same scores as the instrument functions called directly ...
    assert scores["stump"] == score_stump(STUMP)
    assert scores["mobility"] == score_mobility(MOBILITY)
    # ... and as worked by hand: phantom burden = 4 episodes × 2.5 min = 10 min a day
    assert scores["stump"]["phantom_burden"] == pytest.approx(10.0)
    assert scores["mobility"] == {
        "walking_distance_m": 350.5,
        "walking_time_min": 6.0,
        "aid": "crutches",
    }


def test_the_api_refuses_mobility_beyond_the_instruments_limit(client) -> None:
    headers = login(client, "nurse")
    pid = client.post("/api/participants", json=enrolment(), headers=headers).json()["id"]
    body = followup(answers={"mobility": {"walking_distance_m": 100001}})
    r = client.post(f"/api/participants/{pid}/visits", json=body, headers=headers)
    assert r.status_code == 422
    assert r.json()["field"] == "answers.mobility.walking_distance_m"
    assert "0–100000" in r.json()["detail"]
    body = followup(answers={"stump": {**STUMP, "phantom_episode_duration_min": 400}})
    r = client.post(f"/api/participants/{pid}/visits", json=body, headers=headers)
    assert r.status_code == 422  # 4 × 400 min is more than a day (the stump scorer's rule)
    assert r.json()["field"] == "answers.stump"
