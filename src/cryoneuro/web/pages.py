"""Server-rendered pages: login, dashboard, enrol, participant, procedure, follow-up,
adverse event (with the Yellow Card-ready summary), audit and exports.

Every form carries the session's CSRF token; every POST checks it before doing anything.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from cryoneuro.registry import audit
from cryoneuro.registry.auth import (
    EXPORT_ROLES,
    WRITE_ROLES,
    Actor,
    LoginRateLimitedError,
    authenticate,
)
from cryoneuro.registry.errors import AuthenticationError, RegistryInputError
from cryoneuro.registry.exports.tidy import TABLES
from cryoneuro.registry.services import clinical, participants
from cryoneuro.registry.services.allocation import randomise
from cryoneuro.registry.services.dashboard import dashboard_page
from cryoneuro.registry.services.yellow_card import yellow_card_summary, yellow_card_text
from cryoneuro.web import charts, page_forms
from cryoneuro.web.deps import (
    FormDep,
    PageActor,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    csrf_token,
    end_session,
    start_session,
)
from cryoneuro.web.forms import FormField, fill, input_error, nest, validate

router = APIRouter(include_in_schema=False)
HERE = Path(__file__).parent  # this package; not imported from app.py, which imports pages
templates = Jinja2Templates(directory=HERE / "templates")


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("actor", None)
    context["csrf_token"] = csrf_token(request)
    return templates.TemplateResponse(request, name, context, status_code=status)


def form_page(
    request: Request,
    actor: Actor,
    *,
    title: str,
    fields: list[FormField],
    flat: dict[str, Any],
    errors: dict[str, str],
    submit: str,
    action: str | None = None,
) -> HTMLResponse:
    """The one form page every data-entry route shows: 422 while errors remain, else 200."""
    general = fill(fields, flat, errors)
    return render(
        request,
        "form.html",
        status=422 if errors else 200,
        actor=actor,
        title=title,
        fields=fields,
        general=general,
        action=str(request.url.path) if action is None else action,
        submit=submit,
    )


def error_page(request: Request, status: int, message: str, field: str | None) -> HTMLResponse:
    return render(
        request, "error.html", status=status, status_code=status, message=message, field=field
    )


def client_ip(request: Request) -> str:
    """The peer address (behind a proxy, configure uvicorn's --forwarded-allow-ips)."""
    return request.client.host if request.client else "unknown"


def limited_authenticate(request: Request, session: Session, username: str, password: str):
    """:func:`authenticate` behind the app's login rate limiter (429 after N failures)."""
    limiter = request.app.state.login_limiter
    ip = client_ip(request)
    limiter.check(username, ip)
    try:
        user = authenticate(session, username, password)
    except AuthenticationError:
        limiter.failure(username, ip)
        audit.log_event(
            session, None, "login-fail", table="app_user", details={"ip": ip}, username=username
        )
        raise
    limiter.success(username, ip)
    audit.log_event(
        session,
        Actor.from_user(user),
        "login",
        table="app_user",
        row_id=str(user.id),
        details={"ip": ip},
    )
    return user


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return render(request, "login.html", error="")


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, data: FormDep, session: ReadSessionDep) -> Response:
    username = data.get("username", "")[:80]
    try:
        user = limited_authenticate(request, session, username, data.get("password", "")[:200])
    except LoginRateLimitedError as exc:
        response = render(request, "login.html", status=429, error=str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except AuthenticationError as exc:
        return render(request, "login.html", status=401, error=str(exc))
    start_session(request, user, keep_csrf=True)
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
def logout(request: Request, data: FormDep) -> Response:
    end_session(request)
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_class=HTMLResponse)
def home(
    request: Request, session: SessionDep, actor: PageActor, page: Annotated[int, Query(ge=1)] = 1
) -> HTMLResponse:
    board, outcomes = dashboard_page(session, actor)  # cached (services/dashboard.py)
    size = participants.PAGE_SIZE  # a page of the list, not thousands of rows (issue 17)
    # the board's participant count is the list's total (the same participants: the actor's
    # sites), so the page needs no COUNT of its own
    total = board["totals"]["participants"]
    rows, _ = participants.participant_rows(
        session, actor, limit=size, offset=(page - 1) * size, total=total
    )
    return render(
        request,
        "dashboard.html",
        actor=actor,
        board=board,
        participants=rows,
        pages={"page": page, "of": max(1, -(-total // size)), "total": total},
        can_write=actor.role in WRITE_ROLES,
        outcomes=outcomes,
        charts=charts,
    )


@router.api_route("/enrol", methods=["GET", "POST"], response_class=HTMLResponse)
def enrol(
    request: Request, flat: FormDep, session: SessionDep, settings: SettingsDep, actor: PageActor
) -> Response:
    actor.require(WRITE_ROLES, "enrol participants")
    study_code = flat.get("study_code") or request.query_params.get("study", "")
    fields, study_code = page_forms.enrolment_fields(
        session, actor, study_code[:40], refuse_unknown=not flat.get("study_code")
    )
    errors: dict[str, str] = {}
    if request.method == "POST":
        data, errors = validate(page_forms.EnrolmentIn, nest(flat, {"consented"}))
        if data is not None:
            try:
                participant = participants.enrol(session, settings, actor, data)
                session.commit()
                return RedirectResponse(f"/participants/{participant.id}", status_code=303)
            except RegistryInputError as exc:
                errors = input_error(exc)
    return form_page(
        request,
        actor,
        title=f"Enrol a participant ({study_code})",
        fields=fields,
        flat=flat,
        errors=errors,
        submit="Enrol",
        action=f"/enrol?study={study_code}",
    )


@router.get("/participants/{participant_id}", response_class=HTMLResponse)
def participant_page(
    participant_id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    actor: PageActor,
) -> HTMLResponse:
    p = participants.get_participant(session, actor, participant_id)
    study = clinical.study_of(session, p)
    summary = participants.participant_summary(session, settings, actor, p)
    return render(
        request,
        "participant.html",
        actor=actor,
        p=p,
        study=study,
        summary=summary,
        arm=summary["arm_code"],
        can_write=actor.role in WRITE_ROLES,
    )


@router.post("/participants/{participant_id}/randomise")
def randomise_page(
    participant_id: int,
    request: Request,
    flat: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    actor: PageActor,
) -> Response:
    randomise(session, settings, actor, participant_id)
    session.commit()
    return RedirectResponse(f"/participants/{participant_id}", status_code=303)


def _clinical_form(
    request: Request,
    flat: dict[str, Any],
    session: Session,
    actor: Actor,
    participant_id: int,
    kind: str,
) -> Response:
    p = participants.get_participant(session, actor, participant_id)
    actor.require_write(p.site_id)
    spec = page_forms.CLINICAL_FORMS[kind]
    errors: dict[str, str] = {}
    if request.method == "POST":
        prepared_errors: dict[str, str] = {}
        prepared = spec.prepare(nest(flat, spec.checkboxes), prepared_errors)
        data, errors = validate(spec.schema, prepared)
        errors = {**errors, **prepared_errors}
        if data is not None and not errors:
            try:
                row = spec.save(session, actor, p.id, data)
                session.commit()
                return RedirectResponse(spec.next_url(p, row), status_code=303)
            except RegistryInputError as exc:
                errors = input_error(exc)
    return form_page(
        request,
        actor,
        title=f"{spec.title} — {p.study_number}",
        # built only for a page to show: a saved form redirects without them
        fields=spec.fields(session, p, flat),
        flat=flat,
        errors=errors,
        submit=spec.submit,
    )


def participant_form_route(
    target: APIRouter, path: str, name: str, form: Callable[..., Response]
) -> None:
    """Register a GET/POST participant form page; such routes differ only in path and form."""

    def page(
        participant_id: int, request: Request, flat: FormDep, session: SessionDep, actor: PageActor
    ) -> Response:
        return form(request, flat, session, actor, participant_id)

    target.add_api_route(
        path, page, methods=["GET", "POST"], response_class=HTMLResponse, name=name
    )


for _path, _kind in (
    ("/participants/{participant_id}/procedure", "procedure"),
    ("/participants/{participant_id}/followup", "followup"),
    ("/participants/{participant_id}/adverse-event", "adverse_event"),
    ("/participants/{participant_id}/reintervention", "reintervention"),
):
    participant_form_route(router, _path, f"{_kind}_page", partial(_clinical_form, kind=_kind))


@router.get("/adverse-events/{event_id}", response_class=HTMLResponse)
def adverse_event_summary(
    event_id: int, request: Request, session: SessionDep, actor: PageActor
) -> HTMLResponse:
    summary = yellow_card_summary(session, actor, event_id)
    return render(
        request, "yellow_card.html", actor=actor, summary=summary, text=yellow_card_text(summary)
    )


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, session: SessionDep, actor: PageActor) -> HTMLResponse:
    entries = audit.list_audit(session, actor, limit=500)
    return render(request, "audit.html", actor=actor, entries=entries, dumps=json.dumps)


@router.get("/exports", response_class=HTMLResponse)
def exports_page(request: Request, actor: PageActor) -> HTMLResponse:
    actor.require(EXPORT_ROLES, "export data")
    return render(
        request, "exports.html", actor=actor, tables=list(TABLES), today=dt.date.today().isoformat()
    )
