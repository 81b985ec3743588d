"""De-identified extract: dates shifted per participant, identifiers and free text dropped.

Each participant gets a random but stable date offset (−180…+180 days, from an HMAC of the
secret) so intervals within a participant are preserved while calendar dates are not;
the study number becomes a keyed pseudonym; ages over 89 are top-coded as 90 (HIPAA Safe
Harbor). **Free text is dropped, every column of it** (issue 13: a name typed into
"anatomical site" came out): what users type (neuroma site, prior treatments, device name,
manufacturer, lot, probe model, protocol, operator, descriptions) never leaves in this
extract; only codes, numbers and shifted dates do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.registry.auth import EXPORT_ROLES, Actor
from cryoneuro.registry.exports.tidy import REGISTRY_ONLY, TABLES, participant_rows
from cryoneuro.registry.models import Site, Study
from cryoneuro.registry.services.participants import list_participants
from cryoneuro.registry.settings import RegistrySettings

#: Free-text columns (typed by users) and row ids that would link back to the registry.
FREE_TEXT = {
    "neuroma_site",
    "prior_treatments",
    "device_name",
    "manufacturer",
    "device_lot",
    "probe_model",
    "protocol",
    "operator",
    "description",
    "reason_text",
}
DROPPED = FREE_TEXT | {"visit_id", "event_id", "procedure_id", "reintervention_id", "deviation_id"}
#: Data queries (free text and raw values) are not part of the de-identified extract.
DEID_TABLES = {
    name: [c for c in cols if c not in DROPPED]
    for name, cols in TABLES.items()
    if name not in REGISTRY_ONLY
}
MAX_SHIFT_DAYS = 180


def _digest(settings: RegistrySettings, participant_id: int) -> bytes:
    return hmac.new(
        settings.randomisation_seed_secret(), f"deid:{participant_id}".encode(), hashlib.sha256
    ).digest()


def date_offset_days(settings: RegistrySettings, participant_id: int) -> int:
    value = int.from_bytes(_digest(settings, participant_id)[:4], "big")
    return value % (2 * MAX_SHIFT_DAYS + 1) - MAX_SHIFT_DAYS


def deidentified_tables(
    session: Session, settings: RegistrySettings, actor: Actor
) -> dict[str, list[dict]]:
    actor.require(EXPORT_ROLES, "export data")
    studies = {s.id: s for s in session.scalars(select(Study))}
    sites = {s.id: s for s in session.scalars(select(Site))}
    tables: dict[str, list[dict]] = {name: [] for name in DEID_TABLES}
    for participant in list_participants(session, actor):
        shift = dt.timedelta(days=date_offset_days(settings, participant.id))
        pseudonym = "D" + _digest(settings, participant.id)[4:10].hex().upper()
        for name, rows in participant_rows(session, participant, studies, sites, actor).items():
            for row in rows:
                clean = {}
                for key, value in row.items():
                    if key in DROPPED:
                        continue
                    if isinstance(value, dt.date):
                        value = value + shift
                    clean[key] = value
                clean["participant_id"] = pseudonym
                if name == "participants":
                    clean["age_at_enrolment_years"] = min(row["age_at_enrolment_years"], 90)
                tables[name].append(clean)
    return tables
