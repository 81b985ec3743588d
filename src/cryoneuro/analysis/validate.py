"""Checks a data set must pass before any analysis, and the exclusions the analysis makes.

Why: every analysis downstream is exact arithmetic on whatever it is given, so a typing error
changes conclusions without a trace — an NRS of −30 flips a treatment effect, a duplicated
visit is counted twice, a follow-up dated before the procedure becomes the baseline, "seven"
is dropped. :func:`check` refuses each of these with one line naming the file, the row (as a
spreadsheet shows it: the header is row 1) and the column, and how to fix it. What the analysis
leaves out on purpose is returned as a list of :class:`Exclusion` rows with the rule, so that
the report can list them. No value is ever changed or dropped silently.

Rules (docs/tidy-format.md, "Checks before analysis"):

1. ``participants``: ``status`` and ``design`` are one of the allowed words; arms and sites
   are among the protocol's lists when given (``--arms``, ``--sites``); in a randomised
   trial every participant who is not a screen failure has an ``arm``; when any participant
   has a ``site`` every participant in the analysis has one (site is a model covariate).
2. ``scores``: the instrument is registered in :mod:`cryoneuro.instruments`; a raw answer
   (``kind = item``) passes that instrument's own item check; a score (``kind = score``) names
   one of its measures and, when the measure is numeric, is a number inside the measure's
   range. Ranges are not written here: an item's range is the instrument's
   (:class:`cryoneuro.instruments.Item`), and a derived measure's range is what the
   instrument's scorer returns for all items at their minimum and all at their maximum (every
   registered scorer is monotone in each item; a scorer that refuses the all-maximum answers
   gives a lower bound only).
3. One row per participant × visit (``visits``) and per participant × visit × instrument ×
   kind × measure (``scores``): duplicates are refused. With ``duplicates="drop_identical"``
   rows that repeat another row in every column are dropped and listed (the only resolution
   that involves no choice between values); conflicting duplicates are always refused.
4. Visit timing: the visit coded ``baseline`` is on or before day 0; any other visit is a
   follow-up and must be after day 0 (a follow-up dated day ≤ 0 is refused, never promoted
   to a baseline). A participant therefore has at most one baseline per measure.
5. ``days_since_procedure``: where blank but the row's date and the participant's first
   ``procedure_date`` are known it is derived as their difference (listed in the report);
   where both are given they must agree. Follow-up scores, adverse events and
   re-interventions without either are refused, since time-to-event and longitudinal
   analyses need the day. Re-interventions and adverse events cannot precede day 0.
6. Populations: a participant with follow-up but no baseline value is excluded from the
   change, responder and mixed-model analyses of that outcome (listed). Safety and
   re-intervention denominators are every randomised/enrolled participant of an arm; in an
   arm where some participants have ``procedures`` rows (the cryoablation or sham arm), those
   without one did not receive the procedure and are excluded from safety (listed); an arm
   with no ``procedures`` rows at all (e.g. surgery, whose operation is not a cryoablation
   and so is not recorded there) is kept whole.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from cryoneuro.analysis.tidy import TidyData, file_of
from cryoneuro.errors import InputError

STATUSES = ("screen_failed", "enrolled", "withdrawn", "lost_to_follow_up", "completed")
DESIGNS = ("rct", "case_series")
Duplicates = Literal["refuse", "drop_identical"]


@dataclass(frozen=True)
class Exclusion:
    """One deliberate exclusion or derivation, listed in the report."""

    table: str
    row: int | None
    participant_id: str
    rule: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Checked:
    """A data set that passed :func:`check`, and what the analysis leaves out and why."""

    data: TidyData
    exclusions: list[Exclusion] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            [e.to_dict() for e in self.exclusions],
            columns=["table", "row", "participant_id", "rule", "detail"],
        )


def _row(index_label: Any) -> int:
    # tables are read with a RangeIndex (tidy._coerce resets it): label 0 is spreadsheet row 2
    return int(index_label) + 2


def _where(data: TidyData, table: str, label: Any, column: str) -> str:
    return f"{file_of(data, table)}, row {_row(label)}, column {column}"


def _show(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 30 else text[:27] + "..."


# ----------------------------------------------------------------------- instrument ranges


def measure_range(instrument: str, measure: str) -> tuple[float, float] | None:
    """(min, max) of a numeric measure, from the instrument's own definition; None if not numeric.

    An item of the same name gives its range; otherwise the scorer's output for all items at
    their minimum and at their maximum (monotone scorers). ``max`` is ``inf`` when the scorer
    refuses the all-maximum answers (e.g. a product capped by a cross-item rule).
    """
    from cryoneuro.instruments import get_instrument

    inst = get_instrument(instrument)
    for item in inst.items:
        if item.name == measure and item.kind in ("integer", "number"):
            return (
                -math.inf if item.min is None else float(item.min),
                math.inf if item.max is None else float(item.max),
            )
    extremes = []
    for bound in ("min", "max"):
        answers = {
            it.name: getattr(it, bound)
            for it in inst.items
            if it.kind in ("integer", "number") and getattr(it, bound) is not None
        }
        try:
            value = inst.score(answers).get(measure)
        except InputError:
            value = None
        extremes.append(value)
    numeric = [
        float(v) for v in extremes if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    if not numeric:
        if any(isinstance(v, str) for v in extremes):
            return None  # a label such as the EQ-5D profile or a walking aid
        return None
    if len(numeric) == 1:
        return numeric[0], math.inf
    return min(numeric), max(numeric)


# ----------------------------------------------------------------------- checks


def _check_known(data: TidyData, column: str, known: tuple[str, ...] | None) -> None:
    """Every participant's arm (or site) is one the protocol declares, when declared."""
    if not known:
        return
    people = data.participants
    values = people[column].fillna("")
    active = people["status"].fillna("") != "screen_failed"
    bad = active & (values != "") & ~values.isin(known)
    if bad.any():
        label = people.index[bad][0]
        raise InputError(
            f"{_where(data, 'participants', label, column)}: '{_show(values[label])}'"
            f" is not one of the declared {column}s ({', '.join(known)}); correct "
            f"the value or the --{column}s list"
        )


