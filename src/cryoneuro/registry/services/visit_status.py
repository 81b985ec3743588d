"""Visits not done, item-level missing codes and protocol deviations (issue 14).

Why: a registry that stores only what was collected leaves silent gaps — the analysis cannot
tell a participant who died from one whose form was never typed in, nor a declined question
from a skipped one. CONSORT asks for the reasons ("lost to follow-up (give reasons)"), and a
declined EQ-5D item must never become a value. So:

* a scheduled visit that did not happen is recorded as *not done* with a reason
  (:class:`~cryoneuro.registry.models.NotDoneReason`); the visit cannot then also be entered
  until the record is retracted (with a reason, audited);
* an item without a value at a visit that did happen carries a missing code (HL7 FHIR
  DataAbsentReason, :class:`~cryoneuro.registry.models.MissingCode`). Coded items are stored
  in ``missing_item``, never in the visit's answers. An instrument with a coded item is scored
  only if its own scorer accepts the items present (its published missing-data rule, e.g.
  MOXFQ); otherwise it has no score — never a score computed from a code;
* protocol deviations are recorded by category.

All three travel in the tidy export (``visits_not_done``, ``missing_items``, ``deviations``) so
``cryoneuro analyse`` reports them. Site staff (write roles) record them; monitors read them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.registry.audit import acting
from cryoneuro.registry.auth import Actor
from cryoneuro.registry.errors import ConflictError, NotFoundError, RegistryInputError
from cryoneuro.registry.instruments_bridge import (
    ITEM_SPECS,
    Answer,
    placeholder,
    score_answers,
    validate_answers,
)
from cryoneuro.registry.models import (
    DeviationCategory,
    FollowUpVisit,
    MissingCode,
    MissingItem,
    NotDoneReason,
    Participant,
    ProtocolDeviation,
    VisitDefinition,
    VisitNotDone,
)
from cryoneuro.registry.schemas import ClinicalDate, Code, LongText, Reason, Strict
from cryoneuro.registry.services.participants import get_participant, valid_id

#: instrument → item → missing code
Missing = dict[str, dict[str, str]]


class VisitNotDoneIn(Strict):
    visit_code: Code
    reason: NotDoneReason
    #: Required when the reason is ``other``.
    reason_text: LongText = ""
    #: When the site established it (date of death, last contact attempt, …).
    recorded_date: ClinicalDate


class RetractIn(Strict):
    reason: Reason


class DeviationIn(Strict):
    deviation_date: ClinicalDate
    category: DeviationCategory
    visit_code: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)] = ""
    description: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=3, max_length=5000)
    ]


MissingIn = Annotated[dict[Code, dict[Code, str] | str], Field(max_length=20)]


# --- missing codes ---------------------------------------------------------------------------


def clean_missing(missing: dict[str, Any] | None) -> Missing:
    """``{instrument: {item: code}}`` (or ``{instrument: code}`` for every item) checked against
    the instruments and the code list; 422 naming ``missing.<instrument>[.<item>]``."""
    out: Missing = {}
    for instrument, entry in (missing or {}).items():
        spec = ITEM_SPECS.get(instrument)
        if spec is None:
            raise RegistryInputError(
                f"unknown instrument '{str(instrument)[:40]}'", f"missing.{str(instrument)[:40]}"
            )
        items = dict.fromkeys(spec, entry) if isinstance(entry, str) else entry
        if not isinstance(items, dict):
            raise RegistryInputError("give item → missing code", f"missing.{instrument}")
        for item, code in items.items():
            where = f"missing.{instrument}.{str(item)[:40]}"
            if item not in spec:
                raise RegistryInputError(f"unknown item '{str(item)[:40]}' for {instrument}", where)
            if code not in MissingCode.codes():
                raise RegistryInputError(
                    f"'{str(code)[:40]}' is not a missing code; use one of "
                    f"{', '.join(MissingCode.codes())}",
                    where,
                )
            out.setdefault(instrument, {})[item] = code
    return out


def validate_with_missing(
    answers: dict[str, dict[str, Any]], missing: Missing
) -> dict[str, dict[str, Answer]]:
    """Clean answers where coded items may be absent; an item cannot be both answered and coded.

    Items present are range-checked by :func:`validate_answers` (the same check as every entry
    path). A required item that is coded is absent from the answers; for the check of the others
    a placeholder (a value the item accepts: its minimum) stands in for it and is removed
    again — it never reaches the stored answers or a scorer.
    """
    clean: dict[str, dict[str, Answer]] = {}
    for instrument in sorted(set(answers) | set(missing)):
        items = answers.get(instrument) or {}
        coded = missing.get(instrument, {})
        if not isinstance(items, dict):
            raise RegistryInputError("answers must be an object of items", f"answers.{instrument}")
        for item in coded:
            if items.get(item) not in (None, ""):
                raise RegistryInputError(
                    f"{item} has both a value and the missing code '{coded[item]}': give one",
                    f"missing.{instrument}.{item}",
                )
        spec = ITEM_SPECS.get(instrument)
        if spec is None:  # unknown instrument: let the normal check name it
            clean.update(validate_answers({instrument: items}))
            continue
        given = {k: v for k, v in items.items() if v not in (None, "")}
        if not given and coded:
            continue  # every item coded: nothing to store for this instrument
        placeholders = {k: placeholder(spec[k]) for k in coded if spec[k].required}
        checked = validate_answers({instrument: {**given, **placeholders}})[instrument]
        clean[instrument] = {k: v for k, v in checked.items() if k not in coded}
    return clean


def score_with_missing(answers: dict[str, dict[str, Answer]], missing: Missing) -> dict[str, Any]:
    """Scores of complete instruments; an instrument with coded items is scored only when its
    scorer accepts the items present, and otherwise left without a score."""
    complete = {k: v for k, v in answers.items() if k not in missing}
    scores = score_answers(complete)
    for instrument, items in answers.items():
        if instrument in missing and items:
            try:
                scores.update(score_answers({instrument: items}))
            except RegistryInputError:
                continue  # the instrument's rule needs the coded item: no score
    return scores


def drop_answered(missing: Missing, answers: dict[str, Any]) -> Missing:
    """``missing`` without the items ``answers`` now give a value for."""
    out: Missing = {}
    for instrument, items in missing.items():
        given = answers.get(instrument)
        given = given if isinstance(given, dict) else {}
        kept = {k: c for k, c in items.items() if given.get(k) in (None, "")}
        if kept:
            out[instrument] = kept
    return out


def missing_of(session: Session, visit_id: int) -> Missing:
    out: Missing = {}
    for row in session.scalars(
        select(MissingItem).where(MissingItem.visit_id == visit_id).order_by(MissingItem.id)
    ):
        out.setdefault(row.instrument, {})[row.item] = row.code
    return out


def sync_missing(
    session: Session, visit: FollowUpVisit, missing: Missing, *, new: bool = False
) -> None:
    """Make the visit's ``missing_item`` rows equal ``missing`` (inside the caller's ``acting``:
    additions, code changes and removals are audited with its reason). ``new``: the visit was
    inserted in this transaction, so it has no rows yet (no query for them)."""
    existing = (
        {}
        if new
        else {
            (r.instrument, r.item): r
            for r in session.scalars(select(MissingItem).where(MissingItem.visit_id == visit.id))
        }
    )
    wanted = {(i, k): c for i, items in missing.items() for k, c in items.items()}
    for key, row in existing.items():
        if key not in wanted:
            session.delete(row)
        elif row.code != wanted[key]:
            row.code = wanted[key]
    for (instrument, item), code in wanted.items():
        if (instrument, item) not in existing:
            session.add(
                MissingItem(
                    visit_id=visit.id,
                    participant_id=visit.participant_id,
                    instrument=instrument,
                    item=item,
                    code=code,
                )
            )


# --- visits not done -------------------------------------------------------------------------


def _writable(session: Session, actor: Actor, participant_id: int) -> Participant:
    participant = get_participant(session, actor, participant_id)
    actor.require_write(participant.site_id)
    return participant


def refuse_if_not_done(session: Session, participant_id: int, visit_code: str) -> None:
    """409 when the visit is recorded as not done (retract that record first)."""
    if session.scalar(
        select(VisitNotDone.id).where(
            VisitNotDone.participant_id == participant_id, VisitNotDone.visit_code == visit_code
        )
    ):
        raise ConflictError(
            f"visit {visit_code} is recorded as not done: retract that record (with a reason) "
            "before entering the visit"
        )


def mark_not_done(
    session: Session, actor: Actor, participant_id: int, data: VisitNotDoneIn
) -> VisitNotDone:
    """Record that a scheduled visit did not take place, and why (write roles, own site).

    Allowed after withdrawal too: "withdrew" is exactly the reason a later visit is missing.
    """
    participant = _writable(session, actor, participant_id)
    if not session.scalar(
        select(VisitDefinition.id).where(
            VisitDefinition.study_id == participant.study_id,
            VisitDefinition.code == data.visit_code,
        )
    ):
        raise RegistryInputError(f"unknown visit '{data.visit_code}' in this study", "visit_code")
    if data.recorded_date < participant.enrolment_date:
        raise RegistryInputError("date is before enrolment", "recorded_date")
    if data.reason == NotDoneReason.other and len(data.reason_text) < 3:
        raise RegistryInputError("say why (reason 'other' needs a text)", "reason_text")
    if session.scalar(
        select(FollowUpVisit.id).where(
            FollowUpVisit.participant_id == participant.id,
            FollowUpVisit.visit_code == data.visit_code,
        )
    ):
        raise ConflictError(f"visit {data.visit_code} has been entered: it was done")
    if session.scalar(
        select(VisitNotDone.id).where(
            VisitNotDone.participant_id == participant.id,
            VisitNotDone.visit_code == data.visit_code,
        )
    ):
        raise ConflictError(f"visit {data.visit_code} is already recorded as not done")
    row = VisitNotDone(
        participant_id=participant.id,
        visit_code=data.visit_code,
        reason=data.reason.value,
        reason_text=data.reason_text,
        recorded_date=data.recorded_date,
    )
    with acting(session, actor):
        session.add(row)
    return row


def retract_not_done(session: Session, actor: Actor, row_id: int, reason: str) -> None:
    """Delete a not-done record (e.g. the participant came after all); audited with a reason."""
    row = session.get(VisitNotDone, row_id) if valid_id(row_id) else None
    if row is None:
        raise NotFoundError(f"no visit_not_done with id {row_id}")
    _writable(session, actor, row.participant_id)
    if len(reason.strip()) < 3:
        raise RegistryInputError("a reason for change is required", "reason")
    with acting(session, actor, reason=reason.strip()):
        session.delete(row)


# --- protocol deviations ---------------------------------------------------------------------


def record_deviation(
    session: Session, actor: Actor, participant_id: int, data: DeviationIn
) -> ProtocolDeviation:
    participant = _writable(session, actor, participant_id)
    if data.deviation_date < participant.enrolment_date and data.category != "eligibility":
        raise RegistryInputError("date is before enrolment", "deviation_date")
    if data.visit_code and not session.scalar(
        select(VisitDefinition.id).where(
            VisitDefinition.study_id == participant.study_id,
            VisitDefinition.code == data.visit_code,
        )
    ):
        raise RegistryInputError(f"unknown visit '{data.visit_code}' in this study", "visit_code")
    row = ProtocolDeviation(
        participant_id=participant.id,
        deviation_date=data.deviation_date,
        category=data.category.value,
        visit_code=data.visit_code,
        description=data.description,
    )
    with acting(session, actor):
        session.add(row)
    return row


# --- reading ---------------------------------------------------------------------------------


def status_of(session: Session, actor: Actor, participant_id: int) -> dict[str, Any]:
    """A participant's visits not done, coded missing items and deviations (JSON-ready)."""
    participant = get_participant(session, actor, participant_id)
    visits = {v.id: v.visit_code for v in participant.visits}
    return {
        "participant_id": participant.id,
        "study_number": participant.study_number,
        "visits_not_done": [
            {
                "id": r.id,
                "visit_code": r.visit_code,
                "reason": r.reason,
                "reason_text": r.reason_text,
                "recorded_date": r.recorded_date.isoformat(),
            }
            for r in session.scalars(
                select(VisitNotDone)
                .where(VisitNotDone.participant_id == participant.id)
                .order_by(VisitNotDone.id)
            )
        ],
        "missing_items": [
            {
                "visit_id": r.visit_id,
                "visit_code": visits.get(r.visit_id, ""),
                "instrument": r.instrument,
                "item": r.item,
                "code": r.code,
            }
            for r in session.scalars(
                select(MissingItem)
                .where(MissingItem.participant_id == participant.id)
                .order_by(MissingItem.id)
            )
        ],
        "deviations": [
            {
                "id": r.id,
                "deviation_date": r.deviation_date.isoformat(),
                "category": r.category,
                "visit_code": r.visit_code,
                "description": r.description,
            }
            for r in session.scalars(
                select(ProtocolDeviation)
                .where(ProtocolDeviation.participant_id == participant.id)
                .order_by(ProtocolDeviation.id)
            )
        ],
    }


