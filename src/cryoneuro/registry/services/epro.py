"""Participant self-report (ePRO): one-time links, resumable answers, submission, safety alerts.

Why the link is built as it is (issue 14):

- **Signed** with the registry's session key (itsdangerous, the machinery of the password-reset
  links, with its own salt), so a forged or altered link is refused before the database is
  asked; the payload binds the link to one participant and one visit.
- **Stored hashed**: the database keeps only SHA-256 of the token (as for log-in sessions,
  sessions.py), so a copy of the database opens no questionnaire.
- **Expiring** (``epro_link_ttl_days``), **revocable** by site staff, and **single-use**: after
  submission the link answers 410 with a page saying so. Rotating the session key
  (``cryoneuro keys rotate-session``) invalidates every outstanding link, by design.
- **Same path as staff entry**: a submission calls
  :func:`cryoneuro.registry.services.clinical.record_followup`, so answers are validated and
  scored by :mod:`cryoneuro.instruments` exactly as staff entry is and the stored row is the
  same. The acting user is ``participant:<study number>`` and every audit entry carries the
  reason ``source: participant-entered (ePRO link N)``.

The questionnaire set of a visit is the study schedule's instruments (*requested*, required at
submission) plus the rest of the ePRO set (pain NRS, EQ-5D-5L with EQ VAS, MOXFQ or the
stump/phantom set, BPI, mobility; *optional*). Rule: MOXFQ (a foot questionnaire) is asked only
for a Morton's neuroma; for any other neuroma the stump/phantom set takes its place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.instruments import Item
from cryoneuro.registry.audit import acting, log_event
from cryoneuro.registry.auth import Actor
from cryoneuro.registry.errors import (
    ConflictError,
    NotFoundError,
    RegistryError,
    RegistryInputError,
)
from cryoneuro.registry.instruments_bridge import ITEM_SPECS, check_answer
from cryoneuro.registry.models import (
    EproAlert,
    EproLink,
    FollowUpVisit,
    Participant,
    Role,
    VisitDefinition,
    utcnow,
)
from cryoneuro.registry.models.epro import CHANGE_SINCE_PROCEDURE
from cryoneuro.registry.schemas import FollowUpIn
from cryoneuro.registry.services.clinical import record_followup
from cryoneuro.registry.services.participants import get_participant
from cryoneuro.registry.settings import RegistrySettings

SALT = "cryoneuro-epro-link-v1"
#: The order instruments are asked in; MOXFQ or stump by neuroma type (module docstring).
EPRO_ORDER = ("nrs", "eq5d5l", "moxfq", "stump", "bpi", "mobility")
#: 0–10 pain ratings checked against ``epro_high_risk_pain``.
PAIN_ITEMS = (
    ("nrs", "pain"),
    ("bpi", "worst"),
    ("bpi", "now"),
    ("stump", "residual_limb_pain"),
    ("stump", "phantom_pain"),
)
SOURCE_REASON = "source: participant-entered (ePRO link {id})"


class EproLinkError(RegistryError):
    """A link that cannot be used: unknown or altered (404), or expired, revoked or already
    submitted (410). ``title`` heads the participant's page."""

    def __init__(self, message: str, status_code: int = 410, title: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.title = title or "This link cannot be used"


class EproConfigError(RegistryError):
    """The registry is not set up to build links (no public address)."""

    exit_code = 2
    status_code = 409


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _serializer(settings: RegistrySettings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=SALT)


def link_url(settings: RegistrySettings, token: str) -> str:
    """The participant's address for ``token``, built from the configured public address
    (never from a request's Host header)."""
    base = settings.public_base_url.strip().rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise EproConfigError(
            "links need the registry's public address: set CRYONEURO_PUBLIC_BASE_URL "
            "(e.g. https://registry.example.nhs.uk)"
        )
    return f"{base}/epro/{token}"


def participant_actor(participant: Participant) -> Actor:
    """The participant as the acting user: may write this one participant's site's data only
    through the ePRO routes (which never take a participant or visit from the request)."""
    return Actor(
        None,
        f"participant:{participant.study_number}"[:80],
        Role.data_entry.value,
        frozenset({participant.site_id}),
    )


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def visit_definition(session: Session, participant: Participant, code: str) -> VisitDefinition:
    definition = session.scalar(
        select(VisitDefinition).where(
            VisitDefinition.study_id == participant.study_id, VisitDefinition.code == code
        )
    )
    if definition is None:
        raise RegistryInputError(f"unknown visit '{code[:40]}' in this study", "visit_code")
    return definition


def questionnaire(participant: Participant, definition: VisitDefinition) -> list[tuple[str, bool]]:
    """(instrument, requested) in the order asked; see the module docstring for the rule."""
    mortons = any(n.neuroma_type == "mortons" for n in participant.neuromas)
    foot = "moxfq" if mortons else "stump"
    other = "stump" if mortons else "moxfq"
    scheduled = [foot if code == other else code for code in definition.instruments]
    wanted = [code for code in EPRO_ORDER if code != other]
    wanted += [code for code in scheduled if code not in wanted and code in ITEM_SPECS]
    return [(code, code in scheduled) for code in wanted]


# --- issuing, revoking ------------------------------------------------------------------------


def issue_link(
    session: Session,
    settings: RegistrySettings,
    actor: Actor,
    participant_id: int,
    visit_code: str,
    now: dt.datetime | None = None,
) -> tuple[EproLink, str]:
    """A new link for one participant and visit; returns the row and the token (shown or
    e-mailed once, stored only hashed). Earlier open links for the same visit are revoked and
    their saved answers carried over, so the participant resumes where they left off."""
    participant = get_participant(session, actor, participant_id)
    actor.require_write(participant.site_id)
    if participant.status == "withdrawn":
        raise RegistryInputError("participant has withdrawn: no ePRO links", "participant_id")
    definition = visit_definition(session, participant, visit_code)
    if session.scalar(
        select(FollowUpVisit.id).where(
            FollowUpVisit.participant_id == participant.id,
            FollowUpVisit.visit_code == definition.code,
        )
    ):
        raise ConflictError(f"visit {definition.code} is already recorded: no link needed")
    now = now or utcnow()
    draft: dict[str, Any] = {}
    change = None
    with acting(session, actor, reason="superseded by a new link"):
        for old in open_links(session, participant.id, definition.code):
            draft, change = old.draft or draft, old.change_since_procedure or change
            old.revoked_at, old.revoked_by = now, actor.username
    nonce = secrets.token_urlsafe(16)
    token = _serializer(settings).dumps({"p": participant.id, "v": definition.code, "n": nonce})
    link = EproLink(
        participant_id=participant.id,
        visit_code=definition.code,
        token_hash=token_hash(token),
        created_at=now,
        created_by=actor.username,
        expires_at=now + dt.timedelta(days=settings.epro_link_ttl_days),
        draft=draft,
        change_since_procedure=change,
    )
    with acting(session, actor):
        session.add(link)
    session.flush()
    return link, token


def open_links(session: Session, participant_id: int, visit_code: str) -> list[EproLink]:
    return list(
        session.scalars(
            select(EproLink).where(
                EproLink.participant_id == participant_id,
                EproLink.visit_code == visit_code,
                EproLink.revoked_at.is_(None),
                EproLink.submitted_at.is_(None),
            )
        )
    )


def revoke_link(session: Session, actor: Actor, link_id: int, reason: str) -> EproLink:
    """Stop a link working (site staff); the reason goes into the audit trail."""
    link = session.get(EproLink, link_id) if isinstance(link_id, int) else None
    if link is None:
        raise NotFoundError("no such ePRO link at your sites")
    participant = get_participant(session, actor, link.participant_id)
    actor.require_write(participant.site_id)
    if link.submitted_at is not None:
        raise ConflictError("this link has been used: the answers are recorded")
    if link.revoked_at is not None:
        raise ConflictError("this link is already revoked")
    if len(reason.strip()) < 3:
        raise RegistryInputError("a reason is required to revoke a link", "reason")
    with acting(session, actor, reason=reason.strip()):
        link.revoked_at, link.revoked_by = utcnow(), actor.username
    return link


# --- the participant's side ------------------------------------------------------------------


@dataclass
class OpenLink:
    """A usable link with what the participant's page needs."""

    link: EproLink
    participant: Participant
    definition: VisitDefinition
    instruments: list[tuple[str, bool]]


def open_link(
    session: Session, settings: RegistrySettings, token: str, now: dt.datetime | None = None
) -> OpenLink:
    """The link for ``token`` if it can be used now, else :class:`EproLinkError` (404 for an
    unknown or altered token, 410 for expired, revoked or already used)."""
    now = now or utcnow()
    invalid = EproLinkError(
        "This link is not valid. Please use the link in your most recent e-mail, or "
        "contact your clinic.",
        404,
        "Link not recognised",
    )
    if not isinstance(token, str) or not 20 <= len(token) <= 300:
        raise invalid
    max_age_s = (settings.epro_link_ttl_days + 1) * 86400
    try:
        payload = _serializer(settings).loads(token, max_age=max_age_s)
    except SignatureExpired:
        raise EproLinkError(
            "This link has expired. Your clinic will send you a new one if needed.",
            410,
            "Link expired",
        ) from None
    except BadSignature:
        raise invalid from None
    link = session.scalar(select(EproLink).where(EproLink.token_hash == token_hash(token)))
    if (
        link is None
        or not isinstance(payload, dict)
        or payload.get("p") != link.participant_id
        or not hmac.compare_digest(str(payload.get("v")), link.visit_code)
    ):
        raise invalid
    if link.submitted_at is not None:
        raise EproLinkError(
            "Your answers for this visit have already been sent. Thank you: there is nothing "
            "more to do. The link cannot be used again.",
            410,
            "Already submitted",
        )
    if link.revoked_at is not None:
        raise EproLinkError(
            "This link has been withdrawn by your clinic. Please use the link in your most "
            "recent e-mail, or contact your clinic.",
            410,
            "Link withdrawn",
        )
    if _aware(link.expires_at) <= now:
        raise EproLinkError(
            "This link has expired. Your clinic will send you a new one if needed.",
            410,
            "Link expired",
        )
    participant = session.get(Participant, link.participant_id)
    assert participant is not None
    if participant.status == "withdrawn":
        raise EproLinkError("This study has ended for you: no answers are needed.", 410)
    definition = visit_definition(session, participant, link.visit_code)
    if session.scalar(
        select(FollowUpVisit.id).where(
            FollowUpVisit.participant_id == participant.id,
            FollowUpVisit.visit_code == link.visit_code,
        )
    ):
        raise EproLinkError(
            "Your clinic has already recorded this follow-up visit: there is nothing more to "
            "do. Thank you.",
            410,
            "Already recorded",
        )
    return OpenLink(link, participant, definition, questionnaire(participant, definition))


@dataclass
class DraftResult:
    """Saved answers (text, as typed), per-field errors and high-risk reasons."""

    draft: dict[str, dict[str, str]]
    change: str | None
    errors: dict[str, str] = field(default_factory=dict)
    high_risk: list[str] = field(default_factory=list)


def plain_allowed(item: Item) -> str:
    """What the item accepts, in words for a participant (the ranges are the instrument's)."""
    if item.kind == "choice":
        return "Please choose one of the answers."
    noun = "a whole number" if item.kind == "integer" else "a number"
    if item.min is not None and item.max is not None:
        return f"Please enter {noun} from {item.min:g} to {item.max:g}."
    return f"Please enter {noun}."


def parse_form(opened: OpenLink, form: dict[str, Any]) -> DraftResult:
    """Answers from the posted form: only this link's instruments and their items are read
    (anything else in the form is ignored), each checked against its range."""
    draft: dict[str, dict[str, str]] = {}
    errors: dict[str, str] = {}
    for code, _requested in opened.instruments:
        for item in ITEM_SPECS[code].values():
            name = f"answers.{code}.{item.name}"
            raw = form.get(name)
            if not isinstance(raw, str) or not raw.strip():
                continue
            try:  # the instrument's own check of the item (instruments_bridge.py)
                value = check_answer(code, item, raw.strip()[:40])
            except RegistryInputError:
                errors[name] = plain_allowed(item)
                continue
            draft.setdefault(code, {})[item.name] = str(value)
    change = form.get("change_since_procedure")
    if change not in CHANGE_SINCE_PROCEDURE:
        change = None
    return DraftResult(draft, change, errors)


def high_risk_reasons(
    settings: RegistrySettings, draft: dict[str, dict[str, str]], change: str | None
) -> list[str]:
    """Which answers are high-risk under the configured rules (settings)."""
    reasons = [
        f"{code}.{item} = {draft[code][item]}"
        for code, item in PAIN_ITEMS
        if item in draft.get(code, {}) and int(draft[code][item]) >= settings.epro_high_risk_pain
    ]
    if change is not None and change in settings.epro_high_risk_change:
        reasons.append(f"pain since the procedure: {change.replace('_', ' ')}")
    return reasons


def _alert(session: Session, opened: OpenLink, reasons: list[str], actor: Actor) -> None:
    alert = session.scalar(select(EproAlert).where(EproAlert.link_id == opened.link.id))
    if alert is None:
        with acting(session, actor, reason=SOURCE_REASON.format(id=opened.link.id)):
            session.add(
                EproAlert(
                    participant_id=opened.participant.id,
                    site_id=opened.participant.site_id,
                    link_id=opened.link.id,
                    visit_code=opened.link.visit_code,
                    reasons=reasons,
                )
            )
        return
    new = [r for r in reasons if r not in alert.reasons]
    if new:  # a further high-risk answer re-opens an acknowledged alert
        with acting(session, actor, reason=SOURCE_REASON.format(id=opened.link.id)):
            alert.reasons = [*alert.reasons, *new]
            alert.acknowledged_at, alert.acknowledged_by = None, None


def save_draft(
    session: Session, settings: RegistrySettings, opened: OpenLink, form: dict[str, Any]
) -> DraftResult:
    """Keep the valid answers so far (resumable) and alert the site on a high-risk answer."""
    result = parse_form(opened, form)
    result.high_risk = high_risk_reasons(settings, result.draft, result.change)
    actor = participant_actor(opened.participant)
    link = opened.link
    if result.draft != (link.draft or {}) or result.change != link.change_since_procedure:
        with acting(session, actor, reason=SOURCE_REASON.format(id=link.id) + ", saved"):
            link.draft = result.draft
            link.change_since_procedure = result.change
    if result.high_risk:
        _alert(session, opened, result.high_risk, actor)
    session.flush()
    return result


def submit(
    session: Session,
    settings: RegistrySettings,
    opened: OpenLink,
    result: DraftResult,
    today: dt.date | None = None,
) -> FollowUpVisit:
    """Record the saved answers through the staff-entry service; the link is then spent.

    Refused (422 naming the item) when a requested questionnaire is unanswered, a started one
    is incomplete, or nothing is answered.
    """
    if result.errors:
        name, message = next(iter(result.errors.items()))
        raise RegistryInputError(message, name)
    answered = {code: items for code, items in result.draft.items() if items}
    for code, requested in opened.instruments:
        if requested and code not in answered:
            first = next(iter(ITEM_SPECS[code]))
            raise RegistryInputError(
                "Please answer this question: your clinic asked for it at this visit.",
                f"answers.{code}.{first}",
            )
    if result.change is None:
        raise RegistryInputError(
            "Please say how your pain has changed since the procedure.", "change_since_procedure"
        )
    link = opened.link
    actor = participant_actor(opened.participant)
    reason = SOURCE_REASON.format(id=link.id)
    data = FollowUpIn(
        visit_code=link.visit_code, visit_date=today or dt.date.today(), answers=answered
    )
    # the create entry of the visit names the participant as the acting user
    visit = record_followup(session, actor, opened.participant.id, data)
    with acting(session, actor, reason=reason + ", submitted"):
        link.submitted_at = utcnow()
        link.followup_visit_id = visit.id
    log_event(
        session,
        actor,
        "epro-done",
        table="followup_visit",
        row_id=str(visit.id),
        details={"source": "participant", "link_id": link.id, "visit_code": link.visit_code},
        site_id=opened.participant.site_id,
        reason=reason,
    )
    return visit


def mark_opened(session: Session, opened: OpenLink) -> None:
    if opened.link.first_opened_at is None:
        actor = participant_actor(opened.participant)
        with acting(session, actor, reason=SOURCE_REASON.format(id=opened.link.id) + ", opened"):
            opened.link.first_opened_at = utcnow()
