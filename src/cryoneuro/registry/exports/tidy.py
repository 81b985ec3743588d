"""The tidy tables the analysis package reads: one row per observation, one CSV per table.

The format is defined once, in :mod:`cryoneuro.analysis.tidy` (docs/tidy-format.md); this
module fills it from the database.

Participants are named only by their study number (``participant_id``); dates are ISO and
each event carries ``days_since_procedure`` (day 0 = first cryoablation) for survival and
longitudinal models.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.analysis.tidy import TABLES as ANALYSIS_TABLES
from cryoneuro.registry.auth import EXPORT_ROLES, Actor
from cryoneuro.registry.csvsafe import safe_cell
from cryoneuro.registry.models import Participant, Site, Study
from cryoneuro.registry.services import visit_status
from cryoneuro.registry.services.participants import list_participants
from cryoneuro.registry.services.queries import QUERY_COLUMNS, query_rows

#: Column names come from the analysis package's schema: one definition, two users. The
#: bundle adds the registry's data queries (monitoring, not analysis: cryoneuro analyse
#: ignores the file).
TABLES: dict[str, list[str]] = {**ANALYSIS_TABLES, "queries": QUERY_COLUMNS}
#: Tables that are not per-participant analysis data (filled by :func:`tidy_tables` only).
REGISTRY_ONLY = frozenset({"queries"})


def _days(day0: dt.date | None, date: dt.date) -> int | None:
    return (date - day0).days if day0 else None


def _flatten_scores(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for key, sub in value.items():
            out.extend(_flatten_scores(f"{prefix}.{key}" if prefix else str(key), sub))
        return out
    if isinstance(value, int | float | str) or value is None:
        return [(prefix, value)]
    return []


def participant_rows(
    session: Session,
    participant: Participant,
    studies: dict[int, Study],
    sites: dict[int, Site],
    actor: Actor | None = None,
) -> dict[str, list[dict]]:
    """All tidy rows of one participant (used by the full and de-identified exports)."""
    study, site = studies[participant.study_id], sites[participant.site_id]
    pid = participant.study_number
    neuroma = participant.neuromas[0] if participant.neuromas else None
    day0 = participant.procedures[0].procedure_date if participant.procedures else None
    rows: dict[str, list[dict]] = {name: [] for name in ANALYSIS_TABLES}
    rows["participants"].append(
        {
            "participant_id": pid,
            "study": study.code,
            "site": site.code,
            "design": study.design,
            "arm": (
                "blinded"
                if participant.arm_code and actor is not None and actor.blinded(study)
                else participant.arm_code or ""
            ),
            "sex": participant.sex,
            "age_at_enrolment_years": participant.age_at_enrolment_years,
            "enrolment_date": participant.enrolment_date,
            "status": participant.status,
            "neuroma_type": neuroma.neuroma_type if neuroma else "",
            "neuroma_site": neuroma.anatomical_site if neuroma else "",
            "laterality": neuroma.laterality if neuroma else "",
            "neuroma_size_mm": neuroma.size_mm if neuroma else None,
            "prior_treatments": "; ".join(neuroma.prior_treatments) if neuroma else "",
        }
    )
    for p in participant.procedures:
        rows["procedures"].append(
            {
                "participant_id": pid,
                "procedure_id": p.id,
                "procedure_date": p.procedure_date,
                "days_since_procedure": _days(day0, p.procedure_date),
                "imaging_modality": p.imaging_modality,
                "anaesthesia": p.anaesthesia,
                "device_name": p.device_name,
                "manufacturer": p.manufacturer,
                "device_lot": p.device_lot,
                "probe_model": p.probe_model,
                "gas": p.gas,
                "protocol": p.protocol,
                "operator": p.operator,
                "predicted_relief_days": p.predicted_relief_days,
                "has_plan": p.plan is not None,
            }
        )
    for v in participant.visits:
        days = _days(day0, v.visit_date)
        rows["visits"].append(
            {
                "participant_id": pid,
                "visit_id": v.id,
                "visit_code": v.visit_code,
                "visit_date": v.visit_date,
                "days_since_procedure": days,
            }
        )
        base = {
            "participant_id": pid,
            "visit_code": v.visit_code,
            "visit_date": v.visit_date,
            "days_since_procedure": days,
        }
        for instrument, items in sorted(v.answers.items()):
            for item, value in items.items():
                rows["scores"].append(
                    {
                        **base,
                        "instrument": instrument,
                        "kind": "item",
                        "measure": item,
                        "value": value,
                    }
                )
        for instrument, score in sorted((v.scores or {}).items()):
            for measure, value in _flatten_scores("", score):
                rows["scores"].append(
                    {
                        **base,
                        "instrument": instrument,
                        "kind": "score",
                        "measure": measure,
                        "value": value,
                    }
                )
    for e in participant.adverse_events:
        rows["adverse_events"].append(
            {
                "participant_id": pid,
                "event_id": e.id,
                "onset_date": e.onset_date,
                "days_since_procedure": _days(day0, e.onset_date),
                "category": e.category,
                "severity": e.severity,
                "serious": e.serious,
                "relatedness": e.relatedness,
                "outcome": e.outcome,
                "device_incident": e.device_incident,
                "procedure_id": e.procedure_id,
                "description": e.description,
            }
        )
    for r in participant.reinterventions:
        rows["reinterventions"].append(
            {
                "participant_id": pid,
                "reintervention_id": r.id,
                "reintervention_date": r.reintervention_date,
                "days_since_procedure": _days(day0, r.reintervention_date),
                "kind": r.kind,
                "description": r.description,
            }
        )
    for name, extra in visit_status.tidy_rows(session, participant, pid, day0).items():
        rows[name].extend(extra)
    return rows


def tidy_tables(session: Session, actor: Actor) -> dict[str, list[dict]]:
    """Every tidy table for the participants at the actor's sites."""
    actor.require(EXPORT_ROLES, "export data")
    studies = {s.id: s for s in session.scalars(select(Study))}
    sites = {s.id: s for s in session.scalars(select(Site))}
    tables: dict[str, list[dict]] = {name: [] for name in TABLES}
    for participant in list_participants(session, actor):
        for name, rows in participant_rows(session, participant, studies, sites, actor).items():
            tables[name].extend(rows)
    tables["queries"] = query_rows(session, actor)
    return tables


def _cell(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # no formula injection when the CSV is opened in a spreadsheet
    return value


def to_csv(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: safe_cell(_cell(row.get(k))) for k in columns})
    return buffer.getvalue()


def zip_tables(tables: dict[str, list[dict]], columns: dict[str, list[str]] = TABLES) -> bytes:
    """A zip of ``<table>.csv`` files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, rows in tables.items():
            archive.writestr(f"{name}.csv", to_csv(rows, columns[name]))
    return buffer.getvalue()