def tidy_rows(
    session: Session, participant: Participant, pid: str, day0: dt.date | None
) -> dict[str, list[dict[str, Any]]]:
    """The participant's rows of the tidy tables visits_not_done, missing_items, deviations."""
    visits = {v.id: v for v in participant.visits}
    not_done = session.scalars(
        select(VisitNotDone)
        .where(VisitNotDone.participant_id == participant.id)
        .order_by(VisitNotDone.id)
    )
    missing = session.scalars(
        select(MissingItem)
        .where(MissingItem.participant_id == participant.id)
        .order_by(MissingItem.id)
    )
    deviations = session.scalars(
        select(ProtocolDeviation)
        .where(ProtocolDeviation.participant_id == participant.id)
        .order_by(ProtocolDeviation.id)
    )
    return {
        "visits_not_done": [
            {
                "participant_id": pid,
                "visit_code": r.visit_code,
                "reason": r.reason,
                "reason_text": r.reason_text,
                "recorded_date": r.recorded_date,
            }
            for r in not_done
        ],
        "missing_items": [
            {
                "participant_id": pid,
                "visit_code": visits[r.visit_id].visit_code,
                "instrument": r.instrument,
                "item": r.item,
                "missing_code": r.code,
            }
            for r in missing
            if r.visit_id in visits
        ],
        "deviations": [
            {
                "participant_id": pid,
                "deviation_id": r.id,
                "deviation_date": r.deviation_date,
                "days_since_procedure": (r.deviation_date - day0).days if day0 else None,
                "category": r.category,
                "visit_code": r.visit_code,
                "description": r.description,
            }
            for r in deviations
        ],
    }
