"""Edit pages (neuroma, procedure, follow-up answers, adverse event) and the withdrawal page.

Every edit needs a reason for change, which lands in the audit entry with the old and new
values (services/clinical.py ``edit_record``); follow-up answers are re-validated and
re-scored. Write roles only, and only at the user's sites; monitors are read-only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cryoneuro.registry.auth import Actor
from cryoneuro.registry.errors import NotFoundError, RegistryInputError
from cryoneuro.registry.models import (
    AEOutcome,
    Anaesthesia,
    Gas,
    ImagingModality,
    NeuromaType,
    Relatedness,
    SafetyCategory,
    Severity,
)
from cryoneuro.registry.schemas import WithdrawalIn
from cryoneuro.registry.services import clinical, participants
from cryoneuro.registry.services.participants import valid_id
from cryoneuro.web.deps import FormDep, PageActor, SessionDep
from cryoneuro.web.forms import FormField, choices, nest, validate
from cryoneuro.web.page_forms import FORM_INSTRUMENTS, answer_fields
from cryoneuro.web.pages import form_page

router = APIRouter(include_in_schema=False)

TITLES = {
    "neuroma": "Edit neuroma",
    "procedure": "Edit procedure",
    "followup_visit": "Correct follow-up answers",
    "adverse_event": "Edit adverse event",
}
CHECKBOXES = {"adverse_event": {"device_incident"}}


def _fields(table: str) -> list[FormField]:
    if table == "neuroma":
        return [
            FormField("neuroma_type", "Neuroma type", "select", choices(NeuromaType.codes())),
            FormField("anatomical_site", "Anatomical site"),
            FormField(
                "laterality",
                "Laterality",
                "select",
                [("left", "left"), ("right", "right")],
                required=False,
            ),
            FormField("size_mm", "Size (mm)", "number", required=False, attrs={"step": "0.1"}),
        ]
    if table == "procedure":
        return [
            FormField("procedure_date", "Procedure date", "date"),
            FormField(
                "imaging_modality", "Imaging guidance", "select", choices(ImagingModality.codes())
            ),
            FormField("anaesthesia", "Anaesthesia", "select", choices(Anaesthesia.codes())),
            FormField("device_name", "Device"),
            FormField("manufacturer", "Manufacturer"),
            FormField("device_lot", "Lot number"),
            FormField("probe_model", "Probe model / gauge", required=False),
            FormField("gas", "Cryogen", "select", choices(Gas.codes())),
            FormField("protocol", "Freeze–thaw protocol", "textarea", required=False),
            FormField("operator", "Operator"),
            FormField("predicted_relief_days", "Predicted relief (days)", "number", required=False),
        ]
    if table == "adverse_event":
        return [
            FormField("onset_date", "Onset date", "date"),
            FormField(
                "category",
                "Category (NICE safety outcome)",
                "select",
                choices(SafetyCategory.codes()),
            ),
            FormField("description", "What happened", "textarea"),
            FormField("severity", "Severity", "select", choices(Severity.codes())),
            FormField("serious", "Serious (SAE)", "yesno"),
            FormField(
                "relatedness",
                "Related to the procedure/device",
                "select",
                choices(Relatedness.codes()),
            ),
            FormField("outcome", "Outcome", "select", choices(AEOutcome.codes())),
            FormField("device_incident", "Device incident", "checkbox"),
        ]
    fields = [FormField("visit_date", "Visit date", "date")]
    for instrument in FORM_INSTRUMENTS:
        fields += answer_fields(instrument)
    return fields


def _reason_field() -> FormField:
    return FormField(
        "reason",
        "Reason for change",
        "textarea",
        section="Reason for change",
        hint="required; recorded in the audit trail with the old and new values",
    )


def _current(row: Any, fields: list[FormField]) -> dict[str, str]:
    values: dict[str, str] = {}
    for f in fields:
        if f.name.startswith("answers."):
            _, instrument, item = f.name.split(".")
            value = (row.answers or {}).get(instrument, {}).get(item)
        else:
            value = getattr(row, f.name)
        if value is None:
            values[f.name] = ""
        elif f.kind == "yesno":
            values[f.name] = "true" if value else "false"
        elif f.kind == "checkbox":
            values[f.name] = "on" if value else ""
        elif isinstance(value, dt.date):
            values[f.name] = value.isoformat()
        else:
            values[f.name] = str(value)
    return values


def _changes(table: str, fields: list[FormField], data: dict[str, Any]) -> dict[str, Any]:
    if table == "followup_visit":
        answers = data.get("answers") if isinstance(data.get("answers"), dict) else {}
        return {"visit_date": data.get("visit_date", ""), "answers": answers}
    changes: dict[str, Any] = {}
    for f in fields:  # a field left blank clears the value
        changes[f.name] = data.get(f.name, None if f.kind == "number" else "")
    return changes


def _row(session: Any, actor: Actor, table: str, row_id: int) -> tuple[Any, Any]:
    if table not in TITLES:
        raise NotFoundError(f"records of '{table[:40]}' cannot be edited here")
    model = clinical.EDITABLE[table][0]
    row = session.get(model, row_id) if valid_id(row_id) else None
    if row is None:
        raise NotFoundError(f"no {table} with id {row_id}")
    participant = participants.get_participant(session, actor, row.participant_id)
    actor.require_write(participant.site_id)
    return row, participant


@router.api_route(
    "/records/{table}/{row_id}/edit", methods=["GET", "POST"], response_class=HTMLResponse
)
def edit_page(
    table: str,
    row_id: int,
    request: Request,
    posted_data: FormDep,
    session: SessionDep,
    actor: PageActor,
) -> Response:
    row, participant = _row(session, actor, table[:40], row_id)
    fields = [*_fields(table), _reason_field()]
    errors: dict[str, str] = {}
    if request.method == "POST":
        flat = posted_data
        data = nest(flat, CHECKBOXES.get(table, set()))
        reason = str(data.pop("reason", "") or "")
        try:
            clinical.edit_record(
                session, actor, table, row.id, _changes(table, fields[:-1], data), reason
            )
            session.commit()
            target = (
                f"/procedures/{row.id}"
                if table == "procedure"
                else f"/participants/{participant.id}"
            )
            return RedirectResponse(target, status_code=303)
        except RegistryInputError as exc:
            session.rollback()
            field = (exc.field or "form").removeprefix("changes.")
            errors = {field: str(exc)}
    else:
        flat = _current(row, fields[:-1])
    return form_page(
        request,
        actor,
        title=f"{TITLES[table]} — {participant.study_number}",
        fields=fields,
        flat=flat,
        errors=errors,
        submit="Save changes",
    )


@router.api_route(
    "/participants/{participant_id}/withdraw", methods=["GET", "POST"], response_class=HTMLResponse
)
def withdraw_page(
    participant_id: int,
    request: Request,
    posted_data: FormDep,
    session: SessionDep,
    actor: PageActor,
) -> Response:
    participant = participants.get_participant(session, actor, participant_id)
    actor.require_write(participant.site_id)
    fields = [
        FormField(
            "withdrawal_date", "Date of withdrawal", "date", value=dt.date.today().isoformat()
        ),
        FormField(
            "reason",
            "Reason",
            "textarea",
            hint="recorded in the audit trail; no further visits are accepted",
        ),
    ]
    flat: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if request.method == "POST":
        flat = posted_data
        data, errors = validate(WithdrawalIn, nest(flat))
        if data is not None:
            try:
                participants.withdraw(
                    session, actor, participant.id, data.withdrawal_date, data.reason
                )
                session.commit()
                return RedirectResponse(f"/participants/{participant.id}", status_code=303)
            except RegistryInputError as exc:
                session.rollback()
                errors = {exc.field or "form": str(exc)}
    return form_page(
        request,
        actor,
        title=f"Withdraw {participant.study_number}",
        fields=fields,
        flat=flat,
        errors=errors,
        submit="Withdraw participant",
    )
