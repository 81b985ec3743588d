"""Data queries and visit status: JSON API and pages (issue 14).

Thin routes over services/queries.py and services/visit_status.py, where the role and site
rules live (monitors raise, close and re-open; site staff answer; nobody sees another site's
queries). JSON under ``/api`` (writes need the X-CSRF-Token header), pages beside them:

- ``/queries`` — open-query list, filtered by site, monitor and status (also ``/api/queries``);
- ``/queries/{id}`` — the thread, with the answer form (site) or close/re-open (monitor);
- ``/participants/{id}/status`` — visits not done, coded items, deviations and queries of one
  participant, with the forms that raise a query, mark a visit not done or record a deviation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.registry.auth import WRITE_ROLES, Actor
from cryoneuro.registry.errors import RegistryInputError
from cryoneuro.registry.models import DeviationCategory, NotDoneReason, Site, VisitDefinition
from cryoneuro.registry.services import participants, queries, visit_status
from cryoneuro.registry.services.queries import AnswerIn, CloseIn, QueryIn, ReopenIn
from cryoneuro.registry.services.visit_status import DeviationIn, RetractIn, VisitNotDoneIn
from cryoneuro.web.deps import ApiActor, FormDep, PageActor, SessionDep
from cryoneuro.web.forms import FormField, choices, fill, input_error, nest, validate
from cryoneuro.web.pages import form_page, participant_form_route, render

api = APIRouter(prefix="/api", tags=["queries and visit status"])
pages = APIRouter(include_in_schema=False)

Filter = Annotated[str | None, Query(max_length=80)]


# --- JSON API --------------------------------------------------------------------------------


@api.post("/queries", status_code=201)
def raise_query(body: QueryIn, session: SessionDep, actor: ApiActor) -> dict[str, Any]:
    """A monitor raises a query on one field of one record."""
    query = queries.raise_query(session, actor, body)
    session.commit()
    return queries.query_summary(session, query)


@api.get("/queries")
def list_queries(
    session: SessionDep,
    actor: ApiActor,
    status: Filter = None,
    site: Filter = None,
    raised_by: Filter = None,
) -> list[dict[str, Any]]:
    """Queries at your sites; ``status=open``, ``site=RBH``, ``raised_by=<monitor>`` filter."""
    return [
        queries.query_summary(session, q, steps=False)
        for q in queries.list_queries(
            session, actor, status=status, site_code=site, raised_by=raised_by
        )
    ]


@api.get("/queries/{query_id}")
def read_query(query_id: int, session: SessionDep, actor: ApiActor) -> dict[str, Any]:
    return queries.query_summary(session, queries.get_query(session, actor, query_id))


@api.post("/queries/{query_id}/answer")
def answer_query(
    query_id: int, body: AnswerIn, session: SessionDep, actor: ApiActor
) -> dict[str, Any]:
    """Site staff: ``{"kind": "correct", "value": …, "text": reason}`` or ``explain``."""
    query = queries.answer_query(session, actor, query_id, body)
    session.commit()
    return queries.query_summary(session, query)


@api.post("/queries/{query_id}/close")
def close_query(query_id: int, body: CloseIn, session: SessionDep, actor: ApiActor) -> dict:
    query = queries.close_query(session, actor, query_id, body.text)
    session.commit()
    return queries.query_summary(session, query)


@api.post("/queries/{query_id}/reopen")
def reopen_query(query_id: int, body: ReopenIn, session: SessionDep, actor: ApiActor) -> dict:
    query = queries.reopen_query(session, actor, query_id, body.text)
    session.commit()
    return queries.query_summary(session, query)


@api.post("/participants/{participant_id}/visits-not-done", status_code=201)
def mark_not_done(
    participant_id: int, body: VisitNotDoneIn, session: SessionDep, actor: ApiActor
) -> dict[str, Any]:
    """Record that a scheduled visit did not take place, with its reason."""
    row = visit_status.mark_not_done(session, actor, participant_id, body)
    session.commit()
    return {"id": row.id, "visit_code": row.visit_code, "reason": row.reason}


@api.post("/visits-not-done/{row_id}/retract")
def retract_not_done(row_id: int, body: RetractIn, session: SessionDep, actor: ApiActor) -> dict:
    visit_status.retract_not_done(session, actor, row_id, body.reason)
    session.commit()
    return {"ok": True}


@api.post("/participants/{participant_id}/deviations", status_code=201)
def record_deviation(
    participant_id: int, body: DeviationIn, session: SessionDep, actor: ApiActor
) -> dict[str, Any]:
    row = visit_status.record_deviation(session, actor, participant_id, body)
    session.commit()
    return {"id": row.id, "category": row.category}


@api.get("/participants/{participant_id}/visit-status")
def participant_status(participant_id: int, session: SessionDep, actor: ApiActor) -> dict:
    """Visits not done, coded missing items and deviations of one participant."""
    return visit_status.status_of(session, actor, participant_id)


# --- pages -----------------------------------------------------------------------------------


def _render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return render(request, name, status=status, **context)


@pages.get("/queries", response_class=HTMLResponse)
def queries_page(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    status: Filter = "open",
    site: Filter = None,
    raised_by: Filter = None,
) -> HTMLResponse:
    rows = queries.list_queries(
        session, actor, status=status or None, site_code=site or None, raised_by=raised_by or None
    )
    return _render(
        request,
        "queries.html",
        actor=actor,
        rows=[queries.query_summary(session, q, steps=False) for q in rows],
        status_filter=status or "",
        site=site or "",
        raised_by=raised_by or "",
        monitors=queries.monitors(session, actor),
        sites=_site_codes(session, actor),
    )


def _site_codes(session: Session, actor: Actor) -> list[str]:
    return [
        s.code
        for s in session.scalars(select(Site).order_by(Site.code))
        if actor.can_access_site(s.id)
    ]


@pages.api_route("/queries/{query_id}", methods=["GET", "POST"], response_class=HTMLResponse)
def query_page(
    query_id: int, request: Request, flat: FormDep, session: SessionDep, actor: PageActor
) -> Response:
    query = queries.get_query(session, actor, query_id)
    error = ""
    if request.method == "POST":
        action = flat.get("action", "")
        text = str(flat.get("text", ""))
        try:
            if action in ("correct", "explain"):
                body, errors = validate(
                    AnswerIn, {"kind": action, "text": text, "value": flat.get("value") or None}
                )
                if body is None:
                    raise RegistryInputError(next(iter(errors.values())), next(iter(errors)))
                queries.answer_query(session, actor, query.id, body)
            elif action == "close":
                queries.close_query(session, actor, query.id, text)
            elif action == "reopen":
                queries.reopen_query(session, actor, query.id, text)
            else:
                raise RegistryInputError("unknown action", "action")
            session.commit()
            return RedirectResponse(f"/queries/{query.id}", status_code=303)
        except RegistryInputError as exc:
            session.rollback()
            error = f"{exc.field}: {exc}" if exc.field else str(exc)
            query = queries.get_query(session, actor, query_id)
    return _render(
        request,
        "query.html",
        status=422 if error else 200,
        actor=actor,
        q=queries.query_summary(session, query),
        error=error,
        can_answer=actor.role in WRITE_ROLES,
        can_monitor=actor.role in queries.QUERY_ROLES,
    )


def _field_choices(session: Session, actor: Actor, participant_id: int) -> list[tuple[str, str]]:
    """Every queryable field of the participant's records, with its current value."""
    p = participants.get_participant(session, actor, participant_id)
    records: list[tuple[str, Any, str]] = [("participant", p, p.study_number)]
    records += [("neuroma", n, f"neuroma {n.id}") for n in p.neuromas]
    records += [("procedure", x, f"procedure {x.procedure_date}") for x in p.procedures]
    records += [("followup_visit", v, f"visit {v.visit_code}") for v in p.visits]
    records += [("adverse_event", e, f"adverse event {e.onset_date}") for e in p.adverse_events]
    out = []
    for record_type, row, label in records:
        for field in queries.queryable_fields(record_type):
            if field.startswith("answers."):
                instrument = field.split(".")[1]
                if instrument not in (row.answers or {}):
                    continue
            value = queries.current_value(session, record_type, row, field)
            out.append((f"{record_type}:{row.id}:{field}", f"{label} — {field} = {value}"))
    return out


