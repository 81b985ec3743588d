"""EQ-5D-5L: the five-digit health profile, the EQ VAS, and index values from value sets.

The raw profile (e.g. ``"11235"``: mobility, self-care, usual activities, pain/discomfort,
anxiety/depression, each level 1–5) and the VAS are what a registry stores; an index is a
function of the profile *and* a value set, and value sets change (England 2018 → UK 2026), so
value sets are versioned, pluggable objects (:data:`VALUE_SETS`), loaded from data files under
``cryoneuro/data/value_sets/`` that carry their own citation.

- EQ-5D-5L: Herdman M, Gudex C, Lloyd A, et al. Development and preliminary testing of the new
  five-level version of EQ-5D (EQ-5D-5L). Qual Life Res 2011;20(10):1727-1736.
  doi:10.1007/s11136-011-9903-x
- Value sets: see each data file (Devlin 2018, Rowen 2026, van Hout 2012).
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from cryoneuro.errors import InputError
from cryoneuro.instruments.base import (
    Instrument,
    Item,
    Measure,
    Scores,
    _missing,
    _show,
    _to_number,
    register,
)

#: The five dimensions in profile order (EuroQol's order on the form).
DIMENSIONS: tuple[str, ...] = (
    "mobility",
    "self_care",
    "usual_activities",
    "pain_discomfort",
    "anxiety_depression",
)
_PROFILE = re.compile(r"[1-5]{5}")
_DATA = "data/value_sets"


def check_profile(profile: Any, code: str = "eq5d5l") -> str:
    """The profile as a 5-character string, or an InputError (5 digits, each 1–5)."""
    if isinstance(profile, bool) or not isinstance(profile, str | int):
        raise InputError(f"{code}: profile '{_show(profile)}' must be 5 digits, each 1–5")
    text = str(profile).strip()
    if not _PROFILE.fullmatch(text):
        raise InputError(f"{code}: profile '{_show(text)}' must be 5 digits, each 1–5")
    return text


class ValueSet:
    """A versioned EQ-5D-5L value set: profile → index (rounded to 3 decimals)."""

    name: str
    label: str
    version: str
    citation: str
    doi: str | None

    def index(self, profile: str) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "version": self.version,
            "citation": self.citation,
            "doi": self.doi,
            "kind": type(self).__name__,
        }


@dataclass
class AdditiveValueSet(ValueSet):
    """index = 1 − constant − Σ decrement(dimension, level); level 1 has decrement 0.

    This is the form of the England (Devlin 2018) and UK 2026 (Rowen 2026) models as published
    (main-effects decrements, no constant or interaction term). The published tables are the
    model rounded to 3 decimals, so :meth:`index` rounds likewise.
    """

    name: str
    label: str
    version: str
    citation: str
    doi: str | None
    decrements: dict[str, tuple[float, float, float, float]]
    constant: float = 0.0

    def __post_init__(self) -> None:
        if set(self.decrements) != set(DIMENSIONS) or any(
            len(v) != 4 for v in self.decrements.values()
        ):
            raise ValueError(
                f"value set {self.name}: need 4 decrements (levels 2–5) for each "
                f"of {', '.join(DIMENSIONS)}"
            )

    def index(self, profile: str) -> float:
        profile = check_profile(profile)
        loss = self.constant + sum(
            0.0 if level == "1" else self.decrements[dim][int(level) - 2]
            for dim, level in zip(DIMENSIONS, profile, strict=True)
        )
        return round(1.0 - loss, 3) + 0.0  # + 0.0 turns -0.0 into 0.0


@dataclass
class LookupValueSet(ValueSet):
    """A published table profile → index (e.g. the van Hout 2012 crosswalk).

    A profile missing from the table raises :class:`InputError`: inventing (interpolating) a
    value for it would silently put a number into an analysis that no source gives.
    """

    name: str
    label: str
    version: str
    citation: str
    doi: str | None
    table: dict[str, float] = field(repr=False)

    @property
    def missing_profiles(self) -> list[str]:
        """Profiles of the 3125 that the table lacks (empty for a complete table)."""
        return [p for p in all_profiles() if p not in self.table]

    def index(self, profile: str) -> float:
        profile = check_profile(profile)
        try:
            return self.table[profile]
        except KeyError:
            raise InputError(
                f"eq5d5l: profile '{profile}' has no value in the {self.name} "
                f"table (the source table lacks it)"
            ) from None


def all_profiles() -> list[str]:
    """All 3125 EQ-5D-5L profiles, 11111 … 55555 in lexicographic order."""
    digits = "12345"
    return [
        a + b + c + d + e
        for a in digits
        for b in digits
        for c in digits
        for d in digits
        for e in digits
    ]


def load_value_set(toml_text: str, table_text: str | None = None) -> ValueSet:
    """Build a value set from its TOML description (and CSV table for ``kind = "lookup"``)."""
    meta = tomllib.loads(toml_text)
    common: dict[str, Any] = {
        k: meta.get(k) for k in ("name", "label", "version", "citation", "doi")
    }
    if meta["kind"] == "additive":
        # four decrements per dimension: checked by AdditiveValueSet.__post_init__
        dec: dict[str, Any] = {k: tuple(float(x) for x in v) for k, v in meta["decrements"].items()}
        return AdditiveValueSet(**common, decrements=dec, constant=float(meta.get("constant", 0)))
    if meta["kind"] == "lookup":
        if table_text is None:
            raise ValueError(f"value set {common['name']}: a lookup value set needs its table")
        rows = csv.DictReader(io.StringIO(table_text))
        table = {check_profile(r["profile"]): float(r["index"]) for r in rows}
        return LookupValueSet(**common, table=table)
    raise ValueError(f"value set {common['name']}: unknown kind {meta['kind']!r}")


def _load_packaged(filename: str) -> ValueSet:
    base = resources.files("cryoneuro").joinpath(_DATA)
    text = base.joinpath(filename).read_text(encoding="utf-8")
    meta = tomllib.loads(text)
    table = base.joinpath(meta["table"]).read_text(encoding="utf-8") if "table" in meta else None
    return load_value_set(text, table)


#: name → ValueSet. Add one with :func:`register_value_set`.
VALUE_SETS: dict[str, ValueSet] = {}


def register_value_set(value_set: ValueSet, *, replace: bool = False) -> ValueSet:
    """Make a value set available to :func:`eq5d5l_index`, ``score`` and the CLI."""
    if value_set.name in VALUE_SETS and not replace:
        raise ValueError(f"value set '{value_set.name}' is already registered")
    VALUE_SETS[value_set.name] = value_set
    return value_set


for _file in (
    "eq5d5l_england_devlin_2018.toml",
    "eq5d5l_uk_rowen_2026.toml",
    "eq5d5l_uk_crosswalk_van_hout_2012.toml",
):
    register_value_set(_load_packaged(_file))

# The shared crosswalk had all 3125 profiles when it was copied (2026-11-25). Should a future
# copy lose rows, say so at import as well as at scoring time (InputError for that profile).
if missing := getattr(VALUE_SETS["uk-crosswalk"], "missing_profiles", []):  # pragma: no cover
    import warnings

    warnings.warn(
        f"EQ-5D-5L uk-crosswalk table lacks {len(missing)} profile(s): {', '.join(missing[:10])}",
        stacklevel=1,
    )


def get_value_set(name: str) -> ValueSet:
    """The registered value set ``name`` or an InputError listing the known ones."""
    key = str(name).strip().lower()
    if key not in VALUE_SETS:
        raise InputError(
            f"eq5d5l: unknown value set '{_show(name)}'; known: {', '.join(VALUE_SETS)}"
        )
    return VALUE_SETS[key]


def eq5d5l_index(profile: str | int, value_set: str = "england") -> float:
    """The index of a 5-digit profile under one value set (3 decimals)."""
    return get_value_set(value_set).index(check_profile(profile))


def measure_name(value_set: str) -> str:
    """Flat measure name of a value set's index: ``index_england``, ``index_uk_2026`` …"""
    return "index_" + value_set.replace("-", "_")


