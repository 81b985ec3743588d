"""User accounts: administrators issue one-time password reset links; users set a new password.

There is no e-mail server: the administrator copies the link to the user by a channel they
trust. A link is signed with the app secret (itsdangerous), expires after
``auth.RESET_MAX_AGE_S`` and carries a fingerprint of the current password hash, so it stops
working as soon as the password changes (it is one-time). Issuing a link and using it are both
in the audit trail.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.registry.audit import acting, log_event
from cryoneuro.registry.auth import (
    Actor,
    check_password_rule,
    hash_password,
    make_reset_token,
    read_reset_token,
)
from cryoneuro.registry.errors import NotFoundError
from cryoneuro.registry.models import Role, User
from cryoneuro.registry.services.participants import valid_id
from cryoneuro.registry.sessions import revoke_all
from cryoneuro.registry.settings import RegistrySettings

ADMIN = frozenset({Role.administrator})


def list_users(session: Session, actor: Actor) -> list[User]:
    actor.require(ADMIN, "manage users")
    return list(session.scalars(select(User).order_by(User.username)))


def issue_reset_token(
    session: Session,
    settings: RegistrySettings,
    actor: Actor,
    user_id: int,
    clock: Callable[[], float] = time.time,
) -> str:
    """A reset token for ``user_id`` (administrators only); the issue is audited."""
    actor.require(ADMIN, "issue password reset links")
    user = session.get(User, user_id) if valid_id(user_id) else None
    if user is None or not user.active:
        raise NotFoundError("no such active user")
    token = make_reset_token(settings.secret_key, user, clock)
    # Nothing in the row changes, so record the event itself (a link of the audit chain).
    log_event(
        session,
        actor,
        "reset-link",
        table="app_user",
        row_id=str(user.id),
        details={"username": user.username},
        reason="one-time password reset link issued by an administrator",
    )
    return token


def check_reset_token(
    session: Session, settings: RegistrySettings, token: str, clock: Callable[[], float] = time.time
) -> User:
    return read_reset_token(session, settings.secret_key, token, clock=clock)


def reset_password(
    session: Session,
    settings: RegistrySettings,
    token: str,
    password: str,
    clock: Callable[[], float] = time.time,
) -> User:
    """Set a new password with a valid link; the link (and any older one) dies with it."""
    user = read_reset_token(session, settings.secret_key, token, clock=clock)
    check_password_rule(password, user.username)
    with acting(session, Actor.from_user(user), reason="password reset with a one-time link"):
        user.password_hash = hash_password(password)
    revoke_all(session, user.id)  # whoever had the old password has no session left
    return user