@pages.api_route(
    "/participants/{participant_id}/status", methods=["GET", "POST"], response_class=HTMLResponse
)
def status_page(
    participant_id: int, request: Request, flat: FormDep, session: SessionDep, actor: PageActor
) -> Response:
    """One participant's absence records and queries; the monitor's raise-query form."""
    p = participants.get_participant(session, actor, participant_id)
    fields = [
        FormField("target", "Record and field", "select", _field_choices(session, actor, p.id)),
        FormField("text", "Question to the site", "textarea"),
    ]
    errors: dict[str, str] = {}
    if request.method == "POST":
        record_type, _, rest = str(flat.get("target", "")).partition(":")
        record_id, _, field = rest.partition(":")
        data, errors = validate(
            QueryIn,
            {
                "record_type": record_type,
                "record_id": record_id or 0,
                "field": field,
                "text": flat.get("text", ""),
            },
        )
        if data is not None:
            try:
                query = queries.raise_query(session, actor, data)
                session.commit()
                return RedirectResponse(f"/queries/{query.id}", status_code=303)
            except RegistryInputError as exc:
                session.rollback()
                errors = input_error(exc)
        errors = {
            ("target" if k in ("record_type", "record_id", "field") else k): v
            for k, v in errors.items()
        }
    general = fill(fields, flat, errors)
    return _render(
        request,
        "visit_status.html",
        status=422 if errors else 200,
        actor=actor,
        p=p,
        status_info=visit_status.status_of(session, actor, p.id),
        rows=[
            queries.query_summary(session, q, steps=False)
            for q in queries.list_queries(session, actor, participant_id=p.id)
        ],
        fields=fields,
        general=general,
        can_write=actor.role in WRITE_ROLES,
        can_raise=actor.role in queries.QUERY_ROLES,
    )


