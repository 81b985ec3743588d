"""Study, site and user set-up (administrators and the CLI)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.registry import randomisation
from cryoneuro.registry.audit import acting
from cryoneuro.registry.auth import Actor, check_password_rule, hash_password
from cryoneuro.registry.errors import ConflictError, NotFoundError, RegistryInputError
from cryoneuro.registry.models import (
    EligibilityCriterion,
    Role,
    Site,
    SiteMembership,
    Study,
    StudyArm,
    StudyDesign,
    StudySite,
    User,
    VisitDefinition,
)
from cryoneuro.registry.settings import RegistrySettings

#: A default follow-up schedule (days after the procedure, windows) for neuroma studies.
DEFAULT_VISITS: list[dict[str, Any]] = [
    {
        "code": "baseline",
        "label": "Baseline (before the procedure)",
        "day": 0,
        "window_before_days": 60,
        "window_after_days": 0,
        "instruments": ["nrs", "eq5d5l", "moxfq"],
    },
    {
        "code": "w2",
        "label": "2 weeks",
        "day": 14,
        "window_before_days": 3,
        "window_after_days": 7,
        "instruments": ["nrs"],
    },
    {
        "code": "m1",
        "label": "1 month",
        "day": 30,
        "window_before_days": 7,
        "window_after_days": 14,
        "instruments": ["nrs", "eq5d5l", "moxfq"],
    },
    {
        "code": "m3",
        "label": "3 months",
        "day": 91,
        "window_before_days": 14,
        "window_after_days": 21,
        "instruments": ["nrs", "eq5d5l", "moxfq"],
    },
    {
        "code": "m6",
        "label": "6 months",
        "day": 182,
        "window_before_days": 21,
        "window_after_days": 28,
        "instruments": ["nrs", "eq5d5l", "moxfq"],
    },
    {
        "code": "m12",
        "label": "12 months",
        "day": 365,
        "window_before_days": 30,
        "window_after_days": 30,
        "instruments": ["nrs", "eq5d5l", "moxfq"],
    },
]
DEFAULT_CRITERIA: list[dict[str, str]] = [
    {"code": "adult", "kind": "inclusion", "text": "Aged 18 or over"},
    {
        "code": "confirmed_neuroma",
        "kind": "inclusion",
        "text": "Neuroma confirmed on ultrasound or MRI",
    },
    {"code": "pain_3_months", "kind": "inclusion", "text": "Pain for at least 3 months"},
    {"code": "coagulopathy", "kind": "exclusion", "text": "Uncorrected coagulopathy"},
    {"code": "local_infection", "kind": "exclusion", "text": "Infection at the puncture site"},
    {
        "code": "cold_disorder",
        "kind": "exclusion",
        "text": "Cryoglobulinaemia, cold urticaria or Raynaud's affecting the limb",
    },
]


def create_site(session: Session, actor: Actor, code: str, name: str) -> Site:
    actor.require(frozenset({Role.administrator}), "create sites")
    if session.scalar(select(Site).where(Site.code == code)):
        raise ConflictError(f"site {code} exists")
    site = Site(code=code, name=name)
    with acting(session, actor):
        session.add(site)
    return site


def create_study(
    session: Session,
    actor: Actor,
    *,
    code: str,
    title: str,
    design: str,
    arms: Sequence[tuple[str, str, int]] = (),
    visits: Iterable[dict[str, Any]] = DEFAULT_VISITS,
    criteria: Iterable[dict[str, str]] = DEFAULT_CRITERIA,
    test_study: bool = False,
    blinded_roles: Sequence[str] = (),
) -> Study:
    """A study with its arms (RCT only), visit schedule and screening criteria."""
    actor.require(frozenset({Role.administrator}), "create studies")
    if design not in StudyDesign.codes():
        raise RegistryInputError(f"design must be one of {StudyDesign.codes()}", "design")
    if design == StudyDesign.rct and len(arms) < 2:
        raise RegistryInputError("an RCT needs at least two arms", "arms")
    if session.scalar(select(Study).where(Study.code == code)):
        raise ConflictError(f"study {code} exists")
    blindable = [r for r in Role.codes() if r != Role.administrator]
    for role in blinded_roles:
        if role not in blindable:
            raise RegistryInputError(
                f"blinded roles must be among {', '.join(blindable)}", "blinded_roles"
            )
    if blinded_roles and design != StudyDesign.rct:
        raise RegistryInputError("only an RCT has allocations to blind", "blinded_roles")
    study = Study(
        code=code,
        title=title,
        design=design,
        test_study=test_study,
        blinded_roles=sorted(set(blinded_roles)),
    )
    with acting(session, actor):
        session.add(study)
        session.flush()
        for arm_code, label, ratio in arms:
            session.add(StudyArm(study_id=study.id, code=arm_code, label=label, ratio=ratio))
        for visit in visits:
            session.add(VisitDefinition(study_id=study.id, **visit))
        for criterion in criteria:
            session.add(EligibilityCriterion(study_id=study.id, **criterion))
    session.refresh(study)
    return study


def add_site_to_study(
    session: Session, settings: RegistrySettings, actor: Actor, study: Study, site: Site
) -> None:
    """Join a site to a study; for an RCT this generates the site's concealed list."""
    actor.require(frozenset({Role.administrator}), "add sites to studies")
    with acting(session, actor, reason="site joined study"):
        session.add(StudySite(study_id=study.id, site_id=site.id))
        session.flush()
        if study.design == StudyDesign.rct:
            randomisation.generate_list(session, settings, study, site.id)
    session.refresh(study)


def create_user(
    session: Session,
    actor: Actor,
    *,
    username: str,
    password: str,
    role: str,
    site_codes: Sequence[str] = (),
    full_name: str = "",
) -> User:
    actor.require(frozenset({Role.administrator}), "create users")
    if role not in Role.codes():
        raise RegistryInputError(f"role must be one of {', '.join(Role.codes())}", "role")
    if not username or len(username) > 80:
        raise RegistryInputError("user name must have 1–80 characters", "username")
    check_password_rule(password, username)  # the same rule as a reset (no weak passwords)
    if session.scalar(select(User).where(User.username == username)):
        raise ConflictError(f"user {username} exists")
    sites = []
    for code in site_codes:
        site = session.scalar(select(Site).where(Site.code == code))
        if site is None:
            raise NotFoundError(f"no site with code {code}")
        sites.append(site)
    user = User(
        username=username,
        full_name=full_name,
        role=role,
        password_hash=hash_password(password),
        active=True,
    )
    with acting(session, actor):
        session.add(user)
        session.flush()
        for site in sites:  # membership rows of their own, so each is in the audit trail
            session.add(SiteMembership(user_id=user.id, site_id=site.id))
    session.expire(user, ["sites"])
    return user


def get_study(session: Session, code: str) -> Study:
    study = session.scalar(select(Study).where(Study.code == code))
    if study is None:
        raise NotFoundError(f"no study with code {code[:40]}")
    return study


def get_site(session: Session, code: str) -> Site:
    site = session.scalar(select(Site).where(Site.code == code))
    if site is None:
        raise NotFoundError(f"no site with code {code[:40]}")
    return site
