"""REDCap data dictionary and records CSV (classic project with repeating instruments).

Import the dictionary first (Project Setup → Data Dictionary), enable repeating instruments
for procedure, followup and adverse_event, then import the records CSV.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy.orm import Session

from cryoneuro.registry.auth import EXPORT_ROLES, Actor
from cryoneuro.registry.csvsafe import safe_cell
from cryoneuro.registry.instruments_bridge import ITEM_SPECS
from cryoneuro.registry.models import (
    AEOutcome,
    Anaesthesia,
    Gas,
    ImagingModality,
    NeuromaType,
    Relatedness,
    SafetyCategory,
    Severity,
    Sex,
    Site,
    Study,
)
from cryoneuro.registry.services.participants import list_participants

DICTIONARY_COLUMNS = [
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
]


def _choices(vocabulary: Any) -> str:
    return " | ".join(f"{i}, {code}" for i, code in enumerate(vocabulary.codes(), start=1))


def _field(
    name: str,
    form: str,
    ftype: str,
    label: str,
    choices: str = "",
    validation: str = "",
    vmin: Any = "",
    vmax: Any = "",
) -> dict[str, Any]:
    return {
        "Variable / Field Name": name,
        "Form Name": form,
        "Field Type": ftype,
        "Field Label": label,
        "Choices, Calculations, OR Slider Labels": choices,
        "Text Validation Type OR Show Slider Number": validation,
        "Text Validation Min": vmin,
        "Text Validation Max": vmax,
    }


CODED = {
    "sex": Sex,
    "neuroma_type": NeuromaType,
    "imaging_modality": ImagingModality,
    "anaesthesia": Anaesthesia,
    "gas": Gas,
    "category": SafetyCategory,
    "severity": Severity,
    "relatedness": Relatedness,
    "outcome": AEOutcome,
}


def data_dictionary() -> list[dict[str, Any]]:
    rows = [
        _field("record_id", "enrolment", "text", "Study number"),
        _field("study", "enrolment", "text", "Study code"),
        _field("site", "enrolment", "text", "Site code"),
        _field("arm", "enrolment", "text", "Allocated arm (RCT)"),
        _field("sex", "enrolment", "dropdown", "Sex", _choices(Sex)),
        _field(
            "age_at_enrolment_years",
            "enrolment",
            "text",
            "Age at enrolment",
            "",
            "integer",
            16,
            120,
        ),
        _field("enrolment_date", "enrolment", "text", "Enrolment date", "", "date_ymd"),
        _field("neuroma_type", "enrolment", "dropdown", "Neuroma type", _choices(NeuromaType)),
        _field("neuroma_site", "enrolment", "text", "Neuroma anatomical site"),
        _field("neuroma_size_mm", "enrolment", "text", "Neuroma size (mm)", "", "number", 0, 200),
        _field("procedure_date", "procedure", "text", "Procedure date", "", "date_ymd"),
        _field(
            "imaging_modality",
            "procedure",
            "dropdown",
            "Imaging guidance",
            _choices(ImagingModality),
        ),
        _field("anaesthesia", "procedure", "dropdown", "Anaesthesia", _choices(Anaesthesia)),
        _field("device_name", "procedure", "text", "Device"),
        _field("manufacturer", "procedure", "text", "Manufacturer"),
        _field("device_lot", "procedure", "text", "Device lot"),
        _field("gas", "procedure", "dropdown", "Cryogen", _choices(Gas)),
        _field(
            "predicted_relief_days",
            "procedure",
            "text",
            "Predicted relief (days)",
            "",
            "number",
            0,
            3650,
        ),
        _field("visit_code", "followup", "text", "Visit"),
        _field("visit_date", "followup", "text", "Visit date", "", "date_ymd"),
    ]
    for instrument, items in ITEM_SPECS.items():
        for name, item in items.items():
            variable, label = f"{instrument}_{name}", f"{instrument.upper()} {name}"
            if item.kind == "choice":  # the raw value is the instrument's code itself
                choices = " | ".join(f"{c}, {c}" for c in item.choices)
                rows.append(_field(variable, "followup", "dropdown", label, choices))
                continue
            validation = "integer" if item.kind == "integer" else "number"
            low, high = ("" if v is None else f"{v:g}" for v in (item.min, item.max))
            rows.append(_field(variable, "followup", "text", label, "", validation, low, high))
    rows += [
        _field("onset_date", "adverse_event", "text", "Onset date", "", "date_ymd"),
        _field(
            "category", "adverse_event", "dropdown", "Safety category", _choices(SafetyCategory)
        ),
        _field("severity", "adverse_event", "dropdown", "Severity", _choices(Severity)),
        _field("serious", "adverse_event", "yesno", "Serious"),
        _field("relatedness", "adverse_event", "dropdown", "Relatedness", _choices(Relatedness)),
        _field("outcome", "adverse_event", "dropdown", "Outcome", _choices(AEOutcome)),
    ]
    return [{col: row.get(col, "") for col in DICTIONARY_COLUMNS} for row in rows]


def _code(name: str, value: Any) -> Any:
    vocabulary = CODED.get(name)
    if vocabulary is None or value in (None, ""):
        return "" if value is None else value
    return vocabulary.codes().index(value) + 1


def records(session: Session, actor: Actor) -> list[dict[str, Any]]:
    """One enrolment row per participant plus one row per repeating-instrument instance."""
    actor.require(EXPORT_ROLES, "export data")
    study_rows = {s.id: s for s in session.query(Study)}
    studies = {i: s.code for i, s in study_rows.items()}
    sites = {s.id: s.code for s in session.query(Site)}
    out: list[dict[str, Any]] = []
    for p in list_participants(session, actor):
        n = p.neuromas[0] if p.neuromas else None
        out.append(
            {
                "record_id": p.study_number,
                "redcap_repeat_instrument": "",
                "redcap_repeat_instance": "",
                "study": studies[p.study_id],
                "site": sites[p.site_id],
                "arm": (
                    "blinded"
                    if p.arm_code and actor.blinded(study_rows[p.study_id])
                    else p.arm_code or ""
                ),
                "sex": _code("sex", p.sex),
                "age_at_enrolment_years": p.age_at_enrolment_years,
                "enrolment_date": p.enrolment_date.isoformat(),
                "neuroma_type": _code("neuroma_type", n.neuroma_type) if n else "",
                "neuroma_site": n.anatomical_site if n else "",
                "neuroma_size_mm": n.size_mm if n and n.size_mm is not None else "",
                "enrolment_complete": 2,
            }
        )
        for i, proc in enumerate(p.procedures, start=1):
            out.append(
                {
                    "record_id": p.study_number,
                    "redcap_repeat_instrument": "procedure",
                    "redcap_repeat_instance": i,
                    "procedure_date": proc.procedure_date.isoformat(),
                    "imaging_modality": _code("imaging_modality", proc.imaging_modality),
                    "anaesthesia": _code("anaesthesia", proc.anaesthesia),
                    "device_name": proc.device_name,
                    "manufacturer": proc.manufacturer,
                    "device_lot": proc.device_lot,
                    "gas": _code("gas", proc.gas),
                    "predicted_relief_days": proc.predicted_relief_days or "",
                    "procedure_complete": 2,
                }
            )
        for i, visit in enumerate(p.visits, start=1):
            row = {
                "record_id": p.study_number,
                "redcap_repeat_instrument": "followup",
                "redcap_repeat_instance": i,
                "visit_code": visit.visit_code,
                "visit_date": visit.visit_date.isoformat(),
                "followup_complete": 2,
            }
            for instrument, items in visit.answers.items():
                for item, value in items.items():
                    row[f"{instrument}_{item}"] = value
            out.append(row)
        for i, event in enumerate(p.adverse_events, start=1):
            out.append(
                {
                    "record_id": p.study_number,
                    "redcap_repeat_instrument": "adverse_event",
                    "redcap_repeat_instance": i,
                    "onset_date": event.onset_date.isoformat(),
                    "category": _code("category", event.category),
                    "severity": _code("severity", event.severity),
                    "serious": int(event.serious),
                    "relatedness": _code("relatedness", event.relatedness),
                    "outcome": _code("outcome", event.outcome),
                    "adverse_event_complete": 2,
                }
            )
    return out


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: safe_cell(row.get(c, "")) for c in columns})
    return buffer.getvalue()


def dictionary_csv() -> str:
    return _csv(data_dictionary(), DICTIONARY_COLUMNS)


def records_csv(session: Session, actor: Actor) -> str:
    fields = [r["Variable / Field Name"] for r in data_dictionary()]
    forms = dict.fromkeys(r["Form Name"] for r in data_dictionary())
    columns = [
        fields[0],
        "redcap_repeat_instrument",
        "redcap_repeat_instance",
        *fields[1:],
        *(f"{form}_complete" for form in forms),
    ]
    return _csv(records(session, actor), columns)
