"""JSON API (OpenAPI at /docs): thin routes over the registry services.

Every route depends on :func:`api_actor` (login + CSRF header for writes) except login; role
and site checks are in the services, so the API and the pages cannot disagree.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response
from pydantic import StringConstraints

from cryoneuro.registry import audit
from cryoneuro.registry.auth import EXPORT_ROLES, RESET_MAX_AGE_S
from cryoneuro.registry.errors import NotFoundError
from cryoneuro.registry.exports import deidentified, fhir, redcap, tidy
from cryoneuro.registry.schemas import (
    AdverseEventIn,
    EditIn,
    EnrolmentIn,
    FollowUpIn,
    LoginIn,
    ProcedureIn,
    ReinterventionIn,
    Strict,
    WithdrawalIn,
)
from cryoneuro.registry.services import accounts, clinical, participants, plan_files
from cryoneuro.registry.services.allocation import emergency_unblind, randomise
from cryoneuro.registry.services.dashboard import dashboard, outcome_summary
from cryoneuro.registry.services.yellow_card import yellow_card_summary
from cryoneuro.web.account_pages import reset_url
from cryoneuro.web.deps import (
    ApiActor,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    csrf_token,
    end_session,
    start_session,
)
from cryoneuro.web.pages import limited_authenticate
from cryoneuro.web.procedure_pages import file_response

router = APIRouter(prefix="/api", tags=["registry"])


class WithdrawalPatchIn(WithdrawalIn):
    """PATCH /api/participants/{id}: the only status change allowed is withdrawal."""

    status: Literal["withdrawn"]


MAX_ID = 2**31 - 1


def _id(value: int, field: str = "participant_id") -> int:
    if not 0 < value <= MAX_ID:
        raise NotFoundError(f"no record with {field} {value}")
    return value


@router.post("/login")
def login(body: LoginIn, request: Request, session: ReadSessionDep) -> dict:
    """Start a session; returns the CSRF token to send as X-CSRF-Token on writes."""
    user = limited_authenticate(request, session, body.username, body.password)
    start_session(request, user, keep_csrf=False)
    return {"username": user.username, "role": user.role, "csrf_token": csrf_token(request)}


@router.post("/logout")
def logout(request: Request, actor: ApiActor) -> dict:
    """End the session on the server (the cookie alone no longer works)."""
    end_session(request)
    return {"ok": True}


@router.get("/participants")
def list_all(
    response: Response,
    session: SessionDep,
    actor: ApiActor,
    limit: Annotated[int | None, Query(ge=1, le=participants.PAGE_MAX)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list:
    """Participants at the actor's sites in id order; ``limit``/``offset`` page the list (all
    of it without ``limit``). The header ``X-Total-Count`` says how many there are."""
    rows, total = participants.participant_rows(session, actor, limit=limit, offset=offset)
    response.headers["X-Total-Count"] = str(total)
    return [
        {"id": r.id, "study_number": r.study_number, "status": r.status, "site_id": r.site_id}
        for r in rows
    ]


@router.post("/participants", status_code=201)
def enrol(body: EnrolmentIn, session: SessionDep, settings: SettingsDep, actor: ApiActor) -> dict:
    participant = participants.enrol(session, settings, actor, body)
    session.commit()
    return {"id": participant.id, "study_number": participant.study_number}


@router.get("/participants/{participant_id}")
def read(participant_id: int, session: SessionDep, settings: SettingsDep, actor: ApiActor) -> dict:
    participant = participants.get_participant(session, actor, _id(participant_id))
    return participants.participant_summary(session, settings, actor, participant)


@router.post("/participants/{participant_id}/randomise")
def randomise_participant(
    participant_id: int, session: SessionDep, settings: SettingsDep, actor: ApiActor
) -> dict:
    arm = randomise(session, settings, actor, _id(participant_id))
    session.commit()
    return {"participant_id": participant_id, "arm_code": arm}


class UnblindIn(Strict):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=1000)]


@router.post("/participants/{participant_id}/unblind")
def unblind(participant_id: int, body: UnblindIn, session: SessionDep, actor: ApiActor) -> dict:
    """Emergency unblinding of one participant (clinical reason required; audited)."""
    arm = emergency_unblind(session, actor, _id(participant_id), body.reason)
    session.commit()
    return {"participant_id": participant_id, "arm_code": arm}


@router.post("/participants/{participant_id}/withdraw")
def withdraw(participant_id: int, body: WithdrawalIn, session: SessionDep, actor: ApiActor) -> dict:
    participant = participants.withdraw(
        session, actor, _id(participant_id), body.withdrawal_date, body.reason
    )
    session.commit()
    return {"id": participant.id, "status": participant.status}


@router.post("/participants/{participant_id}/procedures", status_code=201)
def add_procedure(
    participant_id: int, body: ProcedureIn, session: SessionDep, actor: ApiActor
) -> dict:
    row = clinical.record_procedure(session, actor, _id(participant_id), body)
    session.commit()
    return {"id": row.id, "predicted_relief_days": row.predicted_relief_days}


@router.post("/participants/{participant_id}/visits", status_code=201)
def add_visit(participant_id: int, body: FollowUpIn, session: SessionDep, actor: ApiActor) -> dict:
    row = clinical.record_followup(session, actor, _id(participant_id), body)
    session.commit()
    return {"id": row.id, "answers": row.answers, "scores": row.scores}


@router.post("/participants/{participant_id}/adverse-events", status_code=201)
def add_adverse_event(
    participant_id: int, body: AdverseEventIn, session: SessionDep, actor: ApiActor
) -> dict:
    row = clinical.report_adverse_event(session, actor, _id(participant_id), body)
    session.commit()
    return {"id": row.id, "yellow_card": yellow_card_summary(session, actor, row.id)}


@router.post("/participants/{participant_id}/reinterventions", status_code=201)
def add_reintervention(
    participant_id: int, body: ReinterventionIn, session: SessionDep, actor: ApiActor
) -> dict:
    row = clinical.record_reintervention(session, actor, _id(participant_id), body)
    session.commit()
    return {"id": row.id}


@router.patch("/records/{table}/{row_id}")
def edit(table: str, row_id: int, body: EditIn, session: SessionDep, actor: ApiActor) -> dict:
    """Edit listed fields of a record; ``reason`` is required and audited."""
    clinical.edit_record(
        session, actor, table[:60], _id(row_id, "row_id"), body.changes, body.reason
    )
    session.commit()
    return {"ok": True}


@router.get("/adverse-events/{event_id}/yellow-card")
def yellow_card(event_id: int, session: SessionDep, actor: ApiActor) -> dict:
    return yellow_card_summary(session, actor, _id(event_id, "event_id"))


@router.get("/dashboard")
def dashboard_counts(session: SessionDep, actor: ApiActor) -> dict:
    return dashboard(session, actor)


@router.get("/dashboard/outcomes")
def dashboard_outcomes(session: SessionDep, actor: ApiActor) -> list[dict[str, Any]]:
    """Per study: mean NRS pain by visit with 95 % CI per arm; recruitment per site."""
    return outcome_summary(session, actor)


@router.get("/audit")
def audit_list(
    session: SessionDep,
    actor: ApiActor,
    table: Annotated[str | None, Query(max_length=60)] = None,
    row_id: Annotated[str | None, Query(max_length=60)] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 500,
) -> list[dict[str, Any]]:
    return [
        {
            c: (getattr(e, c).isoformat() if c == "occurred_at" else getattr(e, c))
            for c in audit.AUDIT_COLUMNS
        }
        for e in audit.list_audit(session, actor, table=table, row_id=row_id, limit=limit)
    ]


def _exported(session: Any, actor: Any, name: str) -> None:
    """Audit an export (who took which data set, when)."""
    audit.log_event(session, actor, "export", details={"export": name})


def _csv(text: str, filename: str) -> Response:
    return PlainTextResponse(
        text,
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/exports/audit.csv")
def audit_export(session: SessionDep, actor: ApiActor) -> Response:
    text = audit.audit_csv(session, actor)
    _exported(session, actor, "audit.csv")
    return _csv(text, "audit.csv")


@router.get("/exports/tidy/{table}.csv")
def tidy_export(table: str, session: SessionDep, actor: ApiActor) -> Response:
    if table not in tidy.TABLES:
        raise NotFoundError(f"no table '{table[:40]}'; tables: {', '.join(tidy.TABLES)}")
    text = tidy.to_csv(tidy.tidy_tables(session, actor)[table], tidy.TABLES[table])
    _exported(session, actor, f"tidy/{table}.csv")
    return _csv(text, f"{table}.csv")


@router.get("/exports/tidy.zip")
def tidy_zip(session: SessionDep, actor: ApiActor) -> Response:
    content = tidy.zip_tables(tidy.tidy_tables(session, actor))
    _exported(session, actor, "tidy.zip")
    return Response(
        content,
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="tidy.zip"'},
    )


@router.get("/exports/deidentified.zip")
def deid_zip(session: SessionDep, settings: SettingsDep, actor: ApiActor) -> Response:
    tables = deidentified.deidentified_tables(session, settings, actor)
    content = tidy.zip_tables(tables, deidentified.DEID_TABLES)
    _exported(session, actor, "deidentified.zip")
    return Response(
        content,
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="deidentified.zip"'},
    )


@router.get("/exports/redcap/dictionary.csv")
def redcap_dictionary(actor: ApiActor) -> Response:
    actor.require(EXPORT_ROLES, "export data")
    return _csv(redcap.dictionary_csv(), "redcap_dictionary.csv")


@router.get("/exports/redcap/records.csv")
def redcap_records(session: SessionDep, actor: ApiActor) -> Response:
    text = redcap.records_csv(session, actor)
    _exported(session, actor, "redcap_records.csv")
    return _csv(text, "redcap_records.csv")


@router.get("/exports/fhir.json")
def fhir_bundle(session: SessionDep, actor: ApiActor) -> Response:
    content = fhir.bundle_json(session, actor)
    _exported(session, actor, "fhir.json")
    return Response(content, media_type="application/fhir+json")


def _file_info(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "media_type": row.media_type,
        "size": row.size,
        "sha256": row.sha256,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "created_by": row.created_by,
        "url": f"/api/procedures/{row.procedure_id}/files/{row.name}",
    }


@router.post("/procedures/{procedure_id}/plan-bundle", status_code=201)
def upload_plan_bundle(
    procedure_id: int,
    session: SessionDep,
    actor: ApiActor,
    bundle: Annotated[UploadFile, File(description="plan_bundle.zip")],
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> dict:
    """Attach a plan bundle (.zip, multipart field ``bundle``); sets the procedure's plan and
    predicted relief from plan.json. Replacing a bundle needs ``reason``."""
    content = bundle.file.read(plan_files.MAX_BUNDLE_BYTES + 1)
    rows = plan_files.attach_bundle(
        session, actor, _id(procedure_id, "procedure_id"), content, reason
    )
    session.commit()
    procedure, _ = plan_files.get_procedure(session, actor, procedure_id)
    return {
        "procedure_id": procedure_id,
        "files": [_file_info(r) for r in rows],
        "predicted_relief_days": procedure.predicted_relief_days,
    }


@router.get("/procedures/{procedure_id}/files")
def plan_file_list(procedure_id: int, session: SessionDep, actor: ApiActor) -> list[dict]:
    return [
        _file_info(r)
        for r in plan_files.list_files(session, actor, _id(procedure_id, "procedure_id"))
    ]


@router.get("/procedures/{procedure_id}/files/{name}")
def plan_file(procedure_id: int, name: str, session: SessionDep, actor: ApiActor) -> Response:
    return file_response(
        plan_files.get_file(session, actor, _id(procedure_id, "procedure_id"), name)
    )


def _patch(session: Any, actor: Any, table: str, row_id: int, body: EditIn, field: str) -> dict:
    row = clinical.edit_record(session, actor, table, _id(row_id, field), body.changes, body.reason)
    session.commit()
    values = {k: getattr(row, k) for k in clinical.EDITABLE[table][1]}
    return {
        "id": row.id,
        **{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in values.items()},
        **({"scores": row.scores} if table == "followup_visit" else {}),
    }


@router.patch("/neuromas/{neuroma_id}")
def edit_neuroma(neuroma_id: int, body: EditIn, session: SessionDep, actor: ApiActor) -> dict:
    """Edit a neuroma's details: ``{"changes": {...}, "reason": "..."}`` (reason audited)."""
    return _patch(session, actor, "neuroma", neuroma_id, body, "neuroma_id")