def _visit_choices(session: Session, study_id: int) -> list[tuple[str, str]]:
    return [
        (v.code, v.label)
        for v in session.scalars(
            select(VisitDefinition)
            .where(VisitDefinition.study_id == study_id)
            .order_by(VisitDefinition.day)
        )
    ]


def _not_done_fields(session: Session, study_id: int) -> list[FormField]:
    return [
        FormField("visit_code", "Visit", "select", _visit_choices(session, study_id)),
        FormField("reason", "Reason", "select", choices(NotDoneReason.codes())),
        FormField("reason_text", "Details", "textarea", required=False, hint="required for other"),
        FormField(
            "recorded_date",
            "Date established",
            "date",
            value=dt.date.today().isoformat(),
            hint="e.g. date of death or of the last contact attempt",
        ),
    ]


def _deviation_fields(session: Session, study_id: int) -> list[FormField]:
    return [
        FormField("deviation_date", "Date", "date", value=dt.date.today().isoformat()),
        FormField("category", "Category", "select", choices(DeviationCategory.codes())),
        FormField(
            "visit_code",
            "Visit concerned",
            "select",
            _visit_choices(session, study_id),
            required=False,
        ),
        FormField("description", "What happened", "textarea"),
    ]


def _simple_form(
    request: Request,
    flat: dict[str, Any],
    session: Session,
    actor: Actor,
    participant_id: int,
    *,
    title: str,
    fields: Callable[[Session, int], list[FormField]],
    schema: type,
    save: Any,
    submit: str,
) -> Response:
    p = participants.get_participant(session, actor, participant_id)
    actor.require_write(p.site_id)
    errors: dict[str, str] = {}
    if request.method == "POST":
        data, errors = validate(schema, nest(flat))
        if data is not None:
            try:
                save(session, actor, p.id, data)
                session.commit()
                return RedirectResponse(f"/participants/{p.id}/status", status_code=303)
            except RegistryInputError as exc:
                session.rollback()
                errors = input_error(exc)
    return form_page(
        request,
        actor,
        title=f"{title} — {p.study_number}",
        fields=fields(session, p.study_id),
        flat=flat,
        errors=errors,
        submit=submit,
    )


participant_form_route(
    pages,
    "/participants/{participant_id}/not-done",
    "not_done_page",
    partial(
        _simple_form,
        title="Visit not done",
        fields=_not_done_fields,
        schema=VisitNotDoneIn,
        save=visit_status.mark_not_done,
        submit="Record visit not done",
    ),
)
participant_form_route(
    pages,
    "/participants/{participant_id}/deviation",
    "deviation_page",
    partial(
        _simple_form,
        title="Protocol deviation",
        fields=_deviation_fields,
        schema=DeviationIn,
        save=visit_status.record_deviation,
        submit="Record deviation",
    ),
)
