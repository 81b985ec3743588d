"""Why data are absent: visits not done, items coded missing, protocol deviations (issue 14).

Why: a gap in the follow-up is not all alike. CONSORT 2025 asks for the numbers lost to
follow-up and discontinued *with reasons* in the flow diagram, and an analysis that cannot tell
"died" from "form never entered" from "declined the question" either guesses or hides it. The
tidy format therefore carries three optional tables (docs/tidy-format.md):

* ``visits_not_done`` — a scheduled visit that did not take place, with its reason
  (lost_to_follow_up, withdrew, died, unable, other);
* ``missing_items`` — an item without a value at a visit that did take place, with an HL7 FHIR
  DataAbsentReason code (not-asked, asked-declined, asked-unknown, not-applicable, unknown);
* ``deviations`` — protocol deviations by category.

Rules (applied by :func:`check`, called from :func:`cryoneuro.analysis.validate.check`):

1. A visit is either done (rows in ``visits``/``scores``) or not done, never both; one
   not-done row per participant and visit; ``other`` needs a ``reason_text``.
2. A missing item belongs to a visit that took place, names an item of a known instrument, and
   has no value in ``scores`` (a code is never a value).
3. An instrument with a coded item and no score rows is re-scored only if its own scorer accepts
   the items present (its published missing-data rule); otherwise it has no score, and the
   report lists it ("not scored: item(s) coded missing"). The code is never scored as a value.

:func:`flow_reasons` gives the CONSORT flow, per arm, the participants whose primary visit was
not done (by reason), whose primary outcome item was coded missing (by code), and — kept
apart, not silently folded in — those without a primary value and without any recorded reason
(participants withdrawn or lost by ``participants.status`` are counted apart: the flow already
shows them with their ``status_reason``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from cryoneuro.analysis.tidy import TidyData, file_of
from cryoneuro.errors import InputError

NO_REASON = "no reason recorded"


def _where(data: TidyData, table: str, label: Any, column: str) -> str:
    return f"{file_of(data, table)}, row {int(label) + 2}, column {column}"


def check(data: TidyData) -> None:
    """Refuse contradictory absence records (rules 1 and 2); see the module docstring."""
    from cryoneuro.instruments import INSTRUMENTS

    not_done = data.visits_not_done
    done = set(zip(data.visits["participant_id"], data.visits["visit_code"], strict=True)) | set(
        zip(data.scores["participant_id"], data.scores["visit_code"], strict=True)
    )
    keys = list(zip(not_done["participant_id"], not_done["visit_code"], strict=True))
    seen: set[tuple[str, str]] = set()
    for label, key, reason, text in zip(
        not_done.index, keys, not_done["reason"], not_done["reason_text"].fillna(""), strict=True
    ):
        if key in seen:
            raise InputError(
                f"{_where(data, 'visits_not_done', label, 'visit_code')}: visit {key[1]} of "
                f"{key[0]} is listed as not done twice; keep one row"
            )
        seen.add(key)
        if key in done:
            raise InputError(
                f"{_where(data, 'visits_not_done', label, 'visit_code')}: visit {key[1]} of "
                f"{key[0]} is marked not done but has visit or score rows; it is one or the "
                "other — correct either table"
            )
        if reason == "other" and len(str(text).strip()) < 3:
            raise InputError(
                f"{_where(data, 'visits_not_done', label, 'reason_text')}: reason 'other' "
                "needs a reason_text saying why"
            )
    items = data.missing_items
    valued = data.scores[(data.scores["kind"].str.lower() == "item") & data.scores["value"].notna()]
    answered = set(
        zip(
            valued["participant_id"],
            valued["visit_code"],
            valued["instrument"],
            valued["measure"],
            strict=True,
        )
    )
    for label, pid, visit, instrument, item in zip(
        items.index,
        items["participant_id"],
        items["visit_code"],
        items["instrument"],
        items["item"],
        strict=True,
    ):
        if (pid, visit) not in done:
            raise InputError(
                f"{_where(data, 'missing_items', label, 'visit_code')}: {pid} has no visit "
                f"{visit} in visits or scores; a missing code belongs to a visit that took "
                "place (a visit that did not goes in visits_not_done)"
            )
        inst = INSTRUMENTS.get(instrument)
        if inst is None or item not in {it.name for it in inst.items}:
            raise InputError(
                f"{_where(data, 'missing_items', label, 'item')}: '{instrument}/{item}' is "
                "not an item of a known instrument"
            )
        if (pid, visit, instrument, item) in answered:
            raise InputError(
                f"{_where(data, 'missing_items', label, 'item')}: {instrument}/{item} of {pid} "
                f"at {visit} has both a value in scores and a missing code; give one"
            )


def coded_instruments(data: TidyData) -> set[tuple[str, str, str]]:
    """(participant, visit, instrument) with at least one item coded missing."""
    items = data.missing_items
    return set(zip(items["participant_id"], items["visit_code"], items["instrument"], strict=True))


def _people(data: TidyData) -> pd.DataFrame:
    people = data.participants[data.participants["status"].fillna("") != "screen_failed"]
    return pd.DataFrame(
        {
            "participant_id": people["participant_id"],
            "arm": people["arm"].fillna("").replace("", "all"),
        }
    )


def flow_reasons(
    data: TidyData, primary_visit: str | None, instrument: str, with_value: set[str]
) -> dict[str, dict[str, Any]]:
    """Per arm: why participants have no primary-visit value for ``instrument``.

    ``with_value``: participants who have the primary outcome value at the primary visit.
    Returns ``{arm: {"primary_not_done": n, "primary_not_done_reasons": {reason: n},
    "primary_item_missing": n, "primary_item_missing_codes": {code: n},
    "primary_by_status": {status: n}, "primary_no_reason": n,
    "visits_not_done": {reason: number of visits}}}``. Each participant without a value is
    counted once, in this order: visit not done, item coded missing, participant withdrawn or
    lost to follow-up (``participants.status``, shown in the flow's own box), no reason.
    """
    people = _people(data)
    status_of = dict(
        zip(
            data.participants["participant_id"],
            data.participants["status"].fillna("enrolled"),
            strict=True,
        )
    )
    not_done = data.visits_not_done
    at_primary = not_done[not_done["visit_code"] == primary_visit]
    reason_of = dict(zip(at_primary["participant_id"], at_primary["reason"], strict=True))
    items = data.missing_items
    coded = items[(items["visit_code"] == primary_visit) & (items["instrument"] == instrument)]
    # one code per participant: the first coded item of the outcome's instrument
    code_of = dict(zip(coded["participant_id"][::-1], coded["missing_code"][::-1], strict=True))
    out: dict[str, dict[str, Any]] = {}
    for arm, group in people.groupby("arm"):
        ids = [p for p in group["participant_id"] if p not in with_value]
        reasons = pd.Series([reason_of[p] for p in ids if p in reason_of], dtype=object)
        codes = pd.Series(
            [code_of[p] for p in ids if p not in reason_of and p in code_of], dtype=object
        )
        # withdrawn or lost by status: already in the flow's own boxes, with status_reason
        by_status = pd.Series(
            [
                status_of[p]
                for p in ids
                if p not in reason_of
                and p not in code_of
                and status_of.get(p) in ("withdrawn", "lost_to_follow_up")
            ],
            dtype=object,
        )
        arm_ids = set(group["participant_id"])
        all_not_done = not_done[not_done["participant_id"].isin(arm_ids)]["reason"]
        out[str(arm)] = {
            "primary_not_done": len(reasons),
            "primary_not_done_reasons": {str(k): int(v) for k, v in reasons.value_counts().items()},
            "primary_item_missing": len(codes),
            "primary_item_missing_codes": {str(k): int(v) for k, v in codes.value_counts().items()},
            "primary_by_status": {str(k): int(v) for k, v in by_status.value_counts().items()},
            "primary_no_reason": len(ids) - len(reasons) - len(codes) - len(by_status),
            "visits_not_done": {str(k): int(v) for k, v in all_not_done.value_counts().items()},
        }
    return out


def not_done_table(data: TidyData) -> pd.DataFrame:
    """Visits not done: visit × reason × arm, number of participants."""
    frame = data.visits_not_done.merge(_people(data), on="participant_id", how="inner")
    if frame.empty:
        return pd.DataFrame(columns=["visit", "reason", "arm", "participants"])
    table = (
        frame.groupby(["visit_code", "reason", "arm"]).size().rename("participants").reset_index()
    )
    return table.rename(columns={"visit_code": "visit"})


def missing_items_table(data: TidyData) -> pd.DataFrame:
    """Items coded missing: instrument × item × code, number of visits."""
    items = data.missing_items
    if items.empty:
        return pd.DataFrame(columns=["instrument", "item", "missing_code", "visits"])
    return (
        items.groupby(["instrument", "item", "missing_code"]).size().rename("visits").reset_index()
    )


def deviations_table(data: TidyData) -> pd.DataFrame:
    """Protocol deviations: category × arm, number of deviations and of participants."""
    frame = data.deviations.merge(_people(data), on="participant_id", how="inner")
    if frame.empty:
        return pd.DataFrame(columns=["category", "arm", "deviations", "participants"])
    return (
        frame.groupby(["category", "arm"])
        .agg(deviations=("participant_id", "size"), participants=("participant_id", "nunique"))
        .reset_index()
    )
