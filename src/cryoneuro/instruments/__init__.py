"""Outcome instruments: validate questionnaire answers and score them.

``score(code, answers)`` returns a flat dict measure → value; the analysis package reads scores
as rows instrument/measure/value, the registry stores them beside the raw answers. Every
instrument is an :class:`Instrument` in :data:`INSTRUMENTS` (add one with :func:`register`);
EQ-5D-5L value sets are :class:`ValueSet` objects in :data:`VALUE_SETS`. Bad answers raise
:class:`~cryoneuro.errors.InputError` with one line naming the item and its allowed range.
See docs/instruments.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryoneuro.instruments.base import (
    INSTRUMENTS,
    Instrument,
    Item,
    Measure,
    Scores,
    get_instrument,
    register,
)
from cryoneuro.instruments.bpi import score_bpi
from cryoneuro.instruments.eq5d import (
    DIMENSIONS,
    VALUE_SETS,
    AdditiveValueSet,
    LookupValueSet,
    ValueSet,
    all_profiles,
    eq5d5l_index,
    get_value_set,
    register_value_set,
    score_eq5d5l,
)
from cryoneuro.instruments.mobility import score_mobility
from cryoneuro.instruments.moxfq import score_moxfq
from cryoneuro.instruments.pain import (
    improvement_category,
    is_responder,
    percent_change,
    score_nrs,
    score_vas,
)
from cryoneuro.instruments.stump import score_stump

__all__ = [
    "DIMENSIONS",
    "INSTRUMENTS",
    "VALUE_SETS",
    "AdditiveValueSet",
    "Instrument",
    "Item",
    "LookupValueSet",
    "Measure",
    "Scores",
    "ValueSet",
    "all_profiles",
    "eq5d5l_index",
    "get_instrument",
    "get_value_set",
    "improvement_category",
    "is_responder",
    "percent_change",
    "register",
    "register_value_set",
    "score",
    "score_bpi",
    "score_eq5d5l",
    "score_mobility",
    "score_moxfq",
    "score_nrs",
    "score_stump",
    "score_vas",
]


def score(code: str, answers: Mapping[str, Any], **options: Any) -> Scores:
    """Validate ``answers`` for instrument ``code`` and score them: measure → value.

    ``options`` are instrument-specific (EQ-5D-5L: ``value_sets=`` a name or names).
    """
    return get_instrument(code).score(answers, **options)
