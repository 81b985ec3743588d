"""Validate follow-up instrument answers and score them with :mod:`cryoneuro.instruments`.

The registry checks item ranges itself (so it works before the instruments package exists)
and stores the raw answers as JSON; scores come from the instruments package when it can be
imported, and are left empty otherwise (re-scorable later from the stored answers).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from cryoneuro.errors import InputError
from cryoneuro.registry.errors import RegistryInputError

log = logging.getLogger(__name__)

#: instrument → item → (minimum, maximum, required); all answers are integers.
ITEM_SPECS: dict[str, dict[str, tuple[int, int, bool]]] = {
    "nrs": {"pain": (0, 10, True)},
    "vas": {"pain": (0, 100, True)},
    "eq5d5l": {
        **{
            k: (1, 5, True)
            for k in (
                "mobility",
                "self_care",
                "usual_activities",
                "pain_discomfort",
                "anxiety_depression",
            )
        },
        "vas": (0, 100, True),
    },
    "moxfq": {f"q{i}": (0, 4, True) for i in range(1, 17)},
    "bpi": {
        **{k: (0, 10, True) for k in ("worst", "least", "average", "now")},
        **{
            k: (0, 10, False)
            for k in (
                "general_activity",
                "mood",
                "walking",
                "work",
                "relations",
                "sleep",
                "enjoyment",
            )
        },
    },
    # stump/phantom set and mobility (issue 14: asked of participants too); the walking aid
    # (a choice, not a number) is not collected by the registry yet
    "stump": {
        "residual_limb_pain": (0, 10, True),
        "phantom_pain": (0, 10, True),
        "phantom_episodes_per_day": (0, 1000, False),
        "phantom_episode_duration_min": (0, 1440, False),
    },
    "mobility": {"walking_distance_m": (0, 100000, True), "walking_time_min": (0, 1440, False)},
}
INSTRUMENT_LABELS = {
    "nrs": "Pain NRS (0–10)",
    "vas": "Pain VAS (0–100)",
    "eq5d5l": "EQ-5D-5L",
    "moxfq": "MOXFQ",
    "bpi": "Brief Pain Inventory",
    "stump": "Stump pain: residual-limb and phantom",
    "mobility": "Mobility (walking distance and time)",
}


def validate_answers(answers: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Return clean integer answers or raise naming the first bad field (answers.X.Y)."""
    clean: dict[str, dict[str, int]] = {}
    for instrument, items in answers.items():
        spec = ITEM_SPECS.get(instrument)
        if spec is None:
            raise RegistryInputError(
                f"unknown instrument '{instrument[:40]}'; known: {', '.join(ITEM_SPECS)}",
                f"answers.{instrument[:40]}",
            )
        if not isinstance(items, dict):
            raise RegistryInputError("answers must be an object of items", f"answers.{instrument}")
        out: dict[str, int] = {}
        for item in items:
            if item not in spec:
                raise RegistryInputError(
                    f"unknown item '{str(item)[:40]}' for {instrument}",
                    f"answers.{instrument}.{str(item)[:40]}",
                )
        for item, (lo, hi, required) in spec.items():
            field = f"answers.{instrument}.{item}"
            value = items.get(item)
            if value is None or value == "":
                if required:
                    raise RegistryInputError(f"{item} is required", field)
                continue
            if isinstance(value, bool):
                raise RegistryInputError(f"{item} must be a whole number {lo}–{hi}", field)
            if isinstance(value, str):
                try:
                    value = int(value.strip())
                except ValueError:
                    raise RegistryInputError(
                        f"{item} must be a whole number {lo}–{hi}", field
                    ) from None
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int):
                raise RegistryInputError(f"{item} must be a whole number {lo}–{hi}", field)
            if not lo <= value <= hi:
                raise RegistryInputError(
                    f"{item} must be between {lo} and {hi} (got {value})", field
                )
            out[item] = value
        if instrument == "bpi" and 0 < sum(k in out for k in spec if not spec[k][2]) < 4:
            raise RegistryInputError(
                "BPI interference needs at least 4 of 7 items", "answers.bpi.general_activity"
            )
        clean[instrument] = out
    return clean


def score_answers(answers: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Scores from cryoneuro.instruments when available; {} otherwise (answers are kept)."""
    try:
        instruments = importlib.import_module("cryoneuro.instruments")
    except ImportError:
        return {}
    generic = getattr(instruments, "score", None)
    scores: dict[str, Any] = {}
    for code, items in answers.items():
        specific = getattr(instruments, f"score_{code}", None)
        if generic is None and specific is None:
            continue
        try:
            result = generic(code, items) if generic is not None else specific(items)
        except InputError as exc:
            raise RegistryInputError(str(exc), f"answers.{code}") from exc
        except Exception as exc:
            log.warning("scoring %s failed: %s", code, exc)
            continue
        if hasattr(result, "model_dump"):
            result = result.model_dump(mode="json")
        elif not isinstance(result, dict):
            result = {"score": result}
        scores[code] = result
    return scores
