"""A 'Yellow Card-ready' summary of an adverse incident (MHRA; Health Facilities Scotland;
NI Adverse Incident Centre): device, manufacturer, lot, incident, patient outcome, age, sex
and local id — never a name or NHS number."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cryoneuro.registry.auth import Actor
from cryoneuro.registry.errors import NotFoundError
from cryoneuro.registry.models import AdverseEvent, Procedure
from cryoneuro.registry.services.participants import get_participant, valid_id


def yellow_card_summary(session: Session, actor: Actor, event_id: int) -> dict[str, Any]:
    event = session.get(AdverseEvent, event_id) if valid_id(event_id) else None
    if event is None:
        raise NotFoundError("no such adverse event")
    participant = get_participant(session, actor, event.participant_id)
    procedure = (
        session.get(Procedure, event.procedure_id)
        if event.procedure_id
        else (participant.procedures[-1] if participant.procedures else None)
    )
    return {
        "device": procedure.device_name if procedure else "",
        "manufacturer": procedure.manufacturer if procedure else "",
        "lot_number": procedure.device_lot if procedure else "",
        "model": procedure.probe_model if procedure else "",
        "procedure_date": procedure.procedure_date.isoformat() if procedure else "",
        "incident_date": event.onset_date.isoformat(),
        "incident": f"{event.category.replace('_', ' ')}: {event.description}",
        "device_incident": event.device_incident,
        "severity": event.severity,
        "serious": event.serious,
        "relatedness": event.relatedness,
        "patient_outcome": event.outcome.replace("_", " "),
        "patient_age_years": participant.age_at_enrolment_years,
        "patient_sex": participant.sex,
        "local_id": participant.study_number,
        "reporter": actor.username,
    }


def yellow_card_text(summary: dict[str, Any]) -> str:
    """Plain text to paste into the Yellow Card form."""
    labels = [
        ("device", "Device"),
        ("manufacturer", "Manufacturer"),
        ("lot_number", "Lot"),
        ("model", "Model"),
        ("procedure_date", "Procedure date"),
        ("incident_date", "Incident date"),
        ("incident", "Incident"),
        ("severity", "Severity"),
        ("serious", "Serious"),
        ("patient_outcome", "Patient outcome"),
        ("patient_age_years", "Age (years)"),
        ("patient_sex", "Sex"),
        ("local_id", "Local id"),
        ("reporter", "Reporter"),
    ]
    return "\n".join(f"{label}: {summary[key]}" for key, label in labels)
