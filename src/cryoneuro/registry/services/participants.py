"""Screening, enrolment and reading participants (identifiers only for roles that need them)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from cryoneuro.registry.audit import acting, log_event
from cryoneuro.registry.auth import Actor
from cryoneuro.registry.errors import ConflictError, NotFoundError, RegistryInputError
from cryoneuro.registry.identifiers import (
    decrypt_identifier,
    encrypt_identifier,
    identifier_hash,
)
from cryoneuro.registry.models import (
    Consent,
    EligibilityAnswer,
    Neuroma,
    Participant,
    ParticipantIdentifier,
    Site,
    Study,
    StudySite,
)
from cryoneuro.registry.nhs import is_test_nhs_number, normalise_nhs_number
from cryoneuro.registry.randomisation import is_eligible
from cryoneuro.registry.schemas import EnrolmentIn
from cryoneuro.registry.services.setup import get_site, get_study
from cryoneuro.registry.settings import RegistrySettings

MAX_ID = 2**31 - 1


def valid_id(value: object) -> bool:
    """Ids outside the integer column range are simply not found (never a driver error)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def enrol(
    session: Session, settings: RegistrySettings, actor: Actor, data: EnrolmentIn
) -> Participant:
    """Screen and enrol: refuses ineligible or unconsented participants and duplicates."""
    study = get_study(session, data.study_code)
    site = get_site(session, data.site_code)
    actor.require_write(site.id)
    if not session.get(StudySite, (study.id, site.id)):
        raise RegistryInputError(
            f"site {site.code} does not take part in {study.code}", "site_code"
        )
    nhs_number = normalise_nhs_number(data.nhs_number)
    if is_test_nhs_number(nhs_number) and not study.test_study:
        raise RegistryInputError(
            "this is a test-range NHS number (999… or 0000000000): "
            f"{study.code} is not a test study",
            "nhs_number",
        )
    adult = data.eligibility.get("adult")
    if adult is not None and adult != (data.age_at_enrolment_years >= 18):
        raise RegistryInputError(
            f"'18 or over' answered {'yes' if adult else 'no'} but the age is "
            f"{data.age_at_enrolment_years}",
            "eligibility.adult",
        )
    if not data.consented:
        raise RegistryInputError("written informed consent is required to enrol", "consented")
    if data.consent_date > data.enrolment_date:
        raise RegistryInputError("consent must be on or before the enrolment date", "consent_date")
    known = {c.code: c.kind for c in study.criteria}
    for code in data.eligibility:
        if code not in known:
            raise RegistryInputError(
                f"unknown eligibility criterion '{code}'", f"eligibility.{code}"
            )
    for criterion in study.criteria:
        answer = data.eligibility.get(criterion.code)
        if answer is None:
            raise RegistryInputError(
                f"criterion '{criterion.code}' must be answered", f"eligibility.{criterion.code}"
            )
        if (criterion.kind == "inclusion") != answer:
            raise RegistryInputError(
                f"not eligible: {criterion.kind} criterion '{criterion.code}' "
                f"{'not met' if criterion.kind == 'inclusion' else 'present'}",
                f"eligibility.{criterion.code}",
            )
    digest = identifier_hash(settings, nhs_number)
    if session.scalar(
        select(ParticipantIdentifier.id).where(
            ParticipantIdentifier.study_id == study.id,
            ParticipantIdentifier.nhs_number_hash == digest,
        )
    ):
        raise ConflictError("a participant with this NHS number is already in the study")
    # Lock the site row so two enrolments never take the same study number (PostgreSQL).
    session.scalars(select(Site).where(Site.id == site.id).with_for_update()).one()
    count = (
        session.scalar(
            select(func.count(Participant.id)).where(
                Participant.study_id == study.id, Participant.site_id == site.id
            )
        )
        or 0
    )
    participant = Participant(
        study_id=study.id,
        site_id=site.id,
        study_number=f"{study.code}-{site.code}-{count + 1:04d}",
        sex=data.sex.value,
        age_at_enrolment_years=data.age_at_enrolment_years,
        enrolment_date=data.enrolment_date,
        status="enrolled",
    )
    with acting(session, actor):
        session.add(participant)
        session.flush()
        session.add(
            ParticipantIdentifier(
                participant_id=participant.id,
                study_id=study.id,
                nhs_number_encrypted=encrypt_identifier(settings, nhs_number),
                nhs_number_hash=digest,
            )
        )
        session.add(
            Consent(
                participant_id=participant.id,
                consent_date=data.consent_date,
                form_version=data.consent_form_version,
                consented=True,
            )
        )
        for code, answer in data.eligibility.items():
            session.add(
                EligibilityAnswer(participant_id=participant.id, criterion_code=code, answer=answer)
            )
        session.add(Neuroma(participant_id=participant.id, **data.neuroma.model_dump(mode="json")))
    session.refresh(participant)
    assert is_eligible(participant, study)
    return participant


