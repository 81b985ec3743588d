"""Data queries: a monitor questions one field of one record; the site corrects or explains.

Why: source data verification (ICH E6(R3)) finds values that look wrong; without a query
workflow the monitor's only tools are e-mail and the audit trail. Here:

1. a monitor (or administrator) raises a query on ``record_type``/``record_id``/``field``; the
   value at that moment is kept with it (``value_at_raise``);
2. site staff at the participant's site (write roles) answer either by **correcting** the value
   — through the registry's own edit path (:func:`cryoneuro.registry.services.clinical.
   edit_record`), so instrument ranges and the input schemas are enforced exactly as for any
   edit, with the answer text as the mandatory reason for change — or by **explaining** it;
3. the monitor closes the query, or re-opens it with a further question.

Every step is a row of ``data_query_step`` (the thread site staff can read) and, through the
audited session (audit.py), audit entries with old and new values: the query's status change,
the step, and — for a correction — the record's field itself. Monitors never change study data:
the correction is the site's (least privilege; ``auth.WRITE_ROLES``). Another site's staff see
neither the query nor its participant (404, as for participants).

Participant fields: ``sex`` and ``age_at_enrolment_years`` are corrected through the enrolment
schema's own rules for those fields (the registry has no other participant edit);
``enrolment_date`` can be queried and answered by explanation only, since moving it would move
the eligibility and visit windows built on it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from pydantic import StringConstraints, ValidationError, create_model
from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.registry.audit import acting
from cryoneuro.registry.auth import Actor
from cryoneuro.registry.errors import ConflictError, NotFoundError, RegistryInputError
from cryoneuro.registry.instruments_bridge import ITEM_SPECS
from cryoneuro.registry.models import (
    AdverseEvent,
    Base,
    DataQuery,
    DataQueryStep,
    FollowUpVisit,
    Neuroma,
    Participant,
    Procedure,
    QueryStatus,
    Role,
    Site,
    utcnow,
)
from cryoneuro.registry.schemas import EnrolmentIn, Id, Strict
from cryoneuro.registry.services import clinical
from cryoneuro.registry.services.participants import get_participant, valid_id
from cryoneuro.registry.services.visit_status import missing_of

#: Roles that raise, close and re-open queries (monitoring, not data entry).
QUERY_ROLES = frozenset({Role.monitor, Role.administrator})

QueryText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=2000)]

MODELS: dict[str, type[Base]] = {
    "participant": Participant,
    "neuroma": Neuroma,
    "procedure": Procedure,
    "followup_visit": FollowUpVisit,
    "adverse_event": AdverseEvent,
}
#: Participant fields a query may concern, and those a site may correct in answer.
PARTICIPANT_FIELDS = ("sex", "age_at_enrolment_years", "enrolment_date")
PARTICIPANT_CORRECTABLE = frozenset({"sex", "age_at_enrolment_years"})


class QueryIn(Strict):
    record_type: Literal["participant", "neuroma", "procedure", "followup_visit", "adverse_event"]
    record_id: Id
    field: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    text: QueryText


class AnswerIn(Strict):
    """``correct`` with the new ``value`` (the text is the reason for change) or ``explain``."""

    kind: Literal["correct", "explain"]
    text: QueryText
    value: Any = None


class CloseIn(Strict):
    text: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] = ""


class ReopenIn(Strict):
    text: QueryText


def queryable_fields(record_type: str) -> list[str]:
    """The fields of a record type a query may name (those the registry can show and edit)."""
    if record_type == "participant":
        return list(PARTICIPANT_FIELDS)
    if record_type == "followup_visit":
        return ["visit_date"] + [
            f"answers.{instrument}.{item}"
            for instrument, items in ITEM_SPECS.items()
            for item in items
        ]
    return sorted(clinical.EDITABLE[record_type][1])


def _json(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | dict | str | int | float | bool) or value is None:
        return value
    return str(value)


def _record(session: Session, record_type: str, record_id: int) -> Base:
    model = MODELS.get(record_type)
    row = session.get(model, record_id) if model is not None and valid_id(record_id) else None
    if row is None:
        raise NotFoundError(f"no {record_type[:30]} with id {record_id}")
    return row


def _participant_of(session: Session, actor: Actor, row: Base) -> Participant:
    pid = row.id if isinstance(row, Participant) else row.participant_id  # type: ignore[attr-defined]
    return get_participant(session, actor, pid)


def current_value(session: Session, record_type: str, row: Base, field: str) -> Any:
    """The field's value now (JSON-ready); a coded follow-up item reads ``{"missing": code}``."""
    if field.startswith("answers."):
        _, instrument, item = field.split(".", 2)
        value = (row.answers or {}).get(instrument, {}).get(item)  # type: ignore[attr-defined]
        if value is None:
            code = missing_of(session, row.id).get(instrument, {}).get(item)  # type: ignore[attr-defined]
            return {"missing": code} if code else None
        return value
    return _json(getattr(row, field))


