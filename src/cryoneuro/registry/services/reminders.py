"""Reminders: e-mail each participant the link for a due (or overdue) visit, and each site a
due/overdue digest; ``cryoneuro reminders send`` runs this from cron.

**Which visits.** Day 0 is the participant's first procedure; each scheduled visit with
``day > 0`` (the baseline is collected in clinic) has the window of the study schedule
(:func:`cryoneuro.registry.services.dashboard.visit_status`). A visit not yet recorded is

- *due* while its window is open: one ``due`` e-mail with a new link;
- *overdue* once the window has closed: one ``overdue`` e-mail with a new link, but only up to
  ``reminders_overdue_max_days`` after the close (after that the site chases by telephone).

Only enrolled (not withdrawn) participants with a contact address are e-mailed; those without
one are listed in their site's digest. A site's digest (once a day, to the site's notification
address) lists due and overdue visits, ePRO status, participants without an address and open
safety alerts, by study number only.

**Idempotent.** Each e-mail has a ``reminder_log`` row keyed ``p<participant>:<visit>:<kind>``
(or ``s<site>:<date>:digest``) with a UNIQUE constraint. Each e-mail is one transaction:
claim the key (insert + flush: a concurrent run waits or fails on the constraint), issue the
link, send, commit. A failed send rolls back, so the next run retries it; a crash between the
SMTP server accepting the message and the commit is the one case that can send twice.

**SMTP** through :mod:`smtplib` (standard library, no hand-written protocol): ``starttls``
(default), ``ssl`` or ``none``; credentials only from settings/environment, never defaults;
credentials over an unencrypted connection are refused.
"""

from __future__ import annotations

import datetime as dt
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cryoneuro.registry.audit import acting
from cryoneuro.registry.auth import Actor
from cryoneuro.registry.db import transaction
from cryoneuro.registry.errors import ConflictError, RegistryError, RegistryInputError
from cryoneuro.registry.identifiers import decrypt_identifier
from cryoneuro.registry.models import (
    EproAlert,
    EproLink,
    FollowUpVisit,
    Participant,
    ParticipantContact,
    Procedure,
    ReminderLog,
    Role,
    Site,
    SiteNotification,
    VisitDefinition,
)
from cryoneuro.registry.services import epro, epro_site
from cryoneuro.registry.services.dashboard import visit_status
from cryoneuro.registry.services.setup import get_site
from cryoneuro.registry.settings import RegistrySettings

#: The acting user of links issued by the reminder run (recorded in the audit trail).
REMINDER_ACTOR = Actor(None, "reminders", Role.administrator.value)
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


class SmtpNotConfiguredError(RegistryError):
    """Sending was asked for but SMTP settings are missing or unsafe."""

    exit_code = 2


class SendError(RegistryError):
    """The SMTP server refused or could not be reached."""

    exit_code = 1


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True)
class SmtpMailer:
    """Sends through one SMTP connection per message (reminder runs are small)."""

    host: str
    port: int
    security: str
    username: str
    password: str
    timeout_s: float

    @classmethod
    def from_settings(cls, settings: RegistrySettings) -> SmtpMailer:
        """Refuses, in one line, a configuration that is missing or would leak credentials."""
        if not settings.smtp_host.strip() or not settings.smtp_from.strip():
            raise SmtpNotConfiguredError(
                "SMTP is not configured: set CRYONEURO_SMTP_HOST and CRYONEURO_SMTP_FROM "
                "(and CRYONEURO_SMTP_USERNAME/PASSWORD if the relay needs them); see "
                "docs/registry.md, or use --dry-run"
            )
        security = settings.smtp_security.strip().lower()
        if security not in DEFAULT_PORTS:
            raise SmtpNotConfiguredError(
                f"CRYONEURO_SMTP_SECURITY must be starttls, ssl or none (got '{security[:20]}')"
            )
        if security == "none" and (settings.smtp_username or settings.smtp_password):
            raise SmtpNotConfiguredError(
                "refusing to send SMTP credentials over an unencrypted connection: set "
                "CRYONEURO_SMTP_SECURITY to starttls or ssl"
            )
        if bool(settings.smtp_username) != bool(settings.smtp_password):
            raise SmtpNotConfiguredError(
                "CRYONEURO_SMTP_USERNAME and CRYONEURO_SMTP_PASSWORD must be set together"
            )
        return cls(
            settings.smtp_host.strip(),
            settings.smtp_port or DEFAULT_PORTS[security],
            security,
            settings.smtp_username,
            settings.smtp_password,
            settings.smtp_timeout_s,
        )

    def send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        try:
            if self.security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout_s, context=context
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with client:
                if self.security == "starttls":
                    client.starttls(context=context)
                if self.username:
                    client.login(self.username, self.password)
                client.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(f"SMTP {self.host}:{self.port}: {exc}") from None


