"""Mobility: walking distance, walking time and walking aid (NICE HTG652 efficacy outcome).

NICE HTG652 (cryotherapy for peripheral neuromas) lists mobility among the efficacy outcomes
(with quality of life and pain) but names no instrument; these are plain, unit-bearing
measures a clinic can record: the distance a patient can walk (metres, before pain stops
them), optionally the time it took (minutes), and the walking aid used.
"""

from __future__ import annotations

from typing import Any

from cryoneuro.instruments.base import Instrument, Item, Measure, Scores, register

AIDS: tuple[str, ...] = ("none", "stick", "crutches", "frame", "wheelchair")


def _score(answers: dict[str, Any]) -> Scores:
    """Pass the validated values through (numbers as floats; the aid as its name)."""
    out: Scores = {"walking_distance_m": float(answers["walking_distance_m"])}
    if "walking_time_min" in answers:
        out["walking_time_min"] = float(answers["walking_time_min"])
    if "aid" in answers:
        out["aid"] = answers["aid"]
    return out


MOBILITY = register(
    Instrument(
        code="mobility",
        label="Mobility (walking distance, time, aid)",
        items=(
            Item(
                "walking_distance_m",
                0,
                100000,
                kind="number",
                label="distance the patient can walk, metres",
            ),
            Item(
                "walking_time_min",
                0,
                1440,
                required=False,
                kind="number",
                label="time taken for that distance, minutes",
            ),
            Item("aid", required=False, kind="choice", choices=AIDS, label="walking aid used"),
        ),
        measures=(
            Measure(
                "walking_distance_m",
                "Walking distance in metres; higher is better.",
                "higher is better",
            ),
            Measure(
                "walking_time_min",
                "Time for that distance in minutes (when given); a "
                "duration, not ordered by itself.",
                "not ordered",
            ),
            Measure(
                "aid",
                "Walking aid (none, stick, crutches, frame, wheelchair; when given); a category.",
                "not ordered",
            ),
        ),
        citation=(
            "NICE HTG652 (formerly IPG747): cryotherapy for peripheral neuromas; efficacy "
            "outcomes quality of life, mobility and pain."
        ),
        doi=None,
        scorer=_score,
    )
)


def score_mobility(answers: dict[str, Any]) -> Scores:
    """Walking distance (m), time (min) and aid, validated."""
    return MOBILITY.score(answers)
