"""The fields of each data-entry form and how a submission is saved.

Kept apart from the routes so the forms (which mirror the API schemas field for field) can be
read as the study's case report forms.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.registry.auth import Actor
from cryoneuro.registry.errors import NotFoundError
from cryoneuro.registry.instruments_bridge import INSTRUMENT_LABELS, ITEM_SPECS
from cryoneuro.registry.models import (
    AEOutcome,
    Anaesthesia,
    Gas,
    ImagingModality,
    MissingCode,
    NeuromaType,
    Participant,
    ReinterventionKind,
    Relatedness,
    SafetyCategory,
    Severity,
    Sex,
    Study,
)
from cryoneuro.registry.schemas import (
    AdverseEventIn,
    EnrolmentIn,
    FollowUpIn,
    ProcedureIn,
    ReinterventionIn,
)
from cryoneuro.registry.services import clinical
from cryoneuro.web.forms import FormField, choices

__all__ = ["CLINICAL_FORMS", "EnrolmentIn", "enrolment_fields"]


def enrolment_fields(
    session: Session, actor: Actor, study_code: str, refuse_unknown: bool = False
) -> tuple[list[FormField], str]:
    """The enrolment form for ``study_code``; no code opens it on the first study (the form's
    select shows which). ``refuse_unknown``: an unknown code (a link or typed address) is a 404
    rather than silently replaced by the first study."""
    studies = list(session.scalars(select(Study).order_by(Study.code)))
    if refuse_unknown and study_code and not any(s.code == study_code for s in studies):
        known = ", ".join(s.code for s in studies)
        raise NotFoundError(f"no study '{study_code}'; studies: {known}")
    study = next((s for s in studies if s.code == study_code), studies[0] if studies else None)
    code = study.code if study else ""
    sites = [s for s in (study.sites if study else []) if actor.can_access_site(s.id)]
    today = dt.date.today().isoformat()
    fields = [
        FormField(
            "study_code",
            "Study",
            "select",
            [(s.code, f"{s.code} — {s.title}") for s in studies],
            value=code,
            attrs={"onchange": "location='/enrol?study='+this.value"},
        ),
        FormField("site_code", "Site", "select", [(s.code, s.name) for s in sites]),
        FormField("nhs_number", "NHS number", hint="10 digits; stored encrypted"),
        FormField("sex", "Sex", "select", choices(Sex.codes())),
        FormField("age_at_enrolment_years", "Age (years)", "number"),
        FormField("enrolment_date", "Enrolment date", "date", value=today),
        FormField("consent_date", "Consent date", "date", value=today, section="Consent"),
        FormField("consent_form_version", "Consent form version", value="v1.0"),
        FormField("consented", "Written informed consent given", "checkbox"),
    ]
    # one "Eligibility" section; inclusion criteria, then exclusion, each under one sub-heading
    criteria = sorted(study.criteria if study else [], key=lambda c: c.kind != "inclusion")
    for n, criterion in enumerate(criteria):
        first_of_kind = n == 0 or criteria[n - 1].kind != criterion.kind
        fields.append(
            FormField(
                f"eligibility.{criterion.code}",
                criterion.text,
                "yesno",
                section="Eligibility" if n == 0 else "",
                subsection=f"{criterion.kind.title()} criteria" if first_of_kind else "",
            )
        )
    fields += [
        FormField(
            "neuroma.neuroma_type",
            "Neuroma type",
            "select",
            choices(NeuromaType.codes()),
            section="Neuroma",
        ),
        FormField("neuroma.anatomical_site", "Anatomical site", hint="e.g. third web space"),
        FormField(
            "neuroma.laterality",
            "Laterality",
            "select",
            [("", "—"), ("left", "left"), ("right", "right")],
            required=False,
        ),
        FormField("neuroma.size_mm", "Size (mm)", "number", required=False, attrs={"step": "0.1"}),
    ]
    return fields, code


@dataclass
class ClinicalForm:
    title: str
    submit: str
    schema: type[BaseModel]
    fields: Callable[[Session, Participant, dict[str, Any]], list[FormField]]
    save: Callable[[Session, Actor, int, Any], Any]
    next_url: Callable[[Participant, Any], str]
    prepare: Callable[[dict[str, Any], dict[str, str]], dict[str, Any]] = lambda d, e: d
    checkboxes: set[str] = field(default_factory=set)


def _procedure_fields(session: Session, p: Participant, _flat: dict) -> list[FormField]:
    return [
        FormField("procedure_date", "Procedure date", "date", value=dt.date.today().isoformat()),
        FormField(
            "neuroma_id",
            "Neuroma",
            "select",
            [(str(n.id), f"{n.neuroma_type} — {n.anatomical_site}") for n in p.neuromas],
            required=False,
        ),
        FormField(
            "imaging_modality", "Imaging guidance", "select", choices(ImagingModality.codes())
        ),
        FormField("anaesthesia", "Anaesthesia", "select", choices(Anaesthesia.codes())),
        FormField("device_name", "Device", section="Device"),
        FormField("manufacturer", "Manufacturer"),
        FormField("device_lot", "Lot number"),
        FormField("probe_model", "Probe model / gauge", required=False),
        FormField("gas", "Cryogen", "select", choices(Gas.codes())),
        FormField("protocol", "Freeze–thaw protocol", "textarea", required=False),
        FormField("operator", "Operator"),
        FormField(
            "plan", "Plan (JSON from `cryoneuro plan`)", "textarea", required=False, section="Plan"
        ),
        FormField(
            "predicted_relief_days",
            "Predicted relief (days)",
            "number",
            required=False,
            hint="taken from the plan when left blank",
        ),
    ]


def _prepare_procedure(data: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    if isinstance(data.get("plan"), str):
        try:
            data["plan"] = json.loads(data["plan"])
        except json.JSONDecodeError as exc:
            errors["plan"] = f"not valid JSON ({exc.msg}, line {exc.lineno})"
            data.pop("plan")
    return data


def _followup_fields(session: Session, p: Participant, _flat: dict) -> list[FormField]:
    study = session.get(Study, p.study_id)
    visits = [(v.code, f"{v.label} (day {v.day})") for v in study.visits] if study else []
    fields = [
        FormField("visit_code", "Visit", "select", visits),
        FormField("visit_date", "Visit date", "date", value=dt.date.today().isoformat()),
    ]
    for instrument in FORM_INSTRUMENTS:
        fields += answer_fields(instrument)
        fields.append(_blank_code_field(instrument))
    return fields


#: The instruments on the staff follow-up forms, in order (the VAS is entered by API only).
FORM_INSTRUMENTS = ("nrs", "eq5d5l", "moxfq", "stump", "bpi", "mobility")


def answer_fields(instrument: str) -> list[FormField]:
    """One form field per item the registry asks, built from the instrument's own item
    (instruments_bridge.py): a number input with the item's range (whole numbers for integer
    items), or a list of the item's choices. None is required here: a blank item is either
    optional or needs a missing code, which the service checks."""
    fields = []
    for n, item in enumerate(ITEM_SPECS[instrument].values()):
        section = INSTRUMENT_LABELS[instrument] if n == 0 else ""
        name, label = f"answers.{instrument}.{item.name}", item.name.replace("_", " ")
        if item.kind == "choice":
            fields.append(
                FormField(
                    name, label, "select", choices(list(item.choices)), False, section=section
                )
            )
            continue
        attrs = {"step": "1" if item.kind == "integer" else "any"}
        if item.min is not None:
            attrs["min"] = f"{item.min:g}"
        if item.max is not None:
            attrs["max"] = f"{item.max:g}"
        hint = f"{attrs.get('min', '')}–{attrs.get('max', '')}"
        fields.append(
            FormField(
                name, label, "number", required=False, hint=hint, section=section, attrs=attrs
            )
        )
    return fields


def _blank_code_field(instrument: str) -> FormField:
    """Why this instrument's blank items have no value (issue 14: HL7 DataAbsentReason)."""
    return FormField(
        f"missing_blank.{instrument}",
        "items left blank were",
        "select",
        [(c, c.replace("-", " ")) for c in MissingCode.codes()],
        required=False,
        hint="a reason for every blank item of this instrument; never scored as a value",
    )