# --------------------------------------------------------------------------- instrument
def _prepare(code: str, answers: Mapping[str, Any]) -> dict[str, Any]:
    """Expand ``profile`` into the five items (a profile and items must agree if both given)."""
    raw = dict(answers)
    profile = raw.pop("profile", None)
    if profile is None or (isinstance(profile, str) and not profile.strip()):
        if all(_missing(raw.get(d)) for d in DIMENSIONS):
            raise InputError(
                f"{code}: item 'profile' (5 digits, each 1–5) or the five items "
                f"{', '.join(DIMENSIONS)} (each an integer 1–5) are required"
            )
        return raw
    profile = check_profile(profile, code)
    for dim, level in zip(DIMENSIONS, profile, strict=True):
        given = raw.get(dim)
        if not _missing(given) and _to_number(given) != int(level):
            raise InputError(
                f"{code}: item '{dim}' ({_show(given)}) disagrees with "
                f"profile '{profile}'; give one or the other"
            )
        raw[dim] = level
    return raw


def _score(answers: dict[str, Any], value_sets: Iterable[str] | str | None = None) -> Scores:
    profile = "".join(str(answers[d]) for d in DIMENSIONS)
    names = (
        list(VALUE_SETS)
        if value_sets is None
        else ([value_sets] if isinstance(value_sets, str) else list(value_sets))
    )
    out: Scores = {"profile": profile}
    if "vas" in answers:
        out["vas"] = float(answers["vas"])
    for name in names:
        vs = get_value_set(name)
        out[measure_name(vs.name)] = vs.index(profile)
    return out