def _check_participants(data: TidyData) -> None:
    people = data.participants
    for column, allowed in (("status", STATUSES), ("design", DESIGNS)):
        values = people[column]
        # exact words: the analysis compares them exactly ("Withdrawn" would not count)
        bad = values.notna() & ~values.fillna("").isin(allowed)
        if bad.any():
            label = people.index[bad][0]
            raise InputError(
                f"{_where(data, 'participants', label, column)}: "
                f"'{_show(values[label])}' is not one of {', '.join(allowed)}"
            )
    active = people["status"].fillna("") != "screen_failed"
    if data.design == "rct":
        no_arm = active & people["arm"].fillna("").eq("")
        if no_arm.any():
            label = people.index[no_arm][0]
            raise InputError(
                f"{_where(data, 'participants', label, 'arm')}: participant "
                f"'{people.loc[label, 'participant_id']}' of a randomised trial has "
                "no arm; give the allocated arm (or status screen_failed)"
            )
    if people["site"].fillna("").ne("").any():
        no_site = active & people["site"].fillna("").eq("")
        if no_site.any():
            label = people.index[no_site][0]
            raise InputError(
                f"{_where(data, 'participants', label, 'site')}: other participants "
                "have a site and this one has none; give every participant's site "
                "(it is a covariate of the mixed model)"
            )
    ids = data.procedures["procedure_id"]
    dup = ids.duplicated(keep="first")
    if dup.any():
        label = data.procedures.index[dup][0]
        raise InputError(
            f"{_where(data, 'procedures', label, 'procedure_id')}: '{ids[label]}' "
            "appears twice; each procedure needs its own id"
        )


def _duplicates(
    data: TidyData, table: str, keys: list[str], policy: Duplicates, exclusions: list[Exclusion]
) -> pd.DataFrame:
    frame = data.table(table)
    if frame.empty:
        return frame
    dup = frame.duplicated(subset=keys, keep=False)
    if not dup.any():
        return frame
    columns = [c for c in frame.columns]
    identical = frame.astype(str).duplicated(subset=columns, keep="first")
    conflicting = dup & ~frame.astype(str).duplicated(subset=columns, keep=False)
    if policy == "drop_identical" and not conflicting.any():
        for label in frame.index[identical]:
            exclusions.append(
                Exclusion(
                    table,
                    _row(label),
                    str(frame.loc[label, "participant_id"]),
                    "identical duplicate row dropped (--duplicates drop-identical)",
                    ", ".join(f"{k}={frame.loc[label, k]}" for k in keys),
                )
            )
        return frame[~identical]
    second = frame.index[frame.duplicated(subset=keys, keep="first")][0]
    key = frame.loc[second, keys]
    first = frame.index[(frame[keys] == key).all(axis=1)][0]
    what = ", ".join(f"{k} {key[k]}" for k in keys)
    hint = (
        "the rows differ, so one value has to be chosen by you"
        if conflicting.any()
        else "the rows are identical: delete one, or pass --duplicates drop-identical"
    )
    raise InputError(
        f"{_where(data, table, second, keys[-1])}: duplicates row {_row(first)} "
        f"({what}); one row per "
        + ("participant and visit" if table == "visits" else "participant, visit and measure")
        + f" — {hint}"
    )