@router.patch("/procedures/{procedure_id}")
def edit_procedure(procedure_id: int, body: EditIn, session: SessionDep, actor: ApiActor) -> dict:
    """Edit a procedure (device, lot, dates, …); the plan changes only through a bundle."""
    return _patch(session, actor, "procedure", procedure_id, body, "procedure_id")


@router.patch("/visits/{visit_id}")
def edit_visit(visit_id: int, body: EditIn, session: SessionDep, actor: ApiActor) -> dict:
    """Correct a visit: ``changes.answers`` replaces the answers (re-validated, re-scored)."""
    return _patch(session, actor, "followup_visit", visit_id, body, "visit_id")


@router.patch("/adverse-events/{event_id}")
def edit_adverse_event(event_id: int, body: EditIn, session: SessionDep, actor: ApiActor) -> dict:
    return _patch(session, actor, "adverse_event", event_id, body, "event_id")


@router.patch("/participants/{participant_id}")
def patch_participant(
    participant_id: int, body: WithdrawalPatchIn, session: SessionDep, actor: ApiActor
) -> dict:
    """Withdraw a participant: ``{"status": "withdrawn", "withdrawal_date", "reason"}``."""
    participant = participants.withdraw(
        session, actor, _id(participant_id), body.withdrawal_date, body.reason
    )
    session.commit()
    return {"id": participant.id, "status": participant.status}


class ResetIn(Strict):
    token: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=200)]


@router.post("/users/{user_id}/reset-link", status_code=201)
def issue_reset_link(
    user_id: int, request: Request, session: SessionDep, settings: SettingsDep, actor: ApiActor
) -> dict:
    """Administrators: a one-time password reset link for a user (copy it to them)."""
    token = accounts.issue_reset_token(session, settings, actor, _id(user_id, "user_id"))
    session.commit()
    return {"url": reset_url(request, token), "token": token, "expires_in_s": RESET_MAX_AGE_S}


@router.post("/password-reset")
def password_reset(body: ResetIn, session: SessionDep, settings: SettingsDep) -> dict:
    """Set a new password with a reset token (no log-in: the signed token is the credential)."""
    user = accounts.reset_password(session, settings, body.token, body.password)
    session.commit()
    return {"username": user.username, "ok": True}