def withdraw(
    session: Session, actor: Actor, participant_id: int, withdrawal_date: dt.date, reason: str
) -> Participant:
    """Record withdrawal of consent (audited with its reason); later writes are refused."""
    participant = get_participant(session, actor, participant_id)
    actor.require_write(participant.site_id)
    if participant.status == "withdrawn":
        raise ConflictError(f"{participant.study_number} has already withdrawn")
    if withdrawal_date < participant.enrolment_date:
        raise RegistryInputError("withdrawal is before enrolment", "withdrawal_date")
    if withdrawal_date > dt.date.today() + dt.timedelta(days=1):
        raise RegistryInputError("date is in the future", "withdrawal_date")
    if not reason or len(reason.strip()) < 3:
        raise RegistryInputError("a reason for withdrawal is required", "reason")
    with acting(session, actor, reason=reason):
        participant.status = "withdrawn"
        for consent in participant.consents:
            if consent.withdrawal_date is None:
                consent.withdrawal_date = withdrawal_date
    return participant


def get_participant(session: Session, actor: Actor, participant_id: int) -> Participant:
    """The participant if it exists at one of the actor's sites (404 otherwise)."""
    participant = session.get(Participant, participant_id) if valid_id(participant_id) else None
    if participant is None:
        raise NotFoundError("no such participant at your sites")
    actor.require_site(participant.site_id)
    return participant


def find_by_study_number(session: Session, actor: Actor, study_number: str) -> Participant:
    participant = session.scalar(
        select(Participant).where(Participant.study_number == study_number)
    )
    if participant is None:
        raise NotFoundError("no such participant at your sites")
    actor.require_site(participant.site_id)
    return participant


def list_participants(
    session: Session, actor: Actor, *, with_records: bool = False
) -> list[Participant]:
    """The participants the actor may see; ``with_records`` loads their procedures, visits
    and adverse events in three batched queries (not three per participant)."""
    query = select(Participant).order_by(Participant.id)
    if with_records:
        query = query.options(
            selectinload(Participant.procedures),
            selectinload(Participant.visits),
            selectinload(Participant.adverse_events),
        )
    if not actor.all_sites:
        query = query.where(Participant.site_id.in_(actor.site_ids or {-1}))
    return list(session.scalars(query))


#: Rows per page of the participant list (dashboard page; API ``limit`` at most PAGE_MAX).
PAGE_SIZE = 100
PAGE_MAX = 1000


