"""Participant self-report (ePRO): one-time links, participants' contact addresses, safety
alerts, the reminder log and the sites' notification addresses (issue 14).

Why these tables and not columns on existing ones: a follow-up visit entered by a participant
is an ordinary :class:`~cryoneuro.registry.models.clinical.FollowUpVisit` written by the same
service as staff entry, so the two produce identical rows; everything about *how* it was
collected (the link, its draft, who was reminded when) lives here.

- :class:`EproLink`: a link for one participant and one visit. Only the SHA-256 of the signed
  token is stored, so a copy of the database gives no working link. Revocable, expiring, and
  single-use (``submitted_at``). ``draft`` keeps partial answers so the questionnaire can be
  resumed; it is redacted in the audit trail (the submitted answers are audited in full).
- :class:`ParticipantContact`: the participant's e-mail address, Fernet-encrypted with the
  identifier key exactly like the NHS number (never in the audit trail in clear).
- :class:`EproAlert`: a high-risk answer (e.g. worst pain 10, "much worse" since the
  procedure) for the site to act on; shown to site staff and in the daily digest.
- :class:`ReminderLog`: one row per e-mail sent, unique on ``dedup_key`` (participant + visit
  + kind, or site + day for digests), which makes ``cryoneuro reminders send`` idempotent.
- :class:`SiteNotification`: where a site's due/overdue digest goes (staff accounts carry no
  e-mail address).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cryoneuro.registry.models.base import Base, JSONType, utcnow

#: How the participant felt their pain had changed since the procedure (a global impression
#: of change, asked on every ePRO form for the safety check; not a scored instrument).
CHANGE_SINCE_PROCEDURE = (
    "much_better",
    "a_little_better",
    "about_the_same",
    "a_little_worse",
    "much_worse",
)


class EproLink(Base):
    """A one-time self-report link for one participant and one scheduled visit."""

    __tablename__ = "epro_link"
    __table_args__ = (Index("ix_epro_link_participant_visit", "participant_id", "visit_code"),)
    __audit_redact__ = frozenset({"token_hash", "draft"})

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"))
    visit_code: Mapped[str] = mapped_column(String(40))
    #: SHA-256 (hex) of the signed token; the token itself is only ever in the e-mail.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(80))
    first_opened_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    followup_visit_id: Mapped[int | None] = mapped_column(ForeignKey("followup_visit.id"))
    #: Partial answers (instrument → item → text) saved by the participant, for resuming.
    draft: Mapped[dict] = mapped_column(JSONType, default=dict)
    #: The participant's global impression of change since the procedure (safety item).
    change_since_procedure: Mapped[str | None] = mapped_column(String(20))


class ParticipantContact(Base):
    """A participant's e-mail address for ePRO links, encrypted like the NHS number."""

    __tablename__ = "participant_contact"
    __audit_redact__ = frozenset({"email_encrypted"})

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), unique=True)
    email_encrypted: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EproAlert(Base):
    """A high-risk self-reported answer, open until a member of the site acknowledges it."""

    __tablename__ = "epro_alert"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("epro_link.id"), unique=True)
    visit_code: Mapped[str] = mapped_column(String(40))
    #: Which answers triggered it, e.g. ["nrs.pain = 10", "change since procedure: much worse"].
    reasons: Mapped[list] = mapped_column(JSONType, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(80))


class ReminderLog(Base):
    """One e-mail sent by ``cryoneuro reminders send``; ``dedup_key`` makes re-runs no-ops."""

    __tablename__ = "reminder_log"
    __audited__ = False  # an operational log (no study data); never updated
    __table_args__ = (CheckConstraint("kind IN ('due', 'overdue', 'digest')", name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: ``p<participant id>:<visit code>:<kind>`` or ``s<site id>:<date>:digest``.
    dedup_key: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participant.id"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"))
    visit_code: Mapped[str | None] = mapped_column(String(40))
    link_id: Mapped[int | None] = mapped_column(ForeignKey("epro_link.id"))
    sent_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SiteNotification(Base):
    """The address a site's due/overdue digest and safety alerts are e-mailed to."""

    __tablename__ = "site_notification"

    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
