"""What site staff see and do around self-report: the participant's contact address
(encrypted like the NHS number), safety alerts, link status and ePRO completion by site and
visit. Split from :mod:`cryoneuro.registry.services.epro` (the links and the participant's
side) to keep each module readable.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.registry.audit import acting
from cryoneuro.registry.auth import Actor
from cryoneuro.registry.errors import ConflictError, NotFoundError, RegistryInputError
from cryoneuro.registry.identifiers import encrypt_identifier
from cryoneuro.registry.models import (
    EproAlert,
    EproLink,
    Participant,
    ParticipantContact,
    Site,
    utcnow,
)
from cryoneuro.registry.services.participants import get_participant
from cryoneuro.registry.settings import RegistrySettings


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def set_contact_email(
    session: Session, settings: RegistrySettings, actor: Actor, participant_id: int, email: str
) -> None:
    """Store (or replace) the participant's e-mail address, Fernet-encrypted like the NHS
    number; the audit trail records that it changed, never the address."""
    participant = get_participant(session, actor, participant_id)
    actor.require_write(participant.site_id)
    email = email.strip()
    local, at, domain = email.partition("@")
    if (
        not at
        or not local
        or "." not in domain
        or len(email) > 254
        or any(c in email for c in " <>,;\r\n")
    ):
        raise RegistryInputError("not an e-mail address (name@example.org)", "email")
    row = session.scalar(
        select(ParticipantContact).where(ParticipantContact.participant_id == participant.id)
    )
    encrypted = encrypt_identifier(settings, email)
    if row is None:
        with acting(session, actor):
            session.add(
                ParticipantContact(participant_id=participant.id, email_encrypted=encrypted)
            )
    else:
        with acting(session, actor, reason="contact e-mail address changed"):
            row.email_encrypted, row.updated_at = encrypted, utcnow()


def has_contact(session: Session, participant_id: int) -> bool:
    return bool(
        session.scalar(
            select(ParticipantContact.id).where(ParticipantContact.participant_id == participant_id)
        )
    )


def acknowledge_alert(session: Session, actor: Actor, alert_id: int) -> EproAlert:
    alert = session.get(EproAlert, alert_id) if isinstance(alert_id, int) else None
    if alert is None:
        raise NotFoundError("no such alert at your sites")
    actor.require_write(alert.site_id)
    if alert.acknowledged_at is not None:
        raise ConflictError("this alert is already acknowledged")
    with acting(session, actor, reason="safety alert acknowledged by site staff"):
        alert.acknowledged_at, alert.acknowledged_by = utcnow(), actor.username
    return alert


def open_alerts(session: Session, actor: Actor) -> list[EproAlert]:
    query = select(EproAlert).where(EproAlert.acknowledged_at.is_(None)).order_by(EproAlert.id)
    if not actor.all_sites:
        query = query.where(EproAlert.site_id.in_(sorted(actor.site_ids) or [-1]))
    return list(session.scalars(query))


def participant_links(session: Session, actor: Actor, participant_id: int) -> list[EproLink]:
    participant = get_participant(session, actor, participant_id)
    return list(
        session.scalars(
            select(EproLink).where(EproLink.participant_id == participant.id).order_by(EproLink.id)
        )
    )


def link_status(link: EproLink, now: dt.datetime | None = None) -> str:
    now = now or utcnow()
    if link.submitted_at is not None:
        return "submitted"
    if link.revoked_at is not None:
        return "revoked"
    if _aware(link.expires_at) <= now:
        return "expired"
    return "opened" if link.first_opened_at is not None else "sent"


def completion(session: Session, actor: Actor) -> list[dict[str, Any]]:
    """ePRO completion by site and visit: participants invited (any link), who opened one, who
    submitted, and the share submitted of those invited."""
    query = select(EproLink, Participant.site_id).join(
        Participant, Participant.id == EproLink.participant_id
    )
    if not actor.all_sites:
        query = query.where(Participant.site_id.in_(sorted(actor.site_ids) or [-1]))
    sites = {s.id: s.code for s in session.scalars(select(Site))}
    groups: dict[tuple[str, str], dict[str, set[int]]] = {}
    for link, site_id in session.execute(query):
        group = groups.setdefault(
            (sites[site_id], link.visit_code), {"invited": set(), "opened": set(), "done": set()}
        )
        group["invited"].add(link.participant_id)
        if link.first_opened_at is not None:
            group["opened"].add(link.participant_id)
        if link.submitted_at is not None:
            group["done"].add(link.participant_id)
    rows = []
    for (site, visit), group in sorted(groups.items()):
        invited = len(group["invited"])
        rows.append(
            {
                "site": site,
                "visit_code": visit,
                "invited": invited,
                "opened": len(group["opened"]),
                "submitted": len(group["done"]),
                "completion_percent": round(100 * len(group["done"]) / invited, 1)
                if invited
                else None,
            }
        )
    return rows
