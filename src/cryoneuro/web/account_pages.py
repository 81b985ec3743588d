"""User administration (reset links) and the password reset page.

``/admin/users`` (administrators) lists users and issues one-time reset links, shown once to
be copied to the user (no e-mail server). ``/reset-password/{token}`` needs no log-in: the
signed token is the credential.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from cryoneuro.registry.auth import PASSWORD_RULE, RESET_MAX_AGE_S
from cryoneuro.registry.errors import ConflictError, RegistryInputError
from cryoneuro.registry.services import accounts
from cryoneuro.web.deps import FormDep, PageActor, SessionDep, SettingsDep
from cryoneuro.web.pages import render

router = APIRouter(include_in_schema=False)


def reset_url(request: Request, token: str) -> str:
    """The link from the configured public address, never from the request's Host header
    (a spoofed Host would send the token to someone else's server)."""
    base = request.app.state.settings.public_base_url.strip().rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise ConflictError(
            "reset links need the registry's public address: set "
            "CRYONEURO_PUBLIC_BASE_URL (e.g. https://registry.example.nhs.uk)"
        )
    return f"{base}/reset-password/{token}"


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, session: SessionDep, actor: PageActor) -> HTMLResponse:
    return render(
        request,
        "users.html",
        actor=actor,
        users=accounts.list_users(session, actor),
        link=None,
        link_user=None,
        hours=RESET_MAX_AGE_S // 3600,
    )


@router.post("/admin/users/{user_id}/reset-link", response_class=HTMLResponse)
def issue_link(
    user_id: int,
    request: Request,
    flat: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    actor: PageActor,
) -> HTMLResponse:
    token = accounts.issue_reset_token(session, settings, actor, user_id)
    session.commit()
    users = accounts.list_users(session, actor)
    return render(
        request,
        "users.html",
        actor=actor,
        users=users,
        link=reset_url(request, token),
        link_user=next(u.username for u in users if u.id == user_id),
        hours=RESET_MAX_AGE_S // 3600,
    )


@router.api_route("/reset-password/{token}", methods=["GET", "POST"], response_class=HTMLResponse)
def reset_page(
    token: str, request: Request, data: FormDep, session: SessionDep, settings: SettingsDep
) -> Response:
    user = accounts.check_reset_token(session, settings, token[:600])
    errors: dict[str, str] = {}
    if request.method == "POST":
        password = data.get("password", "")[:300]
        if password != data.get("confirm", "")[:300]:
            errors["confirm"] = "the two passwords differ"
        else:
            try:
                accounts.reset_password(session, settings, token[:600], password)
                session.commit()
                request.session.clear()
                return render(
                    request,
                    "login.html",
                    error="",
                    message="Password changed: log in with the new password.",
                )
            except RegistryInputError as exc:
                session.rollback()
                errors[exc.field or "password"] = str(exc)
    return render(
        request,
        "reset_password.html",
        status=422 if errors else 200,
        username=user.username,
        rule=PASSWORD_RULE,
        errors=errors,
        action=str(request.url.path),
    )