# --- what is due -----------------------------------------------------------------------------


@dataclass
class DueVisit:
    participant_id: int
    study_number: str
    site_id: int
    visit_code: str
    visit_label: str
    status: str  # due | overdue
    opens: dt.date
    closes: dt.date


def due_visits(session: Session, today: dt.date) -> list[DueVisit]:
    """Visits (day > 0) due or overdue today, for enrolled participants with a procedure."""
    day0 = dict(
        session.execute(
            select(Procedure.participant_id, func.min(Procedure.procedure_date)).group_by(
                Procedure.participant_id
            )
        ).all()
    )
    done = set(session.execute(select(FollowUpVisit.participant_id, FollowUpVisit.visit_code)))
    schedules: dict[int, list[VisitDefinition]] = {}
    for definition in session.scalars(
        select(VisitDefinition).where(VisitDefinition.day > 0).order_by(VisitDefinition.day)
    ):
        schedules.setdefault(definition.study_id, []).append(definition)
    out: list[DueVisit] = []
    for participant in session.scalars(
        select(Participant).where(Participant.status == "enrolled").order_by(Participant.id)
    ):
        start = day0.get(participant.id)
        if start is None:
            continue
        for definition in schedules.get(participant.study_id, []):
            status, opens, closes = visit_status(
                definition, start, (participant.id, definition.code) in done, today
            )
            if status in ("due", "overdue"):
                out.append(
                    DueVisit(
                        participant.id,
                        participant.study_number,
                        participant.site_id,
                        definition.code,
                        definition.label,
                        status,
                        opens,
                        closes,
                    )
                )
    return out


# --- messages ---------------------------------------------------------------------------------


def participant_message(
    settings: RegistrySettings, to: str, visit: DueVisit, url: str, expires: dt.date
) -> EmailMessage:
    """The invitation: no clinical details, nothing identifying beyond the address itself."""
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    late = " (now overdue)" if visit.status == "overdue" else ""
    message["Subject"] = f"Your follow-up questionnaire: {visit.visit_label}{late}"
    message.set_content(
        "Hello,\n\n"
        f"It is time for your {visit.visit_label} follow-up in the cryoablation study{late}. "
        "Please answer a few questions about your pain, health and mobility; it takes about "
        "10 minutes and works on a phone.\n\n"
        f"{url}\n\n"
        f"This link is for you only. It works once, until {expires.isoformat()}. You can stop "
        "and come back to it: press 'Save and finish later'.\n\n"
        "If you have questions, or feel unwell, please contact your clinical team.\n"
    )
    return message


@dataclass
class SiteDigest:
    site_id: int
    site_code: str
    due: list[DueVisit] = field(default_factory=list)
    overdue: list[DueVisit] = field(default_factory=list)
    no_contact: list[DueVisit] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    links: dict[tuple[int, str], str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.due or self.overdue or self.alerts)


