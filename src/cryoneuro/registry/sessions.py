"""Server-side log-in sessions: revocable, with idle and absolute time limits.

Why not just a signed cookie (as before issue 13): a signed cookie stays valid until it
expires, so log-out, a password reset or deactivating a user did not end sessions already
handed out. Now the cookie (still signed, by the key file's session key) carries a random
token; the database keeps only its SHA-256 (``user_session``), so a copy of the database
gives no live session. A session is valid while it is not revoked, its user is active, it was
used within ``session_idle_s`` and created within ``session_max_age_s`` (settings).
Revocation happens on log-out (that session), and on a password change or reset and on
deactivation (every session of the user).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from cryoneuro.registry.errors import AuthenticationError
from cryoneuro.registry.models import User, UserSession, utcnow
from cryoneuro.registry.settings import RegistrySettings

#: ``last_seen_at`` is written at most this often per session (a write per request would
#: serialise every page view behind SQLite's single writer).
TOUCH_EVERY_S = 60


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, user: User, ip: str) -> str:
    """Create a session for ``user``; returns the token for the cookie (stored hashed)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        UserSession(
            token_hash=token_hash(token),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            ip=ip[:64],
        )
    )
    session.flush()
    return token


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def check_session(
    session: Session, settings: RegistrySettings, token: object, now: dt.datetime | None = None
) -> tuple[User, bool]:
    """The user of a live session and whether ``last_seen_at`` is due to be written;
    :class:`AuthenticationError` when the session is unknown, revoked, idle too long, too
    old, or its user deactivated."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        raise AuthenticationError("log in first")
    # one statement for the session, its user and the user's sites (every request makes this
    # check: three round trips were a measurable share of a page, benchmarks/registry_load.py)
    found = (
        session.execute(
            select(UserSession, User)
            .outerjoin(User, User.id == UserSession.user_id)
            .where(UserSession.token_hash == token_hash(token))
            .options(joinedload(User.sites))
        )
        .unique()
        .first()
    )
    row, user = found if found is not None else (None, None)
    now = now or utcnow()
    if row is None or row.revoked_at is not None:
        raise AuthenticationError("your session has ended: log in again")
    if (now - _aware(row.created_at)).total_seconds() > settings.session_max_age_s:
        raise AuthenticationError("your session has expired: log in again")
    idle_s = (now - _aware(row.last_seen_at)).total_seconds()
    if idle_s > settings.session_idle_s:
        raise AuthenticationError("your session timed out after inactivity: log in again")
    if user is None or not user.active:
        raise AuthenticationError("log in first")
    return user, idle_s > TOUCH_EVERY_S


def touch(session: Session, token: str) -> None:
    session.execute(
        update(UserSession)
        .where(UserSession.token_hash == token_hash(token))
        .values(last_seen_at=utcnow())
    )


def revoke(session: Session, token: object) -> None:
    """End one session (log-out)."""
    if isinstance(token, str):
        session.execute(
            update(UserSession)
            .where(UserSession.token_hash == token_hash(token), UserSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


def revoke_all(session: Session, user_id: int) -> int:
    """End every session of a user (password change or reset, deactivation); returns how many."""
    ids = list(
        session.scalars(
            select(UserSession.token_hash).where(
                UserSession.user_id == user_id, UserSession.revoked_at.is_(None)
            )
        )
    )
    if ids:
        session.execute(
            update(UserSession).where(UserSession.token_hash.in_(ids)).values(revoked_at=utcnow())
        )
    return len(ids)
