"""Property tests of instrument scoring (hypothesis) over every valid set of answers.

Expectations come from the instruments' publications, not from the code:

* **Bounds.** NRS 0-10 (Farrar 2001), VAS 0-100 mm (Huskisson 1974), BPI severity and
  interference 0-10 (Cleeland 2009), MOXFQ domains and index 0-100 (Dawson 2006; Morley 2013);
  the EQ-5D-5L index lies within its value set's published range: England −0.285 to 1 (Devlin
  et al. 2018, Health Econ 27:7), UK crosswalk −0.594 to 1 (van Hout et al. 2012, Value Health
  15:708; the range of the UK 3L tariff, Dolan 1997), UK 2026 −0.567 to 1 (Rowen et al. 2026);
  11111 (full health) scores exactly 1 on every value set.
* **Monotonicity.** Each measure moves with its items in the direction the instrument states:
  a worse answer (higher pain rating, higher MOXFQ item, higher EQ-5D level) never lowers a
  "higher is worse" measure nor raises a "higher is better" one.
* **Invariance to item order.** A form's items arrive in any order; the scores do not depend on it.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryoneuro.errors import InputError
from cryoneuro.instruments import DIMENSIONS, INSTRUMENTS, VALUE_SETS, score

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)

#: Published index ranges (min, max) of the EQ-5D-5L value sets (see the module docstring).
INDEX_RANGE = {
    "index_england": (-0.285, 1.0),
    "index_uk_crosswalk": (-0.594, 1.0),
    "index_uk_2026": (-0.567, 1.0),
}
#: Published score ranges of the ordered measures.
RANGES = {
    ("nrs", "pain"): (0, 10),
    ("vas", "pain"): (0, 100),
    ("bpi", "severity"): (0, 10),
    ("bpi", "interference"): (0, 10),
    ("moxfq", "walking_standing"): (0, 100),
    ("moxfq", "pain"): (0, 100),
    ("moxfq", "social_interaction"): (0, 100),
    ("moxfq", "index"): (0, 100),
    ("stump", "residual_limb_pain"): (0, 10),
    ("stump", "phantom_pain"): (0, 10),
    **{("eq5d5l", name): r for name, r in INDEX_RANGE.items()},
    ("eq5d5l", "vas"): (0, 100),
}
#: Instruments whose answers are all bounded integer ratings where higher means worse (for
#: EQ-5D-5L: level 1 "no problems" … 5 "extreme problems"; its VAS is handled separately).
RATED = ("nrs", "vas", "bpi", "moxfq", "eq5d5l")


def test_the_value_sets_tested_are_the_ones_shipped() -> None:
    assert {f"index_{name.replace('-', '_')}" for name in VALUE_SETS} == set(INDEX_RANGE)


@st.composite
def complete_answers(draw, code: str) -> dict[str, int]:
    """Every integer item of ``code`` answered within its range (EQ-5D: the five levels)."""
    items = INSTRUMENTS[code].items
    if code == "eq5d5l":
        items = [i for i in items if i.name in DIMENSIONS]
    return {
        i.name: draw(st.integers(int(i.min), int(i.max)))
        for i in items
        if i.kind == "integer" and i.min is not None and i.max is not None
    }


def _direction(code: str, measure: str) -> str:
    return next(m.direction for m in INSTRUMENTS[code].measures if m.name == measure)


def _check_bounds(code: str, scores: dict) -> None:
    for measure, value in scores.items():
        if (code, measure) in RANGES and value is not None:
            lo, hi = RANGES[code, measure]
            assert lo - 1e-9 <= value <= hi + 1e-9, (code, measure, value)


@SETTINGS
@given(data=st.data(), code=st.sampled_from(RATED))
def test_scores_stay_within_the_published_ranges(data, code) -> None:
    answers = data.draw(complete_answers(code))
    scores = score(code, answers)
    _check_bounds(code, scores)
    if code == "eq5d5l" and set(answers.values()) == {1}:
        assert all(scores[name] == 1.0 for name in INDEX_RANGE)  # full health


@pytest.mark.parametrize("code", RATED)
def test_the_extremes_reach_the_ends_of_the_published_ranges(code) -> None:
    """All items at their best give the best score and all at their worst the worst: NRS/VAS/
    BPI/MOXFQ 0 and their maximum; EQ-5D-5L 11111 = 1 and 55555 = the value set's minimum."""
    items = [i for i in INSTRUMENTS[code].items if i.kind == "integer" and i.min is not None]
    if code == "eq5d5l":
        items = [i for i in items if i.name in DIMENSIONS]
    best = score(code, {i.name: int(i.min) for i in items})
    worst = score(code, {i.name: int(i.max) for i in items})
    for measure in best:
        if (code, measure) not in RANGES:
            continue
        lo, hi = RANGES[code, measure]
        if _direction(code, measure) == "higher is worse":
            assert (best[measure], worst[measure]) == (pytest.approx(lo), pytest.approx(hi))
        else:
            assert (best[measure], worst[measure]) == (pytest.approx(hi), pytest.approx(lo))


@SETTINGS
@given(data=st.data(), code=st.sampled_from(RATED))
def test_a_worse_answer_never_scores_better(data, code) -> None:
    answers = data.draw(complete_answers(code))
    item = data.draw(st.sampled_from(sorted(answers)))
    spec = INSTRUMENTS[code].item(item)
    if answers[item] == spec.max:
        answers[item] -= 1  # step up from one below the top instead
    worse = {**answers, item: answers[item] + 1}
    before, after = score(code, answers), score(code, worse)
    _check_bounds(code, after)
    for measure, value in before.items():
        if not isinstance(value, int | float) or after[measure] is None:
            continue
        direction = _direction(code, measure)
        if direction == "higher is worse":
            assert after[measure] >= value - 1e-12, (code, item, measure)
        elif direction == "higher is better":
            assert after[measure] <= value + 1e-12, (code, item, measure)
    # and the item counts: some "worse" measure strictly rises or "better" one falls
    assert any(
        isinstance(v, int | float) and after[m] is not None and after[m] != v
        for m, v in before.items()
    ), (code, item)


@SETTINGS
@given(data=st.data(), code=st.sampled_from(RATED))
def test_scores_do_not_depend_on_the_order_of_the_items(data, code) -> None:
    answers = data.draw(complete_answers(code))
    shuffled = dict(data.draw(st.permutations(list(answers.items()))))
    assert score(code, shuffled) == score(code, answers)


@SETTINGS
@given(
    episodes=st.integers(0, 1000),
    duration=st.floats(0, 1440, allow_nan=False),
    residual=st.integers(0, 10),
    phantom=st.integers(0, 10),
)
def test_phantom_burden_is_episodes_times_duration_within_a_day(
    episodes, duration, residual, phantom
) -> None:
    """Stump: the project-defined burden is minutes of phantom pain a day = episodes ×
    duration, so at most the 1440 minutes of a day — more is an impossible answer and refused
    naming both items; the two ratings are the NRS answers themselves."""
    answers = {
        "residual_limb_pain": residual,
        "phantom_pain": phantom,
        "phantom_episodes_per_day": episodes,
        "phantom_episode_duration_min": duration,
    }
    if episodes * duration > 1440:
        with pytest.raises(InputError, match=r"phantom_episodes_per_day.*1440 minutes a day"):
            score("stump", answers)
        return
    scores = score("stump", answers)
    assert scores["phantom_burden"] == pytest.approx(episodes * duration)
    assert 0.0 <= scores["phantom_burden"] <= 1440.0
    assert (scores["residual_limb_pain"], scores["phantom_pain"]) == (residual, phantom)