def _first_procedure_date(data: TidyData) -> pd.Series:
    return data.procedures.groupby("participant_id")["procedure_date"].min()


def _days(
    data: TidyData,
    table: str,
    date_column: str,
    exclusions: list[Exclusion],
    required: pd.Series | None,
) -> pd.DataFrame:
    """Derive blank days from dates, check given days against dates, refuse where needed."""
    frame = data.table(table).copy()
    if frame.empty:
        return frame
    start = frame["participant_id"].map(_first_procedure_date(data))
    date = frame[date_column]
    derived = (date - start).dt.days
    days = frame["days_since_procedure"]
    both = days.notna() & derived.notna()
    mismatch = both & (days.astype("float") != derived.astype("float"))
    if mismatch.any():
        label = frame.index[mismatch][0]
        raise InputError(
            f"{_where(data, table, label, 'days_since_procedure')}: "
            f"{days[label]} disagrees with {date_column} {date[label].date()} − "
            f"procedure_date {start[label].date()} = {int(derived[label])} days; "
            "correct one of them"
        )
    fill = days.isna() & derived.notna()
    for label in frame.index[fill]:
        exclusions.append(
            Exclusion(
                table,
                _row(label),
                str(frame.loc[label, "participant_id"]),
                "days_since_procedure derived from the dates",
                f"{date_column} − first procedure_date = {int(derived[label])}",
            )
        )
    frame.loc[fill, "days_since_procedure"] = derived[fill].astype("Int64")
    if required is not None:
        missing = required & frame["days_since_procedure"].isna()
        if missing.any():
            label = frame.index[missing][0]
            raise InputError(
                f"{_where(data, table, label, 'days_since_procedure')}: empty, and "
                f"no {date_column} and procedure_date to derive it from; the "
                "time-to-event and longitudinal analyses need the day of every "
                "follow-up row"
            )
    return frame


def _check_timing(data: TidyData, table: str) -> None:
    frame = data.table(table)
    if frame.empty:
        return
    day = frame["days_since_procedure"].astype("Float64")
    base = frame["visit_code"] == "baseline"
    late = base & (day > 0).fillna(False)
    if late.any():
        label = frame.index[late][0]
        raise InputError(
            f"{_where(data, table, label, 'days_since_procedure')}: a baseline "
            f"dated day {int(day[label])}, after the procedure; baseline must be on "
            "or before day 0"
        )
    early = ~base & (day <= 0).fillna(False)
    if early.any():
        label = frame.index[early][0]
        raise InputError(
            f"{_where(data, table, label, 'days_since_procedure')}: visit "
            f"'{frame.loc[label, 'visit_code']}' is dated day {int(day[label])}; a "
            "follow-up must be after day 0 — code a pre-procedure assessment as "
            "'baseline' (one per participant) or correct the date"
        )


