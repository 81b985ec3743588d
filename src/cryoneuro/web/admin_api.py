"""Administration over the JSON API (administrators only): sites, studies, users, roles,
memberships, deactivation. Thin routes over services/setup.py and services/admin.py, all
audited; the same operations exist as CLI commands (cli/registry_cmd.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import Field, StringConstraints

from cryoneuro.registry.auth import Actor
from cryoneuro.registry.errors import NotFoundError
from cryoneuro.registry.models import Role
from cryoneuro.registry.schemas import Code, Reason, Short, Strict
from cryoneuro.registry.services import admin, setup
from cryoneuro.web.deps import ApiActor, SessionDep, SettingsDep

router = APIRouter(prefix="/api/admin", tags=["administration"])
ADMIN = frozenset({Role.administrator})


class SiteIn(Strict):
    code: Code
    name: Short


class ArmIn(Strict):
    code: Code
    label: Short
    ratio: int = Field(default=1, ge=1, le=10)


class StudyIn(Strict):
    code: Code
    title: Short
    design: Literal["rct", "case_series"]
    arms: list[ArmIn] = Field(default_factory=list, max_length=10)
    test_study: bool = False
    blinded_roles: list[Code] = Field(default_factory=list, max_length=5)


class StudySiteIn(Strict):
    site_code: Code


class UserIn(Strict):
    username: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    role: Code
    sites: list[Code] = Field(default_factory=list, max_length=50)
    full_name: Annotated[str, StringConstraints(max_length=200)] = ""


class RoleIn(Strict):
    role: Code
    reason: Reason


class SitesIn(Strict):
    sites: list[Code] = Field(max_length=50)
    reason: Reason


class ActiveIn(Strict):
    active: bool
    reason: Reason


def _user_out(user) -> dict:
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "active": user.active,
        "sites": sorted(s.code for s in user.sites),
    }


def _admin(actor: Actor, action: str) -> None:
    actor.require(ADMIN, action)


@router.post("/sites", status_code=201)
def create_site(body: SiteIn, session: SessionDep, actor: ApiActor) -> dict:
    _admin(actor, "create sites")
    site = setup.create_site(session, actor, body.code, body.name)
    session.commit()
    return {"id": site.id, "code": site.code, "name": site.name}


@router.post("/studies", status_code=201)
def create_study(body: StudyIn, session: SessionDep, actor: ApiActor) -> dict:
    study = setup.create_study(
        session,
        actor,
        code=body.code,
        title=body.title,
        design=body.design,
        arms=[(a.code, a.label, a.ratio) for a in body.arms],
        test_study=body.test_study,
        blinded_roles=body.blinded_roles,
    )
    session.commit()
    return {
        "id": study.id,
        "code": study.code,
        "design": study.design,
        "arms": [a.code for a in study.arms],
        "test_study": study.test_study,
        "blinded_roles": study.blinded_roles,
    }


@router.post("/studies/{code}/sites", status_code=201)
def add_study_site(
    code: str, body: StudySiteIn, session: SessionDep, settings: SettingsDep, actor: ApiActor
) -> dict:
    _admin(actor, "add sites to studies")
    study = setup.get_study(session, code[:40])
    setup.add_site_to_study(
        session, settings, actor, study, setup.get_site(session, body.site_code)
    )
    session.commit()
    return {"study": study.code, "sites": [s.code for s in study.sites]}


@router.post("/users", status_code=201)
def create_user(body: UserIn, session: SessionDep, actor: ApiActor) -> dict:
    user = setup.create_user(
        session,
        actor,
        username=body.username,
        password=body.password,
        role=body.role,
        site_codes=body.sites,
        full_name=body.full_name,
    )
    session.commit()
    session.refresh(user)
    return _user_out(user)


@router.put("/users/{user_id}/role")
def set_role(user_id: int, body: RoleIn, session: SessionDep, actor: ApiActor) -> dict:
    user = admin.set_role(session, actor, _checked(user_id), body.role, body.reason)
    session.commit()
    return _user_out(user)


@router.put("/users/{user_id}/sites")
def set_sites(user_id: int, body: SitesIn, session: SessionDep, actor: ApiActor) -> dict:
    user = admin.set_sites(session, actor, _checked(user_id), body.sites, body.reason)
    session.commit()
    session.refresh(user)
    return _user_out(user)


@router.put("/users/{user_id}/active")
def set_active(user_id: int, body: ActiveIn, session: SessionDep, actor: ApiActor) -> dict:
    user = admin.set_active(session, actor, _checked(user_id), body.active, body.reason)
    session.commit()
    return _user_out(user)


def _checked(user_id: int) -> int:
    if not 0 < user_id <= 2**31 - 1:
        raise NotFoundError(f"no user with id {user_id}")
    return user_id