def digest_message(settings: RegistrySettings, to: str, digest: SiteDigest, today: dt.date):
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = (
        f"cryoneuro {digest.site_code} {today.isoformat()}: {len(digest.due)} due, "
        f"{len(digest.overdue)} overdue, {len(digest.alerts)} open safety alert(s)"
    )
    lines = [f"Follow-up digest for site {digest.site_code} on {today.isoformat()}.", ""]
    if digest.alerts:
        lines.append("OPEN SAFETY ALERTS (self-reported high-risk answers; act today):")
        lines += [
            f"  - {a['study_number']} visit {a['visit_code']}: {'; '.join(a['reasons'])} "
            f"(raised {a['created_at']})"
            for a in digest.alerts
        ]
        lines.append("")
    for title, visits in (("Due (window open)", digest.due), ("Overdue", digest.overdue)):
        lines.append(f"{title}: {len(visits)}")
        lines += [
            f"  - {v.study_number} {v.visit_code} (window {v.opens} to {v.closes}); "
            f"ePRO: {digest.links.get((v.participant_id, v.visit_code), 'no link')}"
            for v in visits
        ]
        lines.append("")
    if digest.no_contact:
        lines.append("No contact e-mail on file (cannot be reminded by e-mail):")
        lines += [f"  - {v.study_number} {v.visit_code}" for v in digest.no_contact]
        lines.append("")
    lines.append("Study numbers only; see the registry for details.")
    message.set_content("\n".join(lines) + "\n")
    return message


# --- the run ----------------------------------------------------------------------------------


@dataclass
class ReminderReport:
    """What a run sent (or, with ``dry_run``, would send), skipped and failed."""

    dry_run: bool
    sent: list[dict[str, Any]] = field(default_factory=list)
    already_sent: int = 0
    no_contact: list[dict[str, Any]] = field(default_factory=list)
    #: Digests not sent because the site has no notification address (listed, not silent).
    no_site_address: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "sent": self.sent,
            "already_sent": self.already_sent,
            "no_contact": self.no_contact,
            "no_site_address": self.no_site_address,
            "failed": self.failed,
        }


def _key(visit: DueVisit) -> str:
    return f"p{visit.participant_id}:{visit.visit_code}:{visit.status}"


def _logged(session: Session, key: str) -> bool:
    return session.scalar(select(ReminderLog.id).where(ReminderLog.dedup_key == key)) is not None


def _claim(session: Session, log: ReminderLog) -> bool:
    """Insert the log row before anything is sent; False when another run holds the key
    (the UNIQUE constraint, for runs that passed the check at the same moment)."""
    if _logged(session, log.dedup_key):
        return False
    session.add(log)
    try:
        session.flush()
    except ConflictError:
        return False
    return True


def send_reminders(
    factory: sessionmaker[Session],
    settings: RegistrySettings,
    mailer: Mailer | None,
    *,
    today: dt.date | None = None,
    dry_run: bool = False,
    now: Callable[[], dt.datetime] | None = None,
) -> ReminderReport:
    """One reminder run (module docstring). ``mailer`` may be None only with ``dry_run``."""
    today = today or dt.date.today()
    report = ReminderReport(dry_run)
    if not dry_run:
        if mailer is None:
            raise SmtpNotConfiguredError("no mailer: configure SMTP or use --dry-run")
        epro.link_url(settings, "check")  # refuse early without a public address
    with factory() as session:
        visits = due_visits(session, today)
        contacts = dict(
            session.execute(
                select(ParticipantContact.participant_id, ParticipantContact.email_encrypted)
            ).all()
        )
        sites = {s.id: s for s in session.scalars(select(Site))}
    digests = {sid: SiteDigest(sid, site.code) for sid, site in sites.items()}
    for visit in visits:
        digest = digests[visit.site_id]
        (digest.due if visit.status == "due" else digest.overdue).append(visit)
        late_days = (today - visit.closes).days
        if visit.status == "overdue" and late_days > settings.reminders_overdue_max_days:
            continue
        entry = {
            "kind": visit.status,
            "participant": visit.study_number,
            "visit_code": visit.visit_code,
        }
        if visit.participant_id not in contacts:
            digest.no_contact.append(visit)
            report.no_contact.append(entry)
            continue
        key = _key(visit)
        if dry_run:
            with factory() as session:
                if _logged(session, key):
                    report.already_sent += 1
                else:
                    report.sent.append(entry)
            continue
        assert mailer is not None
        try:
            with transaction(factory) as session:
                log = ReminderLog(
                    dedup_key=key,
                    kind=visit.status,
                    participant_id=visit.participant_id,
                    site_id=visit.site_id,
                    visit_code=visit.visit_code,
                )
                if not _claim(session, log):
                    report.already_sent += 1
                    continue
                link, token = epro.issue_link(
                    session, settings, REMINDER_ACTOR, visit.participant_id, visit.visit_code
                )
                log.link_id = link.id
                address = decrypt_identifier(settings, contacts[visit.participant_id])
                mailer.send(
                    participant_message(
                        settings,
                        address,
                        visit,
                        epro.link_url(settings, token),
                        link.expires_at.date(),
                    )
                )
        except RegistryError as exc:
            report.failed.append({**entry, "error": str(exc)})
            continue
        report.sent.append(entry)
    _send_digests(factory, settings, mailer, digests, today, report)
    return report