def participant_rows(
    session: Session,
    actor: Actor,
    *,
    limit: int | None = None,
    offset: int = 0,
    total: int | None = None,
) -> tuple[list[Any], int]:
    """One page of the participants the actor may see, in id order, as light rows (``id``,
    ``study_number``, ``status``, ``site_id``; no ORM objects), and how many there are in all.

    Why: the dashboard and ``GET /api/participants`` built a :class:`Participant` object for
    each of thousands of participants per request (benchmarks/registry_load.py --mix pages);
    a page of rows and one COUNT cost the same at any registry size. ``limit=None`` returns
    every row (the API's unpaged default). ``total``: the count, when the caller has it
    already (the dashboard's cached participant total); not counted again.
    """
    query = select(
        Participant.id, Participant.study_number, Participant.status, Participant.site_id
    ).order_by(Participant.id)
    count = select(func.count()).select_from(Participant)
    if not actor.all_sites:
        query = query.where(Participant.site_id.in_(actor.site_ids or {-1}))
        count = count.where(Participant.site_id.in_(actor.site_ids or {-1}))
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    rows = list(session.execute(query))
    if limit is None and not offset:
        return rows, len(rows)
    if total is not None:
        return rows, total
    return rows, int(session.scalar(count) or 0)


def nhs_number(
    session: Session, settings: RegistrySettings, actor: Actor, participant: Participant
) -> str | None:
    """The decrypted NHS number for roles that need it; None for everyone else. Each reading
    is audited (who, which participant, when; never the number itself)."""
    if not actor.sees_identifiers or participant.identifier is None:
        return None
    number = decrypt_identifier(settings, participant.identifier.nhs_number_encrypted)
    log_event(
        session,
        actor,
        "view-nhs",
        table="participant",
        row_id=str(participant.id),
        details={"study_number": participant.study_number},
        site_id=participant.site_id,
    )
    return number


BLINDED = "blinded"


def visible_arm(session: Session, actor: Actor, participant: Participant) -> str | None:
    """The arm as this actor may see it: ``"blinded"`` for a role the study keeps blind."""
    if participant.arm_code is None:
        return None
    study = session.get(Study, participant.study_id)
    return BLINDED if actor.blinded(study) else participant.arm_code


def participant_summary(
    session: Session, settings: RegistrySettings, actor: Actor, participant: Participant
) -> dict[str, Any]:
    """A JSON-ready view of the participant; the arm only once randomised."""
    result: dict[str, Any] = {
        "id": participant.id,
        "study_number": participant.study_number,
        "site_id": participant.site_id,
        "study_id": participant.study_id,
        "sex": participant.sex,
        "age_at_enrolment_years": participant.age_at_enrolment_years,
        "enrolment_date": participant.enrolment_date.isoformat(),
        "status": participant.status,
        "arm_code": visible_arm(session, actor, participant),
        "neuromas": [
            {
                "id": n.id,
                "neuroma_type": n.neuroma_type,
                "anatomical_site": n.anatomical_site,
                "laterality": n.laterality,
                "size_mm": n.size_mm,
                "prior_treatments": n.prior_treatments,
            }
            for n in participant.neuromas
        ],
        "procedures": [
            {
                "id": p.id,
                "procedure_date": p.procedure_date.isoformat(),
                "device_name": p.device_name,
                "device_lot": p.device_lot,
                "gas": p.gas,
                "predicted_relief_days": p.predicted_relief_days,
                "has_plan": p.plan is not None,
            }
            for p in participant.procedures
        ],
        "visits": [
            {
                "id": v.id,
                "visit_code": v.visit_code,
                "visit_date": v.visit_date.isoformat(),
                "answers": v.answers,
                "scores": v.scores,
            }
            for v in participant.visits
        ],
        "adverse_events": [
            {
                "id": e.id,
                "onset_date": e.onset_date.isoformat(),
                "category": e.category,
                "severity": e.severity,
                "serious": e.serious,
                "outcome": e.outcome,
            }
            for e in participant.adverse_events
        ],
        "reinterventions": [
            {"id": r.id, "date": r.reintervention_date.isoformat(), "kind": r.kind}
            for r in participant.reinterventions
        ],
    }
    if actor.sees_identifiers:
        result["nhs_number"] = nhs_number(session, settings, actor, participant)
    return result
