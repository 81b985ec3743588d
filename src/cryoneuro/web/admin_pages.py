"""Administration pages (administrators only): sites, studies and their sites, users with
roles, memberships and deactivation, so a new study is set up in the browser without Python
or SQL. Forms post to these routes (CSRF-checked); the services (setup.py, admin.py) do the
checks and the audit, exactly as for the API (admin_api.py) and the CLI."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.registry.auth import Actor
from cryoneuro.registry.errors import RegistryError, RegistryInputError
from cryoneuro.registry.models import Role, Site, Study, User
from cryoneuro.registry.services import admin, setup
from cryoneuro.web.deps import FormDep, PageActor, SessionDep, SettingsDep
from cryoneuro.web.pages import render

router = APIRouter(include_in_schema=False)
ADMIN = frozenset({Role.administrator})


def _page(
    request: Request,
    session: Session,
    actor: Actor,
    status: int = 200,
    error: str = "",
    field: str | None = None,
) -> HTMLResponse:
    return render(
        request,
        "admin.html",
        status=status,
        actor=actor,
        error=error,
        field=field,
        message=request.query_params.get("done", "")[:200],
        sites=list(session.scalars(select(Site).order_by(Site.code))),
        studies=list(session.scalars(select(Study).order_by(Study.code))),
        users=list(session.scalars(select(User).order_by(User.username))),
        roles=Role.codes(),
    )


def _codes(text: str) -> list[str]:
    return [c.strip() for c in text.replace(";", ",").split(",") if c.strip()]


def _arms(text: str) -> list[tuple[str, str, int]]:
    arms = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(":")]
        if len(parts) != 3 or not parts[2].isdigit() or not 1 <= int(parts[2]) <= 10:
            raise RegistryInputError(
                f"arm '{line[:60]}': write one arm per line as code:label:ratio (ratio 1–10)",
                "arms",
            )
        arms.append((parts[0][:40], parts[1][:200], int(parts[2])))
    return arms


def _act(request: Request, session: Session, actor: Actor, done: str, change: Any) -> Response:
    """Run ``change``; on success commit and go back to the page (PRG), else show the error."""
    actor.require(ADMIN, "administer the registry")
    try:
        change()
        session.commit()
    except RegistryError as exc:
        session.rollback()
        field = exc.field if isinstance(exc, RegistryInputError) else None
        return _page(request, session, actor, status=exc.status_code, error=str(exc), field=field)
    return RedirectResponse(f"/admin?done={done}", status_code=303)


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, session: SessionDep, actor: PageActor) -> HTMLResponse:
    actor.require(ADMIN, "administer the registry")
    return _page(request, session, actor)


@router.post("/admin/sites")
def add_site(request: Request, form: FormDep, session: SessionDep, actor: PageActor) -> Response:
    return _act(
        request,
        session,
        actor,
        "site",
        lambda: setup.create_site(
            session, actor, form.get("code", "").strip()[:20], form.get("name", "").strip()[:200]
        ),
    )


@router.post("/admin/studies")
def add_study(request: Request, form: FormDep, session: SessionDep, actor: PageActor) -> Response:
    return _act(
        request,
        session,
        actor,
        "study",
        lambda: setup.create_study(
            session,
            actor,
            code=form.get("code", "").strip()[:40],
            title=form.get("title", "").strip()[:300],
            design=form.get("design", ""),
            arms=_arms(form.get("arms", "")),
            test_study=form.get("test_study") == "on",
            blinded_roles=_codes(form.get("blinded_roles", "")),
        ),
    )


@router.post("/admin/study-sites")
def add_study_site(
    request: Request, form: FormDep, session: SessionDep, settings: SettingsDep, actor: PageActor
) -> Response:
    return _act(
        request,
        session,
        actor,
        "study-site",
        lambda: setup.add_site_to_study(
            session,
            settings,
            actor,
            setup.get_study(session, form.get("study", "")[:40]),
            setup.get_site(session, form.get("site", "")[:20]),
        ),
    )


@router.post("/admin/users")
def add_user(request: Request, form: FormDep, session: SessionDep, actor: PageActor) -> Response:
    return _act(
        request,
        session,
        actor,
        "user",
        lambda: setup.create_user(
            session,
            actor,
            username=form.get("username", "").strip()[:80],
            password=form.get("password", "")[:200],
            role=form.get("role", ""),
            site_codes=_codes(form.get("sites", "")),
            full_name=form.get("full_name", "")[:200],
        ),
    )


@router.post("/admin/users/{user_id}/role")
def user_role(
    user_id: int, request: Request, form: FormDep, session: SessionDep, actor: PageActor
) -> Response:
    return _act(
        request,
        session,
        actor,
        "role",
        lambda: admin.set_role(
            session, actor, user_id, form.get("role", ""), form.get("reason", "")
        ),
    )


@router.post("/admin/users/{user_id}/sites")
def user_sites(
    user_id: int, request: Request, form: FormDep, session: SessionDep, actor: PageActor
) -> Response:
    return _act(
        request,
        session,
        actor,
        "sites",
        lambda: admin.set_sites(
            session, actor, user_id, _codes(form.get("sites", "")), form.get("reason", "")
        ),
    )


@router.post("/admin/users/{user_id}/active")
def user_active(
    user_id: int, request: Request, form: FormDep, session: SessionDep, actor: PageActor
) -> Response:
    return _act(
        request,
        session,
        actor,
        "active",
        lambda: admin.set_active(
            session, actor, user_id, form.get("active") == "1", form.get("reason", "")
        ),
    )
