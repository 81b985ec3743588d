"""Administration without Python or SQL (issue 13): roles, site memberships, deactivation.

Every change goes through the audited session with a reason; deactivating a user ends every
one of their sessions at once. Studies and sites are created by :mod:`.setup` (also used by
the CLI and the API); these functions only change who may do what where.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.registry.audit import acting
from cryoneuro.registry.auth import Actor
from cryoneuro.registry.errors import ConflictError, NotFoundError, RegistryInputError
from cryoneuro.registry.models import Role, Site, SiteMembership, User
from cryoneuro.registry.services.participants import valid_id
from cryoneuro.registry.sessions import revoke_all

ADMIN = frozenset({Role.administrator})


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id) if valid_id(user_id) else None
    if user is None:
        raise NotFoundError(f"no user with id {user_id}")
    return user


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise RegistryInputError("give a reason for the change (at least 3 characters)", "reason")
    return reason[:1000]


def set_role(session: Session, actor: Actor, user_id: int, role: str, reason: str) -> User:
    """Change a user's role (audited; the user's sessions end so the new role applies now)."""
    actor.require(ADMIN, "change roles")
    if role not in Role.codes():
        raise RegistryInputError(f"role must be one of {', '.join(Role.codes())}", "role")
    user = _user(session, user_id)
    if user.id == actor.user_id and role != Role.administrator:
        raise ConflictError("administrators cannot remove their own administrator role")
    with acting(session, actor, reason=_reason(reason)):
        user.role = role
    revoke_all(session, user.id)
    return user


def set_sites(
    session: Session, actor: Actor, user_id: int, site_codes: list[str], reason: str
) -> User:
    """Make ``site_codes`` exactly the user's member sites (each added/removed row audited)."""
    actor.require(ADMIN, "change site memberships")
    user = _user(session, user_id)
    wanted: dict[int, Site] = {}
    for code in site_codes:
        site = session.scalar(select(Site).where(Site.code == code))
        if site is None:
            raise NotFoundError(f"no site with code {code[:40]}")
        wanted[site.id] = site
    current = {
        m.site_id: m
        for m in session.scalars(select(SiteMembership).where(SiteMembership.user_id == user.id))
    }
    with acting(session, actor, reason=_reason(reason)):
        for site_id, membership in current.items():
            if site_id not in wanted:
                session.delete(membership)
        for site_id in wanted:
            if site_id not in current:
                session.add(SiteMembership(user_id=user.id, site_id=site_id))
    session.expire(user, ["sites"])
    revoke_all(session, user.id)
    return user


def set_active(session: Session, actor: Actor, user_id: int, active: bool, reason: str) -> User:
    """Deactivate (every session ends at once) or reactivate a user; audited."""
    actor.require(ADMIN, "deactivate users")
    user = _user(session, user_id)
    if user.id == actor.user_id and not active:
        raise ConflictError("administrators cannot deactivate themselves")
    with acting(session, actor, reason=_reason(reason)):
        user.active = active
    if not active:
        revoke_all(session, user.id)
    return user


def find_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFoundError(f"no user {username[:80]}")
    return user
