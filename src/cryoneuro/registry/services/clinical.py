"""Procedures, follow-up visits, adverse events, re-interventions and edits with a reason."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.registry.audit import acting
from cryoneuro.registry.auth import Actor
from cryoneuro.registry.errors import ConflictError, NotFoundError, RegistryInputError
from cryoneuro.registry.models import (
    AdverseEvent,
    Base,
    FollowUpVisit,
    Neuroma,
    Participant,
    Procedure,
    Reintervention,
    Study,
    VisitDefinition,
)
from cryoneuro.registry.schemas import (
    PLAN_MAX_BYTES,
    AdverseEventIn,
    FollowUpIn,
    NeuromaIn,
    ProcedureIn,
    ReinterventionIn,
)
from cryoneuro.registry.services import visit_status
from cryoneuro.registry.services.participants import get_participant, valid_id


def _writable(session: Session, actor: Actor, participant_id: int) -> Participant:
    participant = get_participant(session, actor, participant_id)
    actor.require_write(participant.site_id)
    if participant.status == "withdrawn":
        raise RegistryInputError("participant has withdrawn: no new data", "participant_id")
    return participant


def _not_before_enrolment(participant: Participant, date: dt.date, field: str) -> None:
    if date < participant.enrolment_date:
        raise RegistryInputError("date is before enrolment", field)
    if date > dt.date.today() + dt.timedelta(days=1):
        raise RegistryInputError("date is in the future", field)


def record_procedure(
    session: Session, actor: Actor, participant_id: int, data: ProcedureIn
) -> Procedure:
    """Record a cryoablation with its device/lot and the stored Plan (JSON)."""
    participant = _writable(session, actor, participant_id)
    _not_before_enrolment(participant, data.procedure_date, "procedure_date")
    if data.neuroma_id is not None:
        neuroma = session.get(Neuroma, data.neuroma_id) if valid_id(data.neuroma_id) else None
        if neuroma is None or neuroma.participant_id != participant.id:
            raise RegistryInputError("no such neuroma for this participant", "neuroma_id")
    predicted = data.predicted_relief_days
    if data.plan is not None:
        if len(json.dumps(data.plan)) > PLAN_MAX_BYTES:
            raise RegistryInputError("plan is larger than 2 MB", "plan")
        if predicted is None:  # the plan's median relief, as for plan bundles
            relief = data.plan.get("relief") or {}
            value = relief.get("median_days") if isinstance(relief, dict) else None
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and 0 <= value <= 3650
            ):
                predicted = float(value)
    procedure = Procedure(
        participant_id=participant.id,
        **data.model_dump(mode="json", exclude={"predicted_relief_days", "procedure_date"}),
        procedure_date=data.procedure_date,
        predicted_relief_days=predicted,
    )
    with acting(session, actor):
        session.add(procedure)
    return procedure


def record_followup(
    session: Session, actor: Actor, participant_id: int, data: FollowUpIn
) -> FollowUpVisit:
    """Validate instrument answers (422 naming the item), score them, store both."""
    participant = _writable(session, actor, participant_id)
    _not_before_enrolment(participant, data.visit_date, "visit_date")
    definition = session.scalar(
        select(VisitDefinition).where(
            VisitDefinition.study_id == participant.study_id,
            VisitDefinition.code == data.visit_code,
        )
    )
    if definition is None:
        raise RegistryInputError(f"unknown visit '{data.visit_code}' in this study", "visit_code")
    if session.scalar(
        select(FollowUpVisit.id).where(
            FollowUpVisit.participant_id == participant.id,
            FollowUpVisit.visit_code == data.visit_code,
        )
    ):
        raise ConflictError(f"visit {data.visit_code} is already recorded: edit it instead")
    visit_status.refuse_if_not_done(session, participant.id, data.visit_code)
    missing = visit_status.clean_missing(data.missing)
    answers = visit_status.validate_with_missing(data.answers, missing)
    if not answers and not missing:
        raise RegistryInputError("at least one instrument must be answered", "answers")
    visit = FollowUpVisit(
        participant_id=participant.id,
        visit_code=data.visit_code,
        visit_date=data.visit_date,
        answers=answers,
        scores=visit_status.score_with_missing(answers, missing),
    )
    with acting(session, actor):
        session.add(visit)
        session.flush()
        visit_status.sync_missing(session, visit, missing, new=True)
    return visit


def report_adverse_event(
    session: Session, actor: Actor, participant_id: int, data: AdverseEventIn
) -> AdverseEvent:
    participant = _writable(session, actor, participant_id)
    _not_before_enrolment(participant, data.onset_date, "onset_date")
    if data.procedure_id is not None:
        procedure = (
            session.get(Procedure, data.procedure_id) if valid_id(data.procedure_id) else None
        )
        if procedure is None or procedure.participant_id != participant.id:
            raise RegistryInputError("no such procedure for this participant", "procedure_id")
    event = AdverseEvent(
        participant_id=participant.id,
        **data.model_dump(mode="json", exclude={"onset_date"}),
        onset_date=data.onset_date,
    )
    with acting(session, actor):
        session.add(event)
    return event


def record_reintervention(
    session: Session, actor: Actor, participant_id: int, data: ReinterventionIn
) -> Reintervention:
    participant = _writable(session, actor, participant_id)
    _not_before_enrolment(participant, data.reintervention_date, "reintervention_date")
    row = Reintervention(
        participant_id=participant.id,
        kind=data.kind.value,
        description=data.description,
        reintervention_date=data.reintervention_date,
    )
    with acting(session, actor):
        session.add(row)
    return row


EDITABLE: dict[str, tuple[type[Base], frozenset[str]]] = {
    "adverse_event": (
        AdverseEvent,
        frozenset(
            {
                "outcome",
                "severity",
                "serious",
                "relatedness",
                "description",
                "category",
                "device_incident",
                "onset_date",
            }
        ),
    ),
    "procedure": (
        Procedure,
        frozenset(
            {
                "device_lot",
                "protocol",
                "operator",
                "probe_model",
                "predicted_relief_days",
                "procedure_date",
                "imaging_modality",
                "anaesthesia",
                "device_name",
                "manufacturer",
                "gas",
            }
        ),
    ),
    "neuroma": (
        Neuroma,
        frozenset({"anatomical_site", "laterality", "size_mm", "neuroma_type", "prior_treatments"}),
    ),
    "followup_visit": (FollowUpVisit, frozenset({"visit_date", "answers"})),
}
#: Date fields that must stay between enrolment and tomorrow when edited.
_DATES = {"procedure_date", "onset_date", "visit_date"}


def edit_record(
    session: Session, actor: Actor, table: str, row_id: int, changes: dict[str, Any], reason: str
) -> Base:
    """Change listed fields of one record; the reason goes into the audit trail."""
    if table not in EDITABLE:
        raise RegistryInputError(f"records of '{table[:40]}' cannot be edited here", "table")
    if table == "followup_visit":
        return edit_followup(session, actor, row_id, changes, reason)
    model, allowed = EDITABLE[table]
    row = session.get(model, row_id) if valid_id(row_id) else None
    if row is None:
        raise NotFoundError(f"no {table} with id {row_id}")
    participant = get_participant(session, actor, row.participant_id)  # type: ignore[attr-defined]
    actor.require_write(participant.site_id)
    if not reason or len(reason.strip()) < 3:
        raise RegistryInputError("a reason for change is required", "reason")
    for key in changes:
        if key not in allowed:
            raise RegistryInputError(f"field '{key[:40]}' cannot be edited", f"changes.{key[:40]}")
    # Re-validate through the input schema by merging into the current values.
    schema = {
        "adverse_event": AdverseEventIn,
        "procedure": ProcedureIn,
        "neuroma": NeuromaIn,
    }[table]
    current = {k: getattr(row, k) for k in schema.model_fields if hasattr(row, k)}
    try:
        merged = schema.model_validate({**current, **changes})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise RegistryInputError(err["msg"], "changes." + ".".join(map(str, err["loc"]))) from None
    for key in changes:
        if key in _DATES:
            _not_before_enrolment(participant, getattr(merged, key), f"changes.{key}")
    with acting(session, actor, reason=reason.strip()):
        for key in changes:
            value = getattr(merged, key)
            setattr(row, key, value.value if hasattr(value, "value") else value)
    return row


def edit_followup(
    session: Session, actor: Actor, visit_id: int, changes: dict[str, Any], reason: str
) -> FollowUpVisit:
    """Correct a visit's date and/or answers; answers are re-validated and re-scored.

    ``changes["answers"]`` replaces the visit's answers as a whole (instrument → items), so a
    correction that drops an item or instrument is possible; the audit entry keeps the old
    answers and scores.
    """
    visit = session.get(FollowUpVisit, visit_id) if valid_id(visit_id) else None
    if visit is None:
        raise NotFoundError(f"no followup_visit with id {visit_id}")
    participant = get_participant(session, actor, visit.participant_id)
    actor.require_write(participant.site_id)
    if not reason or len(reason.strip()) < 3:
        raise RegistryInputError("a reason for change is required", "reason")
    for key in changes:  # ``missing``: the visit's coded items (services/visit_status.py)
        if key not in EDITABLE["followup_visit"][1] | {"missing"}:
            raise RegistryInputError(f"field '{key[:40]}' cannot be edited", f"changes.{key[:40]}")
    visit_date = visit.visit_date
    if "visit_date" in changes:
        raw = changes["visit_date"]
        try:
            visit_date = raw if isinstance(raw, dt.date) else dt.date.fromisoformat(str(raw)[:20])
        except ValueError:
            raise RegistryInputError("not a date (YYYY-MM-DD)", "changes.visit_date") from None
        _not_before_enrolment(participant, visit_date, "changes.visit_date")
    answers, scores = visit.answers, visit.scores
    old_missing = visit_status.missing_of(session, visit.id)
    missing = old_missing
    if "answers" in changes or "missing" in changes:
        raw_answers = changes.get("answers", visit.answers)
        if not isinstance(raw_answers, dict) or len(raw_answers) > 20:
            raise RegistryInputError("answers must map instruments to items", "changes.answers")
        if "missing" in changes:
            if not isinstance(changes["missing"], dict) or len(changes["missing"]) > 20:
                raise RegistryInputError("missing must map instruments to items", "changes.missing")
            missing = visit_status.clean_missing(changes["missing"])
        else:  # a value supplied for a coded item replaces its missing code
            missing = visit_status.drop_answered(old_missing, raw_answers)
        answers = visit_status.validate_with_missing(raw_answers, missing)
        if not answers and not missing:
            raise RegistryInputError("at least one instrument must be answered", "answers")
        scores = visit_status.score_with_missing(answers, missing)
    with acting(session, actor, reason=reason.strip()):
        visit.visit_date = visit_date
        if answers != visit.answers or scores != visit.scores:
            visit.answers = answers
            visit.scores = scores
        if missing != old_missing:
            visit_status.sync_missing(session, visit, missing)
    return visit


def study_of(session: Session, participant: Participant) -> Study:
    study = session.get(Study, participant.study_id)
    assert study is not None
    return study