def _check_scores(data: TidyData) -> None:
    from cryoneuro.instruments import INSTRUMENTS
    from cryoneuro.instruments.base import check_item

    scores = data.scores
    if scores.empty:
        return
    unknown = ~scores["instrument"].isin(list(INSTRUMENTS))
    if unknown.any():
        label = scores.index[unknown][0]
        raise InputError(
            f"{_where(data, 'scores', label, 'instrument')}: "
            f"'{_show(scores.loc[label, 'instrument'])}' is not an instrument; use "
            f"one of {', '.join(INSTRUMENTS)}"
        )
    kinds = scores["kind"].str.lower()
    # one pass per (instrument, kind, measure): a few dozen groups, vectorised inside
    for (code, kind, measure), group in scores.groupby(
        [scores["instrument"], kinds, scores["measure"]], sort=False
    ):
        inst = INSTRUMENTS[code]
        values = group["value"]
        given = values.notna()
        if kind == "item":
            names = [it.name for it in inst.items]
            if measure not in names:
                raise InputError(
                    f"{_where(data, 'scores', group.index[0], 'measure')}: "
                    f"'{_show(measure)}' is not an item of {code}; items are "
                    f"{', '.join(names)}"
                )
            item = inst.item(measure)
            for value in pd.unique(values[given]):
                try:
                    # a text item is expanded by the instrument's own preparation first
                    # (EQ-5D-5L: a profile → its 5 items); other items are checked as they are
                    answers = (
                        inst.prepare(code, {measure: value})
                        if inst.prepare and item.kind == "text"
                        else {measure: value}
                    )
                    for name, answer in answers.items():
                        check_item(code, inst.item(name) if name != measure else item, answer)
                except InputError as exc:
                    label = group.index[(values == value).to_numpy()][0]
                    raise InputError(f"{_where(data, 'scores', label, 'value')}: {exc}") from None
            continue
        names = [m.name for m in inst.measures]
        if measure not in names:
            raise InputError(
                f"{_where(data, 'scores', group.index[0], 'measure')}: "
                f"'{_show(measure)}' is not a measure of {code}; measures are "
                f"{', '.join(names)}"
            )
        bounds = measure_range(code, measure)
        if bounds is None:
            continue
        numbers = pd.to_numeric(values.astype(str).str.strip().where(given), errors="coerce")
        bad = given & (numbers.isna() | ~np.isfinite(numbers.fillna(0.0)))
        if bad.any():
            label = group.index[bad.to_numpy()][0]
            raise InputError(
                f"{_where(data, 'scores', label, 'value')}: "
                f"'{_show(values[label])}' is not a number; {code}/{measure} is "
                "numeric — write digits (e.g. 7)"
            )
        lo, hi = bounds
        out = given & ((numbers < lo - 1e-9) | (numbers > hi + 1e-9))
        if out.any():
            label = group.index[out.to_numpy()][0]
            span = f"{lo:g} to {hi:g}" if math.isfinite(hi) else f"≥ {lo:g}"
            raise InputError(
                f"{_where(data, 'scores', label, 'value')}: {code}/{measure} = "
                f"{_show(values[label])} is outside its range {span}; correct the "
                "value"
            )


def check(
    data: TidyData,
    *,
    duplicates: Duplicates = "refuse",
    arms: tuple[str, ...] | None = None,
    sites: tuple[str, ...] | None = None,
) -> Checked:
    """Refuse what cannot be analysed; return the data (days derived) and the listed exclusions.

    ``arms`` and ``sites``, when given (the protocol's lists), must contain every participant's
    arm and site.
    """
    if duplicates not in ("refuse", "drop_identical"):
        raise InputError(f"--duplicates '{duplicates}': use refuse or drop-identical")
    exclusions: list[Exclusion] = []
    _check_participants(data)
    _check_known(data, "arm", arms)
    _check_known(data, "site", sites)
    visits = _duplicates(data, "visits", ["participant_id", "visit_code"], duplicates, exclusions)
    scores = _duplicates(
        data,
        "scores",
        ["participant_id", "visit_code", "instrument", "kind", "measure"],
        duplicates,
        exclusions,
    )
    data = replace(data, visits=visits, scores=scores)
    _check_scores(data)
    from cryoneuro.analysis import missing

    missing.check(data)
    exclusions += _unscored(data)
    followup = {t: data.table(t)["visit_code"] != "baseline" for t in ("visits", "scores")}
    data = replace(
        data,
        visits=_days(data, "visits", "visit_date", exclusions, followup["visits"]),
        scores=_days(data, "scores", "visit_date", exclusions, followup["scores"]),
        adverse_events=_days(data, "adverse_events", "onset_date", exclusions, None),
        reinterventions=_days(
            data,
            "reinterventions",
            "reintervention_date",
            exclusions,
            pd.Series(True, index=data.reinterventions.index),
        ),
    )
    for table in ("visits", "scores"):
        _check_timing(data, table)
    for table, column in (
        ("adverse_events", "days_since_procedure"),
        ("reinterventions", "days_since_procedure"),
    ):
        frame = data.table(table)
        before = (
            (frame[column].astype("Float64") < 0).fillna(False)
            if len(frame)
            else pd.Series(dtype=bool)
        )
        if before.any():
            label = frame.index[before][0]
            raise InputError(
                f"{_where(data, table, label, column)}: day {frame.loc[label, column]}"
                " is before the procedure; events of the study start at day 0"
            )
    exclusions += population_exclusions(data)
    return Checked(data, exclusions)