def _step(
    session: Session, query: DataQuery, actor: Actor, action: str, text: str, old: Any, new: Any
) -> DataQueryStep:
    step = DataQueryStep(
        query_id=query.id,
        site_id=query.site_id,
        action=action,
        text=text,
        old_value=old,
        new_value=new,
        user_id=actor.user_id,
        username=actor.username,
        occurred_at=utcnow(),
    )
    session.add(step)
    return step


def raise_query(session: Session, actor: Actor, data: QueryIn) -> DataQuery:
    """A monitor's query on one field; 409 if an unresolved query on that field exists."""
    actor.require(QUERY_ROLES, "raise data queries")
    row = _record(session, data.record_type, data.record_id)
    participant = _participant_of(session, actor, row)
    if data.field not in queryable_fields(data.record_type):
        raise RegistryInputError(
            f"'{data.field[:60]}' is not a field of {data.record_type} a query can concern",
            "field",
        )
    existing = session.scalar(
        select(DataQuery.id).where(
            DataQuery.record_type == data.record_type,
            DataQuery.record_id == row.id,  # type: ignore[attr-defined]
            DataQuery.field == data.field,
            DataQuery.status != QueryStatus.closed.value,
        )
    )
    if existing:
        raise ConflictError(f"query {existing} on this field is not closed yet: add to it instead")
    value = current_value(session, data.record_type, row, data.field)
    query = DataQuery(
        participant_id=participant.id,
        site_id=participant.site_id,
        record_type=data.record_type,
        record_id=row.id,  # type: ignore[attr-defined]
        field=data.field,
        value_at_raise=value,
        text=data.text,
        status=QueryStatus.open.value,
        raised_by_id=actor.user_id,
        raised_by=actor.username,
        updated_at=utcnow(),
    )
    with acting(session, actor):
        session.add(query)
        session.flush()
        _step(session, query, actor, "raise", data.text, value, value)
    return query


def get_query(session: Session, actor: Actor, query_id: int) -> DataQuery:
    """The query if its participant is at one of the actor's sites (404 otherwise)."""
    query = session.get(DataQuery, query_id) if valid_id(query_id) else None
    if query is None or not actor.can_access_site(query.site_id):
        raise NotFoundError(f"no query {query_id} at your sites")
    return query


def _set_status(session: Session, actor: Actor, query: DataQuery, status: str, reason: str) -> None:
    with acting(session, actor, reason=reason):
        query.status = status
        query.updated_at = utcnow()


def _correct(
    session: Session, actor: Actor, query: DataQuery, row: Base, value: Any, reason: str
) -> None:
    """Change the queried field through the registry's validated edit path."""
    field = query.field
    if query.record_type == "participant":
        _correct_participant(session, actor, row, field, value, reason)  # type: ignore[arg-type]
        return
    if query.record_type == "followup_visit" and field.startswith("answers."):
        _, instrument, item = field.split(".", 2)
        answers = {k: dict(v) for k, v in (row.answers or {}).items()}  # type: ignore[attr-defined]
        answers.setdefault(instrument, {})[item] = value
        changes: dict[str, Any] = {"answers": answers}
    else:
        changes = {field: value}
    try:
        clinical.edit_record(session, actor, query.record_type, query.record_id, changes, reason)
    except RegistryInputError as exc:
        where = (exc.field or "").removeprefix("changes.")
        # the queried field is named as the query names it (answers.nrs.pain, size_mm, …)
        raise RegistryInputError(str(exc), where or field) from None


