"""Concealed, stratified permuted-block randomisation for RCTs.

The list for each (study, site) stratum is generated server-side when the site joins the
study, from an HMAC of the randomisation key (key file), so nobody can predict the next allocation
from earlier ones without the key. Block sizes are random multiples of the arm-ratio sum,
1×, 2× or 3× with equal probability (1:1 → blocks of 2, 4 and 6). Why three sizes (issue 13):
someone who knows the block boundaries and always guesses the arm that is behind
(Blackwell & Hodges 1957, the "convergence strategy") guesses (2·3/4 + 4·17/24)/6 = 72.2 %
of allocations with blocks of 2 and 4 (the review measured 72.7 %), and 70.3 % with 2, 4 and
6 (exact enumeration in tests/registry/test_registry_randomisation.py); without the
boundaries, less. An allocation is revealed only to an enrolled, eligible,
consented participant, and exactly one slot is consumed per participant: the stratum row is
locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite transactions are ``BEGIN IMMEDIATE``).

This module holds the lists and the eligibility rule, which study set-up and enrolment use;
allocating a participant and breaking the blind are services that look participants up, so
they are in :mod:`cryoneuro.registry.services.allocation`.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.registry.errors import RandomisationError
from cryoneuro.registry.models import Participant, RandomisationSlot, RandomisationStratum, Study
from cryoneuro.registry.settings import RegistrySettings

BLOCK_MULTIPLIERS = (1, 2, 3)
BLOCKS_PER_EXTENSION = 25


def permuted_block(
    secret: bytes,
    study_id: int,
    site_id: int,
    block_number: int,
    arms: Sequence[tuple[str, int]],
    multipliers: Sequence[int] = BLOCK_MULTIPLIERS,
) -> list[str]:
    """One block of arm codes, deterministic given the secret and its position."""
    digest = hmac.new(
        secret, f"{study_id}:{site_id}:{block_number}".encode(), hashlib.sha256
    ).digest()
    rng = random.Random(int.from_bytes(digest, "big"))
    multiplier = rng.choice(list(multipliers))
    block = [code for code, ratio in arms for _ in range(ratio * multiplier)]
    rng.shuffle(block)
    return block


def extend_list(
    session: Session,
    settings: RegistrySettings,
    study: Study,
    stratum: RandomisationStratum,
    n_blocks: int = BLOCKS_PER_EXTENSION,
) -> None:
    """Append ``n_blocks`` permuted blocks to the stratum's list (at set-up, and when an
    allocation finds the list used up)."""
    arms = [(arm.code, arm.ratio) for arm in study.arms]
    if len(arms) < 2:
        raise RandomisationError(f"study {study.code} needs at least two arms to randomise")
    sequence = (
        session.scalar(
            select(RandomisationSlot.sequence)
            .where(RandomisationSlot.stratum_id == stratum.id)
            .order_by(RandomisationSlot.sequence.desc())
            .limit(1)
        )
        or 0
    )
    secret = settings.randomisation_seed_secret()
    for block_number in range(
        stratum.blocks_generated + 1, stratum.blocks_generated + n_blocks + 1
    ):
        block = permuted_block(secret, study.id, stratum.site_id, block_number, arms)
        for code in block:
            sequence += 1
            session.add(
                RandomisationSlot(
                    stratum_id=stratum.id,
                    sequence=sequence,
                    block_number=block_number,
                    block_size=len(block),
                    arm_code=code,
                )
            )
    stratum.blocks_generated += n_blocks


def generate_list(
    session: Session, settings: RegistrySettings, study: Study, site_id: int
) -> RandomisationStratum:
    """Create the stratum and its first blocks (called when a site joins an RCT)."""
    stratum = RandomisationStratum(
        study_id=study.id, site_id=site_id, blocks_generated=0, allocations=0
    )
    session.add(stratum)
    session.flush()
    extend_list(session, settings, study, stratum)
    return stratum


def is_eligible(participant: Participant, study: Study) -> bool:
    """Consented (not withdrawn), all inclusion criteria met and no exclusion present."""
    consent_ok = any(c.consented and c.withdrawal_date is None for c in participant.consents)
    answers = {a.criterion_code: a.answer for a in participant.eligibility}
    for criterion in study.criteria:
        answer = answers.get(criterion.code)
        if answer is None:
            return False
        if (criterion.kind == "inclusion") != answer:
            return False
    return consent_ok