def _unscored(data: TidyData) -> list[Exclusion]:
    """Instruments left without a score because an item is coded missing (analysis/missing.py
    rule 3): those without score rows whose scorer refuses the items present."""
    from cryoneuro.instruments import score

    scores = data.scores
    kind = scores["kind"].str.lower()
    have = set(
        zip(
            scores.loc[kind == "score", "participant_id"],
            scores.loc[kind == "score", "visit_code"],
            scores.loc[kind == "score", "instrument"],
            strict=True,
        )
    )
    items = data.missing_items
    out: list[Exclusion] = []
    for (pid, visit, instrument), group in items.groupby(
        ["participant_id", "visit_code", "instrument"], sort=False
    ):
        if (pid, visit, instrument) in have:
            continue
        given = scores[
            (kind == "item")
            & (scores["participant_id"] == pid)
            & (scores["visit_code"] == visit)
            & (scores["instrument"] == instrument)
        ]
        try:
            score(instrument, dict(zip(given["measure"], given["value"], strict=True)))
            continue  # the instrument's own missing-data rule scores it
        except InputError:
            pass
        out.append(
            Exclusion(
                "missing_items",
                _row(group.index[0]),
                str(pid),
                "not scored: item(s) coded missing (a code is never a value)",
                f"{instrument} at {visit}: "
                + ", ".join(
                    f"{i}={c}" for i, c in zip(group["item"], group["missing_code"], strict=True)
                ),
            )
        )
    return out


# ----------------------------------------------------------------------- populations


def exposed_population(data: TidyData) -> tuple[pd.DataFrame, list[Exclusion]]:
    """participant_id and arm of the safety population, and who is left out (rule 6)."""
    people = data.participants[data.participants["status"].fillna("") != "screen_failed"]
    arm = people["arm"].fillna("").replace("", "all")
    frame = pd.DataFrame({"participant_id": people["participant_id"], "arm": arm})
    with_procedure = set(data.procedures["participant_id"])
    arms_recorded = set(frame.loc[frame["participant_id"].isin(with_procedure), "arm"])
    left_out = frame["arm"].isin(arms_recorded) & ~frame["participant_id"].isin(with_procedure)
    out = [
        Exclusion(
            "participants",
            _row(label),
            str(frame.loc[label, "participant_id"]),
            "no procedure recorded in an arm whose procedures are recorded: not "
            "exposed, excluded from safety",
            f"arm {frame.loc[label, 'arm']}",
        )
        for label in frame.index[left_out]
    ]
    return frame[~left_out].reset_index(drop=True), out


def population_exclusions(data: TidyData) -> list[Exclusion]:
    """Exclusions made by the analyses themselves (rule 6), for the report."""
    people, out = exposed_population(data)
    contact = pd.concat(
        [
            data.table(t)[["participant_id", "days_since_procedure"]]
            for t in ("visits", "scores", "adverse_events", "reinterventions")
        ]
    )
    last = contact.groupby("participant_id")["days_since_procedure"].max()
    index = data.participants.reset_index().set_index("participant_id")["index"]
    for pid in people["participant_id"]:
        if not (pid in last.index and pd.notna(last[pid]) and last[pid] > 0):
            out.append(
                Exclusion(
                    "participants",
                    _row(index[pid]),
                    str(pid),
                    "no contact after day 0: no time at risk, left out of time to re-intervention",
                )
            )
    from cryoneuro.analysis.outcomes import OUTCOMES

    scores = data.scores[data.scores["kind"].str.lower() == "score"]
    for code in ("pain", "pain_vas"):
        spec = OUTCOMES[code]
        rows = scores[
            (scores["instrument"] == spec.instrument)
            & (scores["measure"] == spec.measure)
            & scores["value"].notna()
        ]
        if rows.empty:
            continue
        has_base = set(rows.loc[rows["visit_code"] == "baseline", "participant_id"])
        for pid in sorted(set(rows["participant_id"]) - has_base):
            first = rows.index[rows["participant_id"] == pid][0]
            out.append(
                Exclusion(
                    "scores",
                    _row(first),
                    pid,
                    f"no baseline {spec.instrument}/{spec.measure}: excluded from "
                    "change, responder, recurrence and mixed-model analyses",
                )
            )
    return out


def as_records(exclusions: list[Exclusion]) -> list[dict[str, Any]]:
    return [e.to_dict() for e in exclusions]


__all__ = ["Checked", "Exclusion", "check", "exposed_population", "measure_range"]
