"""Amputation-stump pain: residual-limb and phantom pain recorded separately.

Residual-limb (stump) pain and phantom-limb pain are different phenomena with different
mechanisms and responses to treatment, and cryoneurolysis trials report them apart (e.g.
Ilfeld BM, et al. Anesthesiology 2023;138(1):82-97, doi:10.1097/ALN.0000000000004429; Prologo
JD, et al. 2017); so this instrument never combines them into one number.

- ``residual_limb_pain``, ``phantom_pain``: 0–10 NRS (Farrar 2001, see :mod:`.pain`).
- ``phantom_episodes_per_day`` (integer ≥ 0) and ``phantom_episode_duration_min`` (minutes
  ≥ 0): optional frequency and typical duration of phantom pain episodes.
- ``phantom_burden``: episodes × duration, minutes of phantom pain a day, only when both are
  given; a project-defined summary (not a published score), capped by the length of a day.
"""

from __future__ import annotations

from typing import Any

from cryoneuro.errors import InputError
from cryoneuro.instruments.base import Instrument, Item, Measure, Scores, register

MINUTES_PER_DAY = 1440


def _score(answers: dict[str, Any]) -> Scores:
    """Pass the ratings through; phantom_burden = episodes/day × minutes/episode (min/day)."""
    out: Scores = {
        "residual_limb_pain": float(answers["residual_limb_pain"]),
        "phantom_pain": float(answers["phantom_pain"]),
    }
    episodes = answers.get("phantom_episodes_per_day")
    duration = answers.get("phantom_episode_duration_min")
    if episodes is not None:
        out["phantom_episodes_per_day"] = float(episodes)
    if duration is not None:
        out["phantom_episode_duration_min"] = float(duration)
    if episodes is not None and duration is not None:
        burden = float(episodes) * float(duration)
        if burden > MINUTES_PER_DAY:
            raise InputError(
                f"stump: items 'phantom_episodes_per_day' × 'phantom_episode_duration_min' "
                f"must be ≤ {MINUTES_PER_DAY} minutes a day (got {burden:g})"
            )
        out["phantom_burden"] = burden
    return out


STUMP = register(
    Instrument(
        code="stump",
        label="Stump pain: residual-limb and phantom (NRS 0–10)",
        items=(
            Item("residual_limb_pain", 0, 10, label="residual-limb pain, 0 – 10"),
            Item("phantom_pain", 0, 10, label="phantom-limb pain, 0 – 10"),
            Item(
                "phantom_episodes_per_day",
                0,
                1000,
                required=False,
                label="phantom pain episodes per day",
            ),
            Item(
                "phantom_episode_duration_min",
                0,
                MINUTES_PER_DAY,
                required=False,
                kind="number",
                label="typical phantom episode duration, minutes",
            ),
        ),
        measures=(
            Measure("residual_limb_pain", "Residual-limb pain 0–10; higher is worse."),
            Measure("phantom_pain", "Phantom-limb pain 0–10; higher is worse."),
            Measure(
                "phantom_episodes_per_day",
                "Phantom pain episodes a day (when given); higher is worse.",
            ),
            Measure(
                "phantom_episode_duration_min",
                "Typical phantom episode duration, minutes (when given); higher is worse.",
            ),
            Measure(
                "phantom_burden",
                "Minutes of phantom pain a day = episodes × duration (when "
                "both given; project-defined); higher is worse.",
            ),
        ),
        citation=(
            "Ratings as NRS (Farrar JT, et al. Pain 2001;94:149-158); residual-limb and "
            "phantom pain reported apart as in Ilfeld BM, et al. Anesthesiology "
            "2023;138:82-97."
        ),
        doi="10.1097/ALN.0000000000004429",
        scorer=_score,
    )
)


def score_stump(answers: dict[str, Any]) -> Scores:
    """Residual-limb and phantom pain, episode frequency/duration and phantom_burden."""
    return STUMP.score(answers)