_DIM_LABELS = {
    "mobility": "mobility",
    "self_care": "self-care",
    "usual_activities": "usual activities",
    "pain_discomfort": "pain/discomfort",
    "anxiety_depression": "anxiety/depression",
}

EQ5D5L = register(
    Instrument(
        code="eq5d5l",
        label="EQ-5D-5L",
        items=(
            *(
                Item(d, 1, 5, label=f"{_DIM_LABELS[d]}, level 1 (no problems) – 5 (extreme)")
                for d in DIMENSIONS
            ),
            Item(
                "vas",
                0,
                100,
                required=False,
                label="EQ VAS 0 (worst imaginable health) – 100 (best)",
            ),
            Item(
                "profile",
                required=False,
                kind="text",
                label="alternative to the five items: 5 digits, each 1–5",
            ),
        ),
        measures=(
            Measure(
                "profile",
                "The 5-digit health profile (MO SC UA PD AD); a label, not ordered.",
                "not ordered",
            ),
            Measure("vas", "EQ VAS 0–100 (only when given); higher is better.", "higher is better"),
            Measure(
                "index_england",
                "Index, England value set (Devlin 2018), −0.285 to 1; higher is better.",
                "higher is better",
            ),
            Measure(
                "index_uk_2026",
                "Index, UK 2026 value set (Rowen 2026), −0.567 to 1; higher is better.",
                "higher is better",
            ),
            Measure(
                "index_uk_crosswalk",
                "Index, UK crosswalk to 3L (van Hout 2012), −0.594 to 1; higher is better.",
                "higher is better",
            ),
        ),
        citation=(
            "Herdman M, et al. Development and preliminary testing of the new five-level "
            "version of EQ-5D (EQ-5D-5L). Qual Life Res 2011;20(10):1727-1736."
        ),
        doi="10.1007/s11136-011-9903-x",
        prepare=_prepare,
        options=("value_sets",),
        notes=(
            (
                "Give the five items or 'profile'; 'vas' is optional here (the registry requires "
                "it). Option value_sets= restricts the index measures; default: every registered "
                "value set."
            ),
        ),
        scorer=_score,
    )
)


def score_eq5d5l(answers: Mapping[str, Any], **options: Any) -> Scores:
    """Profile, VAS (if given) and one index per value set (``index_<name>``), validated."""
    return EQ5D5L.score(answers, **options)
