"""Allocating a participant to an arm, and breaking the blind in an emergency.

The concealed lists themselves (how they are generated and why) are in
:mod:`cryoneuro.registry.randomisation`; these are the two services that act on one
participant: they look the participant up with the site check of
:func:`~cryoneuro.registry.services.participants.get_participant` and write the audit trail.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.registry.audit import acting, log_event
from cryoneuro.registry.auth import WRITE_ROLES, Actor
from cryoneuro.registry.errors import PermissionDeniedError, RandomisationError, RegistryInputError
from cryoneuro.registry.models import (
    RandomisationSlot,
    RandomisationStratum,
    Study,
    StudyDesign,
    utcnow,
)
from cryoneuro.registry.randomisation import extend_list, is_eligible
from cryoneuro.registry.services.participants import get_participant
from cryoneuro.registry.settings import RegistrySettings


def randomise(
    session: Session, settings: RegistrySettings, actor: Actor, participant_id: int
) -> str:
    """Allocate the next concealed slot of the participant's stratum; return the arm code."""
    actor.require(WRITE_ROLES, "randomise")
    # the same 404 for "no such id" and "another site's": ids are not discoverable
    participant = get_participant(session, actor, participant_id)
    study = session.get(Study, participant.study_id)
    assert study is not None
    if study.design != StudyDesign.rct:
        raise RandomisationError(f"study {study.code} is a case series: nothing to randomise")
    if actor.blinded(study):
        raise PermissionDeniedError(
            f"role '{actor.role}' is blinded in {study.code}: an unblinded investigator randomises"
        )
    if participant.status != "enrolled":
        raise RandomisationError("only enrolled participants can be randomised")
    if not is_eligible(participant, study):
        raise RandomisationError("participant is not eligible or has not consented")
    stratum = session.scalars(
        select(RandomisationStratum)
        .where(
            RandomisationStratum.study_id == study.id,
            RandomisationStratum.site_id == participant.site_id,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if stratum is None:
        raise RandomisationError("no randomisation list for this site: add the site to the study")
    session.refresh(participant)  # re-read under the lock: a parallel request may have won
    if participant.arm_code is not None:
        raise RandomisationError(f"participant {participant.study_number} is already randomised")
    slot = session.scalars(
        select(RandomisationSlot).where(
            RandomisationSlot.stratum_id == stratum.id,
            RandomisationSlot.sequence == stratum.allocations + 1,
        )
    ).one_or_none()
    with acting(session, actor, reason="randomisation"):
        if slot is None:
            extend_list(session, settings, study, stratum)
            session.flush()
            slot = session.scalars(
                select(RandomisationSlot).where(
                    RandomisationSlot.stratum_id == stratum.id,
                    RandomisationSlot.sequence == stratum.allocations + 1,
                )
            ).one()
        now = utcnow()
        slot.participant_id = participant.id
        slot.allocated_at = now
        slot.allocated_by = actor.username
        stratum.allocations += 1
        participant.arm_code = slot.arm_code
        participant.randomised_at = now
    return slot.arm_code


#: Roles that may break the blind for one participant in an emergency (clinical care).
UNBLIND_ROLES = frozenset({"administrator", "investigator", "data_entry"})


def emergency_unblind(session: Session, actor: Actor, participant_id: int, reason: str) -> str:
    """The participant's arm, for a clinical emergency, to a user at their site, blinded or
    not; audited as ``unblind`` with the reason (the arm itself is not written to the trail,
    which blinded monitors read)."""
    actor.require(UNBLIND_ROLES, "break the blind")
    participant = get_participant(session, actor, participant_id)
    if participant.arm_code is None:
        raise RandomisationError("the participant has not been randomised")
    reason = (reason or "").strip()
    if len(reason) < 10:
        raise RegistryInputError(
            "give the clinical reason for unblinding (at least 10 characters)", "reason"
        )
    log_event(
        session,
        actor,
        "unblind",
        table="participant",
        row_id=str(participant.id),
        details={"study_number": participant.study_number},
        site_id=participant.site_id,
        reason=reason[:1000],
    )
    return participant.arm_code