def _link_states(session: Session) -> dict[tuple[int, str], str]:
    states: dict[tuple[int, str], str] = {}
    for link in session.scalars(select(EproLink).order_by(EproLink.id)):
        states[(link.participant_id, link.visit_code)] = epro_site.link_status(link)
    return states


def _send_digests(
    factory: sessionmaker[Session],
    settings: RegistrySettings,
    mailer: Mailer | None,
    digests: dict[int, SiteDigest],
    today: dt.date,
    report: ReminderReport,
) -> None:
    with factory() as session:
        addresses = {n.site_id: n.email for n in session.scalars(select(SiteNotification))}
        states = _link_states(session)
        numbers = dict(session.execute(select(Participant.id, Participant.study_number)).all())
        for alert in session.scalars(
            select(EproAlert).where(EproAlert.acknowledged_at.is_(None)).order_by(EproAlert.id)
        ):
            digests[alert.site_id].alerts.append(
                {
                    "study_number": numbers[alert.participant_id],
                    "visit_code": alert.visit_code,
                    "reasons": alert.reasons,
                    "created_at": alert.created_at.strftime("%Y-%m-%d %H:%M"),
                }
            )
    for site_id, digest in sorted(digests.items()):
        digest.links = states
        if digest.empty:
            continue
        if site_id not in addresses:
            report.no_site_address.append(digest.site_code)
            continue
        key = f"s{site_id}:{today.isoformat()}:digest"
        entry = {"kind": "digest", "site": digest.site_code}
        if _already_sent(factory, key, report):
            continue
        if report.dry_run:
            report.sent.append(entry)
            continue
        assert mailer is not None
        try:
            with transaction(factory) as session:
                log = ReminderLog(dedup_key=key, kind="digest", site_id=site_id)
                if not _claim(session, log):
                    report.already_sent += 1
                    continue
                mailer.send(digest_message(settings, addresses[site_id], digest, today))
        except RegistryError as exc:
            report.failed.append({**entry, "error": str(exc)})
            continue
        report.sent.append(entry)


def _already_sent(factory: sessionmaker[Session], key: str, report: ReminderReport) -> bool:
    """Whether ``key`` was sent by an earlier run (counted as already sent)."""
    with factory() as session:
        if _logged(session, key):
            report.already_sent += 1
            return True
    return False


def set_site_address(session: Session, actor: Actor, site_code: str, email: str) -> None:
    """Where a site's digest goes (administrators)."""
    actor.require(frozenset({Role.administrator}), "set site notification addresses")
    site = get_site(session, site_code)
    email = email.strip()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or len(email) > 254:
        raise RegistryInputError("not an e-mail address (name@example.org)", "email")
    row = session.get(SiteNotification, site.id)
    if row is None:
        with acting(session, actor):
            session.add(SiteNotification(site_id=site.id, email=email))
    else:
        with acting(session, actor, reason="site notification address changed"):
            row.email = email
