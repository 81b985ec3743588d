"""Follow-up instrument answers in the registry, checked and scored by :mod:`cryoneuro.instruments`.

Why this module is thin: the registry once kept its own copy of every item range, and a copy
drifts (issue 16). The instruments' own definitions (:data:`cryoneuro.instruments.INSTRUMENTS`:
each :class:`~cryoneuro.instruments.Item`'s kind, minimum, maximum and choices) are now the one
source of what an answer may be, and each answer is checked by the instruments' own
:func:`~cryoneuro.instruments.base.check_item`. What this module adds is the registry's
collection policy, stated here and nowhere else:

- which instruments a follow-up visit collects, in the order forms show them
  (:data:`FOLLOWUP_INSTRUMENTS`);
- items the registry does not ask (:data:`NOT_ASKED`: the EQ-5D-5L ``profile``, another way of
  giving the five dimension items);
- items the registry always asks although the instrument can score without them
  (:data:`ALWAYS_ASKED`: the EQ VAS and every MOXFQ item). A blank one needs a missing code
  (services/visit_status.py), so no item is ever silently absent; the MOXFQ scorer's own
  missing-item rule then decides whether the coded visit is scored;
- the BPI interference rule: when any interference item is given, at least
  :data:`~cryoneuro.instruments.bpi.MIN_INTERFERENCE_ITEMS` of the seven must be (Cleeland 2009),
  refused at entry rather than stored unscorable.

Answers are stored as checked (integers, numbers, choice codes) in the visit's JSON; scores are
what :func:`cryoneuro.instruments.score` returns for them.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from cryoneuro import instruments
from cryoneuro.errors import InputError
from cryoneuro.instruments import INSTRUMENTS, Item
from cryoneuro.instruments.base import check_item
from cryoneuro.instruments.bpi import INTERFERENCE_ITEMS, MIN_INTERFERENCE_ITEMS
from cryoneuro.registry.errors import RegistryInputError

log = logging.getLogger(__name__)

#: One checked answer: an integer, a number or a choice code (as the instrument's item says).
Answer = int | float | str

#: The instruments a follow-up visit collects, in form order.
FOLLOWUP_INSTRUMENTS: tuple[str, ...] = (
    "nrs",
    "vas",
    "eq5d5l",
    "moxfq",
    "bpi",
    "stump",
    "mobility",
)
#: instrument → items the registry does not ask.
NOT_ASKED: dict[str, frozenset[str]] = {"eq5d5l": frozenset({"profile"})}
#: instrument → items the registry requires (a value or a missing code) although the
#: instrument's scorer accepts answers without them.
ALWAYS_ASKED: dict[str, frozenset[str]] = {
    "eq5d5l": frozenset({"vas"}),
    "moxfq": frozenset(f"q{i}" for i in range(1, 17)),
}


def asked_items(code: str) -> dict[str, Item]:
    """The items of instrument ``code`` the registry asks, each the instrument's own
    :class:`Item` with ``required`` set by the registry's policy (module docstring)."""
    out: dict[str, Item] = {}
    for item in INSTRUMENTS[code].items:
        if item.name in NOT_ASKED.get(code, ()):
            continue
        required = item.required or item.name in ALWAYS_ASKED.get(code, ())
        out[item.name] = dataclasses.replace(item, required=required)
    return out


#: instrument → item name → the instrument's :class:`Item` (kind, min, max, choices), with
#: ``required`` as the registry asks it. Built from the instruments, never written out.
ITEM_SPECS: dict[str, dict[str, Item]] = {code: asked_items(code) for code in FOLLOWUP_INSTRUMENTS}
#: instrument → its label, from the instrument.
INSTRUMENT_LABELS: dict[str, str] = {code: INSTRUMENTS[code].label for code in FOLLOWUP_INSTRUMENTS}


def missing(value: Any) -> bool:
    """No answer: absent, None, or an empty or blank string (what an empty form field sends)."""
    return value is None or (isinstance(value, str) and not value.strip())


def placeholder(item: Item) -> Answer:
    """A value ``item`` accepts (its minimum or first choice): stands in for a coded item while
    the others are checked, and is removed again (services/visit_status.py)."""
    if item.kind == "choice":
        return item.choices[0]
    if item.kind == "text":
        return "-"
    return item.min if item.min is not None else (item.max if item.max is not None else 0)


def check_answer(instrument: str, item: Item, value: Any) -> Answer:
    """One answer checked by the instrument's own rule; :class:`RegistryInputError` naming the
    field ``answers.<instrument>.<item>`` and the allowed values otherwise."""
    try:
        return check_item(instrument, item, value)
    except InputError as exc:
        raise RegistryInputError(str(exc), f"answers.{instrument}.{item.name}") from None


def validate_answers(answers: dict[str, Any]) -> dict[str, dict[str, Answer]]:
    """Clean answers, or :class:`RegistryInputError` naming the first bad field
    (``answers.<instrument>[.<item>]``): unknown instrument or item, a required item missing,
    a value the instrument's item refuses, or too few BPI interference items."""
    clean: dict[str, dict[str, Answer]] = {}
    for instrument, items in answers.items():
        spec = ITEM_SPECS.get(instrument)
        if spec is None:
            raise RegistryInputError(
                f"unknown instrument '{str(instrument)[:40]}'; known: {', '.join(ITEM_SPECS)}",
                f"answers.{str(instrument)[:40]}",
            )
        if not isinstance(items, dict):
            raise RegistryInputError("answers must be an object of items", f"answers.{instrument}")
        for name in items:
            if name not in spec:
                raise RegistryInputError(
                    f"unknown item '{str(name)[:40]}' for {instrument}",
                    f"answers.{instrument}.{str(name)[:40]}",
                )
        out: dict[str, Answer] = {}
        for name, item in spec.items():
            value = items.get(name)
            if missing(value):
                if item.required:
                    raise RegistryInputError(
                        f"{instrument}: item '{name}' is required ({item.allowed()})",
                        f"answers.{instrument}.{name}",
                    )
                continue
            out[name] = check_answer(instrument, item, value)
        given = sum(name in out for name in INTERFERENCE_ITEMS)
        if instrument == "bpi" and 0 < given < MIN_INTERFERENCE_ITEMS:
            raise RegistryInputError(
                f"BPI interference needs at least {MIN_INTERFERENCE_ITEMS} of "
                f"{len(INTERFERENCE_ITEMS)} items (got {given})",
                f"answers.bpi.{INTERFERENCE_ITEMS[0]}",
            )
        clean[instrument] = out
    return clean


def score_answers(answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Scores by :func:`cryoneuro.instruments.score`, instrument by instrument.

    An answer set the instrument refuses (its own rules, e.g. stump episodes × duration over a
    day) is a :class:`RegistryInputError` on ``answers.<instrument>``. An unexpected error in
    one scorer is logged and leaves that instrument unscored, so the visit's answers are still
    stored and can be re-scored later; the other instruments are scored.
    """
    scores: dict[str, Any] = {}
    for code, items in answers.items():
        try:
            scores[code] = instruments.score(code, items)
        except InputError as exc:
            raise RegistryInputError(str(exc), f"answers.{code}") from exc
        except Exception as exc:
            log.warning("scoring %s failed: %s", code, exc)
    return scores