def _prepare_followup(data: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    answers = data.get("answers")
    if isinstance(answers, dict):
        data["answers"] = {k: v for k, v in answers.items() if v}
    else:
        data["answers"] = {}
    blank = data.pop("missing_blank", None)
    if isinstance(blank, dict):  # the code applies to the instrument's items left blank
        data["missing"] = {
            instrument: {
                item: code
                for item in ITEM_SPECS.get(instrument, {})
                if item not in (data["answers"].get(instrument) or {})
            }
            for instrument, code in blank.items()
            if isinstance(code, str) and instrument in ITEM_SPECS
        }
    return data


def _ae_fields(session: Session, p: Participant, _flat: dict) -> list[FormField]:
    return [
        FormField("onset_date", "Onset date", "date", value=dt.date.today().isoformat()),
        FormField(
            "procedure_id",
            "Procedure",
            "select",
            [(str(x.id), f"{x.procedure_date} — {x.device_name}") for x in p.procedures],
            required=False,
        ),
        FormField(
            "category", "Category (NICE safety outcome)", "select", choices(SafetyCategory.codes())
        ),
        FormField("description", "What happened", "textarea", hint="no names or other identifiers"),
        FormField("severity", "Severity", "select", choices(Severity.codes())),
        FormField("serious", "Serious (SAE)", "yesno"),
        FormField(
            "relatedness", "Related to the procedure/device", "select", choices(Relatedness.codes())
        ),
        FormField("outcome", "Outcome", "select", choices(AEOutcome.codes())),
        FormField("device_incident", "Device incident (report to MHRA Yellow Card)", "checkbox"),
    ]


def _reintervention_fields(session: Session, p: Participant, _flat: dict) -> list[FormField]:
    return [
        FormField("reintervention_date", "Date", "date", value=dt.date.today().isoformat()),
        FormField("kind", "Kind", "select", choices(ReinterventionKind.codes())),
        FormField(
            "description",
            "Details",
            "textarea",
            required=False,
            hint="no names or other identifiers",
        ),
    ]


CLINICAL_FORMS: dict[str, ClinicalForm] = {
    "procedure": ClinicalForm(
        "Record procedure",
        "Save procedure",
        ProcedureIn,
        _procedure_fields,
        clinical.record_procedure,
        lambda p, row: f"/participants/{p.id}",
        _prepare_procedure,
    ),
    "followup": ClinicalForm(
        "Follow-up questionnaires",
        "Save follow-up",
        FollowUpIn,
        _followup_fields,
        clinical.record_followup,
        lambda p, row: f"/participants/{p.id}",
        _prepare_followup,
    ),
    "adverse_event": ClinicalForm(
        "Report adverse event",
        "Report event",
        AdverseEventIn,
        _ae_fields,
        clinical.report_adverse_event,
        lambda p, row: f"/adverse-events/{row.id}",
        checkboxes={"device_incident"},
    ),
    "reintervention": ClinicalForm(
        "Record re-intervention",
        "Save re-intervention",
        ReinterventionIn,
        _reintervention_fields,
        clinical.record_reintervention,
        lambda p, row: f"/participants/{p.id}",
    ),
}
