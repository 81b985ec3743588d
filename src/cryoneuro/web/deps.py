"""Dependency injection: one session per request, the current user, CSRF checks."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from cryoneuro.registry.auth import Actor
from cryoneuro.registry.db import begin_write
from cryoneuro.registry.errors import AuthenticationError, PermissionDeniedError
from cryoneuro.registry.models import User
from cryoneuro.registry.settings import RegistrySettings


def get_settings(request: Request) -> RegistrySettings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """A session per request; writing methods take the SQLite write lock up front.

    Routes commit explicitly after the service call; anything else is rolled back.
    """
    session = request.app.state.session_factory()
    try:
        if request.method not in ("GET", "HEAD"):
            begin_write(session)
        yield session
    finally:
        session.rollback()
        session.close()


def csrf_token(request: Request) -> str:
    """The session's CSRF token (created on first use)."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, supplied: str | None) -> None:
    expected = request.session.get("csrf")
    if not expected or not supplied or not hmac.compare_digest(expected, supplied):
        raise PermissionDeniedError("missing or wrong CSRF token: reload the page and retry")


def current_actor(request: Request,
                  session: Annotated[Session, Depends(get_session)]) -> Actor:
    user_id = request.session.get("user_id")
    if not isinstance(user_id, int):
        raise AuthenticationError("log in first")
    user = session.get(User, user_id)
    if user is None or not user.active:
        request.session.clear()
        raise AuthenticationError("log in first")
    return Actor.from_user(user)


def api_actor(request: Request, actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
    """The actor for JSON routes; state-changing methods need the X-CSRF-Token header."""
    if request.method not in ("GET", "HEAD"):
        check_csrf(request, request.headers.get("x-csrf-token"))
    return actor


#: Annotated dependencies (FastAPI template style) for the route signatures.
SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[RegistrySettings, Depends(get_settings)]
ApiActor = Annotated[Actor, Depends(api_actor)]
PageActor = Annotated[Actor, Depends(current_actor)]
