"""FHIR R4-family bundle: a QuestionnaireResponse per follow-up visit and an Observation per
numeric score (validated with fhir.resources' R4B models, wire-compatible with R4 for these
resources). Subjects are referenced by study number only."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cryoneuro.registry.auth import EXPORT_ROLES, Actor
from cryoneuro.registry.exports.tidy import _flatten_scores
from cryoneuro.registry.services.participants import list_participants

STUDY_NUMBER_SYSTEM = "urn:cryoneuro:study-number"
QUESTIONNAIRES = "urn:cryoneuro:questionnaire:"
LOINC_PAIN_NRS = ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported")


def _subject(study_number: str) -> dict[str, Any]:
    return {
        "identifier": {"system": STUDY_NUMBER_SYSTEM, "value": study_number},
        "display": study_number,
    }


def _answer(value: Any) -> dict[str, Any]:
    """A QuestionnaireResponse answer of the stored value's type: whole numbers as
    ``valueInteger``, other numbers as ``valueDecimal``, choice codes as ``valueString``."""
    if isinstance(value, str):
        return {"valueString": value}
    if isinstance(value, int) or float(value).is_integer():
        return {"valueInteger": int(value)}
    return {"valueDecimal": float(value)}


def bundle_dict(session: Session, actor: Actor) -> dict[str, Any]:
    actor.require(EXPORT_ROLES, "export data")
    entries: list[dict[str, Any]] = []
    for p in list_participants(session, actor):
        for visit in p.visits:
            qr_id = f"qr-{visit.id}"
            items = []
            for instrument, answers in sorted(visit.answers.items()):
                items.append(
                    {
                        "linkId": instrument,
                        "item": [
                            {"linkId": f"{instrument}.{item}", "answer": [_answer(v)]}
                            for item, v in answers.items()
                        ],
                    }
                )
            entries.append(
                {
                    "fullUrl": f"urn:uuid:{qr_id}",
                    "resource": {
                        "resourceType": "QuestionnaireResponse",
                        "id": qr_id,
                        "status": "completed",
                        "questionnaire": QUESTIONNAIRES + visit.visit_code,
                        "subject": _subject(p.study_number),
                        "authored": visit.visit_date.isoformat(),
                        "item": items,
                    },
                }
            )
            observations: list[tuple[str, str, float, dict | None]] = []
            if "nrs" in visit.answers:
                observations.append(
                    (
                        "nrs",
                        "pain",
                        float(visit.answers["nrs"]["pain"]),
                        {
                            "system": "http://loinc.org",
                            "code": LOINC_PAIN_NRS[0],
                            "display": LOINC_PAIN_NRS[1],
                        },
                    )
                )
            for instrument, score in sorted((visit.scores or {}).items()):
                for measure, value in _flatten_scores("", score):
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        observations.append((instrument, measure, float(value), None))
            for n, (instrument, measure, value, loinc) in enumerate(observations):
                coding = [
                    {
                        "system": "urn:cryoneuro:score",
                        "code": f"{instrument}.{measure}",
                        "display": f"{instrument} {measure}",
                    }
                ]
                if loinc:
                    coding.insert(0, loinc)
                obs_id = f"obs-{visit.id}-{n}"
                entries.append(
                    {
                        "fullUrl": f"urn:uuid:{obs_id}",
                        "resource": {
                            "resourceType": "Observation",
                            "id": obs_id,
                            "status": "final",
                            "category": [
                                {
                                    "coding": [
                                        {
                                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                            "code": "survey",
                                        }
                                    ]
                                }
                            ],
                            "code": {"coding": coding, "text": f"{instrument} {measure}"},
                            "subject": _subject(p.study_number),
                            "effectiveDateTime": visit.visit_date.isoformat(),
                            "valueQuantity": {"value": value},
                            "derivedFrom": [{"reference": f"urn:uuid:{qr_id}"}],
                        },
                    }
                )
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def bundle_json(session: Session, actor: Actor) -> str:
    """The bundle, validated against the FHIR models before it leaves the server."""
    from fhir.resources.R4B.bundle import Bundle

    return Bundle.model_validate(bundle_dict(session, actor)).model_dump_json(indent=2)