def _correct_participant(
    session: Session, actor: Actor, participant: Participant, field: str, value: Any, reason: str
) -> None:
    if field not in PARTICIPANT_CORRECTABLE:
        raise RegistryInputError(
            f"{field} cannot be corrected here: answer with an explanation "
            "(an administrator can re-enrol if it is wrong)",
            field,
        )
    actor.require_write(participant.site_id)
    info = EnrolmentIn.model_fields[field]
    check = create_model(
        "ParticipantCorrection", __base__=Strict, **{field: (info.annotation, info)}
    )
    try:
        clean = getattr(check.model_validate({field: value}), field)
    except ValidationError as exc:
        raise RegistryInputError(str(exc.errors()[0]["msg"]), field) from None
    if field == "age_at_enrolment_years":
        adult = next(
            (e.answer for e in participant.eligibility if e.criterion_code == "adult"), None
        )
        if adult is not None and adult != (clean >= 18):
            raise RegistryInputError(
                f"'18 or over' was answered {'yes' if adult else 'no'} at screening; "
                f"an age of {clean} contradicts it",
                field,
            )
    with acting(session, actor, reason=reason):
        setattr(participant, field, clean.value if hasattr(clean, "value") else clean)


def answer_query(session: Session, actor: Actor, query_id: int, data: AnswerIn) -> DataQuery:
    """Site staff answer an open query: correct the value (validated, audited) or explain."""
    query = get_query(session, actor, query_id)
    actor.require_write(query.site_id)  # monitors and statisticians: 403
    if query.status != QueryStatus.open.value:
        raise ConflictError(f"query {query.id} is {query.status}: only an open query is answered")
    row = _record(session, query.record_type, query.record_id)
    old = current_value(session, query.record_type, row, query.field)
    reason = f"query {query.id}: {data.text}"
    if data.kind == "correct":
        if data.value is None or data.value == "":
            raise RegistryInputError("give the corrected value", "value")
        _correct(session, actor, query, row, data.value, reason)
        session.flush()
        session.refresh(row)
    new = current_value(session, query.record_type, row, query.field)
    if data.kind == "correct" and new == old:
        raise RegistryInputError(
            "the corrected value equals the current one: explain instead", "value"
        )
    with acting(session, actor, reason=reason):
        _step(session, query, actor, data.kind, data.text, old, new)
    _set_status(session, actor, query, QueryStatus.answered.value, reason)
    return query


def close_query(session: Session, actor: Actor, query_id: int, text: str = "") -> DataQuery:
    """The monitor accepts the answer (or withdraws an open query)."""
    query = get_query(session, actor, query_id)
    actor.require(QUERY_ROLES, "close data queries")
    if query.status == QueryStatus.closed.value:
        raise ConflictError(f"query {query.id} is already closed")
    if query.status == QueryStatus.open.value and len(text.strip()) < 3:
        raise RegistryInputError("closing an unanswered query needs a note saying why", "text")
    value = current_value(
        session,
        query.record_type,
        _record(session, query.record_type, query.record_id),
        query.field,
    )
    reason = f"query {query.id} closed" + (f": {text.strip()}" if text.strip() else "")
    with acting(session, actor, reason=reason):
        _step(session, query, actor, "close", text.strip(), value, value)
    _set_status(session, actor, query, QueryStatus.closed.value, reason)
    return query


def reopen_query(session: Session, actor: Actor, query_id: int, text: str) -> DataQuery:
    """The monitor is not satisfied: the query is open again, with a further question."""
    query = get_query(session, actor, query_id)
    actor.require(QUERY_ROLES, "re-open data queries")
    if query.status == QueryStatus.open.value:
        raise ConflictError(f"query {query.id} is already open")
    if len(text.strip()) < 3:
        raise RegistryInputError("say why the query is re-opened", "text")
    value = current_value(
        session,
        query.record_type,
        _record(session, query.record_type, query.record_id),
        query.field,
    )
    reason = f"query {query.id} re-opened: {text.strip()}"
    with acting(session, actor, reason=reason):
        _step(session, query, actor, "reopen", text.strip(), value, value)
    _set_status(session, actor, query, QueryStatus.open.value, reason)
    return query


