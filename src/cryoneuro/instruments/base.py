"""Instrument objects, the registry of instruments, and answer validation.

An :class:`Instrument` couples an item specification (what a form may send) with a scorer (a
pure function of clean answers) so that validation is written once, here, and every instrument
reports bad input the same way: one :class:`~cryoneuro.errors.InputError` line that names the
instrument, the item and the allowed range (forms and the CLI show it verbatim).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cryoneuro.errors import InputError

#: What one scorer returns: a flat mapping measure → value (the analysis package reads scores
#: as rows instrument/measure/value, so no nesting).
Scores = dict[str, float | str | None]

ItemKind = Literal["integer", "number", "choice", "text"]
Direction = Literal["higher is worse", "higher is better", "not ordered"]


@dataclass(frozen=True)
class Item:
    """One answer a form may send: its name, kind and allowed range (inclusive)."""

    name: str
    min: float | None = None
    max: float | None = None
    required: bool = True
    kind: ItemKind = "integer"
    choices: tuple[str, ...] = ()
    label: str = ""

    def allowed(self) -> str:
        """The allowed values in words, for error messages ("an integer 1–5")."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "text":
            return "text"
        noun = "an integer" if self.kind == "integer" else "a number"
        if self.min is not None and self.max is not None:
            return f"{noun} {_fmt(self.min)}–{_fmt(self.max)}"
        if self.min is not None:
            return f"{noun} ≥ {_fmt(self.min)}"
        if self.max is not None:
            return f"{noun} ≤ {_fmt(self.max)}"
        return noun

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "min": self.min,
            "max": self.max,
            "required": self.required,
            "choices": list(self.choices) or None,
            "label": self.label,
        }


@dataclass(frozen=True)
class Measure:
    """One output of a scorer; ``description`` is a sentence that states the direction."""

    name: str
    description: str
    direction: Direction = "higher is worse"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "direction": self.direction}


Scorer = Callable[..., Scores]
Prepare = Callable[[str, Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Instrument:
    """A questionnaire: item spec, measures, citation and a scorer of validated answers.

    ``prepare`` (optional) rewrites raw answers before the generic item validation (EQ-5D-5L
    uses it to expand a 5-digit profile into its five items). ``options`` names the keyword
    options the scorer accepts; anything else is refused rather than silently ignored.
    """

    code: str
    label: str
    items: tuple[Item, ...]
    measures: tuple[Measure, ...]
    citation: str
    scorer: Scorer
    doi: str | None = None
    prepare: Prepare | None = None
    options: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def item(self, name: str) -> Item:
        for it in self.items:
            if it.name == name:
                return it
        raise KeyError(name)

    def validate(self, answers: Mapping[str, Any]) -> dict[str, Any]:
        """Clean answers (ints, floats, choice strings) or an InputError naming the item."""
        if not isinstance(answers, Mapping):
            raise InputError(
                f"{self.code}: answers must be a mapping of item → value "
                f"(got {type(answers).__name__})"
            )
        raw = self.prepare(self.code, answers) if self.prepare else dict(answers)
        return validate_items(self.code, self.items, raw)

    def score(self, answers: Mapping[str, Any], **options: Any) -> Scores:
        """Validate, then score: a flat dict measure → value."""
        for key in options:
            if key not in self.options:
                allowed = ", ".join(self.options) or "none"
                raise InputError(f"{self.code}: unknown option '{key}' (allowed: {allowed})")
        return self.scorer(self.validate(answers), **options)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "label": self.label,
            "citation": self.citation,
            "doi": self.doi,
            "items": [i.to_dict() for i in self.items],
            "measures": [m.to_dict() for m in self.measures],
            "notes": list(self.notes),
        }


#: code → Instrument. Filled by the instrument modules on import; extend with :func:`register`.
INSTRUMENTS: dict[str, Instrument] = {}


def register(instrument: Instrument, *, replace: bool = False) -> Instrument:
    """Add an instrument to :data:`INSTRUMENTS` (refuses to shadow one unless ``replace``)."""
    if instrument.code in INSTRUMENTS and not replace:
        raise ValueError(f"instrument '{instrument.code}' is already registered")
    INSTRUMENTS[instrument.code] = instrument
    return instrument


def get_instrument(code: str) -> Instrument:
    """The registered instrument ``code`` (case-insensitive) or an InputError listing them."""
    key = str(code).strip().lower()
    if key not in INSTRUMENTS:
        raise InputError(f"unknown instrument '{_show(code)}'; known: {', '.join(INSTRUMENTS)}")
    return INSTRUMENTS[key]


# --------------------------------------------------------------------------- validation
def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _show(value: Any) -> str:
    """A short, one-line rendering of a bad value for an error message."""
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(str(text).split())
    return text if len(text) <= 40 else text[:37] + "..."


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _to_number(value: Any) -> float | int | None:
    """An int or float from a number or a numeric string; None if it is not one.

    Booleans are refused on purpose: ``True`` is an int in Python but never a valid answer.
    """
    if isinstance(value, bool):  # numpy bools are not numbers.Real either: refused below
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            return None
    return None


def check_item(code: str, item: Item, value: Any) -> int | float | str:
    """One clean value for ``item`` or an InputError that names it and its range."""
    bad = f"{code}: item '{item.name}' must be {item.allowed()} (got {_show(value)})"
    if item.kind == "choice":
        if not isinstance(value, str) or value.strip().lower() not in item.choices:
            raise InputError(bad)
        return value.strip().lower()
    if item.kind == "text":
        if not isinstance(value, str):
            raise InputError(bad)
        return value.strip()
    number = _to_number(value)
    if number is None or (isinstance(number, float) and not math.isfinite(number)):
        raise InputError(bad)
    if item.kind == "integer":
        if isinstance(number, float):
            if not number.is_integer():
                raise InputError(bad)
            number = int(number)
    else:
        number = float(number)
    if (item.min is not None and number < item.min) or (item.max is not None and number > item.max):
        raise InputError(bad)
    return number


def validate_items(
    code: str, items: tuple[Item, ...], answers: Mapping[str, Any]
) -> dict[str, Any]:
    """Check every answer against ``items``: unknown, missing, wrong type or out of range.

    Missing means absent, ``None`` or an empty string (what an empty form field sends).
    Optional items that are missing are left out of the result.
    """
    spec = {it.name: it for it in items}
    for name in answers:
        if name not in spec:
            raise InputError(
                f"{code}: unknown item '{_show(name)}'; known items: {', '.join(spec)}"
            )
    clean: dict[str, Any] = {}
    for name, item in spec.items():
        value = answers.get(name)
        if _missing(value):
            if item.required:
                raise InputError(f"{code}: item '{name}' is required ({item.allowed()})")
            continue
        clean[name] = check_item(code, item, value)
    return clean