def list_queries(
    session: Session,
    actor: Actor,
    *,
    status: str | None = None,
    site_code: str | None = None,
    raised_by: str | None = None,
    participant_id: int | None = None,
) -> list[DataQuery]:
    """Queries at the actor's sites, newest first; filter by status, site, monitor, participant."""
    query = select(DataQuery).order_by(DataQuery.id.desc())
    if not actor.all_sites:
        query = query.where(DataQuery.site_id.in_(sorted(actor.site_ids) or [-1]))
    if status:
        if status not in QueryStatus.codes():
            raise RegistryInputError(
                f"status '{status[:20]}': use {', '.join(QueryStatus.codes())}", "status"
            )
        query = query.where(DataQuery.status == status)
    if site_code:
        site = session.scalar(select(Site).where(Site.code == site_code))
        if site is None or not actor.can_access_site(site.id):
            raise NotFoundError(f"no site {site_code[:20]} among your sites")
        query = query.where(DataQuery.site_id == site.id)
    if raised_by:
        query = query.where(DataQuery.raised_by == raised_by)
    if participant_id is not None:
        query = query.where(DataQuery.participant_id == participant_id)
    return list(session.scalars(query.limit(5000)))


def query_summary(session: Session, query: DataQuery, steps: bool = True) -> dict[str, Any]:
    participant = session.get(Participant, query.participant_id)
    site = session.get(Site, query.site_id)
    result: dict[str, Any] = {
        "id": query.id,
        "participant_id": query.participant_id,
        "study_number": participant.study_number if participant else "",
        "site": site.code if site else "",
        "record_type": query.record_type,
        "record_id": query.record_id,
        "field": query.field,
        "value_at_raise": query.value_at_raise,
        "text": query.text,
        "status": query.status,
        "raised_by": query.raised_by,
        "raised_at": query.created_at.isoformat() if query.created_at else None,
        "updated_at": query.updated_at.isoformat() if query.updated_at else None,
    }
    if steps:
        result["steps"] = [
            {
                "action": s.action,
                "text": s.text,
                "old_value": s.old_value,
                "new_value": s.new_value,
                "username": s.username,
                "occurred_at": s.occurred_at.isoformat(),
            }
            for s in query.steps
        ]
    return result


#: Columns of the ``queries`` table of the export bundle (one row per query).
QUERY_COLUMNS = [
    "query_id",
    "participant_id",
    "site",
    "record_type",
    "record_id",
    "field",
    "value_at_raise",
    "text",
    "status",
    "raised_by",
    "raised_at",
    "answer_kind",
    "answer_text",
    "old_value",
    "new_value",
    "answered_by",
    "answered_at",
    "closed_by",
    "closed_at",
    "times_reopened",
]


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value)


def query_rows(session: Session, actor: Actor) -> list[dict[str, Any]]:
    """One row per query at the actor's sites (the export's ``queries`` table): the latest
    answer and closure, and how often it was re-opened."""
    rows = []
    sites = {s.id: s.code for s in session.scalars(select(Site))}
    numbers = dict(session.execute(select(Participant.id, Participant.study_number)).all())
    for query in sorted(list_queries(session, actor), key=lambda q: q.id):
        answer = next(
            (s for s in reversed(query.steps) if s.action in ("correct", "explain")), None
        )
        closed = next((s for s in reversed(query.steps) if s.action == "close"), None)
        rows.append(
            {
                "query_id": query.id,
                "participant_id": numbers.get(query.participant_id, ""),
                "site": sites.get(query.site_id, ""),
                "record_type": query.record_type,
                "record_id": query.record_id,
                "field": query.field,
                "value_at_raise": _text(query.value_at_raise),
                "text": query.text,
                "status": query.status,
                "raised_by": query.raised_by,
                "raised_at": query.created_at.isoformat() if query.created_at else "",
                "answer_kind": answer.action if answer else "",
                "answer_text": answer.text if answer else "",
                "old_value": _text(answer.old_value) if answer else "",
                "new_value": _text(answer.new_value) if answer else "",
                "answered_by": answer.username if answer else "",
                "answered_at": answer.occurred_at.isoformat() if answer else "",
                "closed_by": closed.username if closed and query.status == "closed" else "",
                "closed_at": closed.occurred_at.isoformat()
                if closed and query.status == "closed"
                else "",
                "times_reopened": sum(s.action == "reopen" for s in query.steps),
            }
        )
    return rows


def monitors(session: Session, actor: Actor) -> list[str]:
    """User names that raised queries visible to the actor (the per-monitor filter's choices)."""
    return sorted({q.raised_by for q in list_queries(session, actor)})
