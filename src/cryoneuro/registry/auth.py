"""Passwords (argon2), the acting user, and the role/site permission rules.

Every service call takes an :class:`Actor`; the checks live here so routes stay thin and the
rules can be read (and tested) in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.registry.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from cryoneuro.registry.models import Role, User

_hasher = PasswordHasher()

#: Roles that may create and edit study data.
WRITE_ROLES = frozenset({Role.administrator, Role.investigator, Role.data_entry})
#: Roles that may read direct identifiers (NHS number).
IDENTIFIER_ROLES = frozenset({Role.administrator, Role.investigator})
#: Roles that may read and export the audit trail.
AUDIT_ROLES = frozenset({Role.administrator, Role.monitor})
#: Roles that may export identifiable-by-study-number data (pseudonymised tables, REDCap, FHIR).
EXPORT_ROLES = frozenset({Role.administrator, Role.investigator, Role.monitor, Role.statistician})
#: Roles that see every site without a membership.
ALL_SITE_ROLES = frozenset({Role.administrator, Role.statistician})


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Actor:
    """The user on whose behalf a service acts (what the audit trail records)."""

    user_id: int | None
    username: str
    role: str
    site_ids: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def system(cls) -> Actor:
        """The actor for CLI set-up commands (recorded as 'system' in the audit trail)."""
        return cls(None, "system", Role.administrator.value)

    @classmethod
    def from_user(cls, user: User) -> Actor:
        return cls(user.id, user.username, user.role, frozenset(s.id for s in user.sites))

    @property
    def all_sites(self) -> bool:
        return self.role in ALL_SITE_ROLES

    def can_access_site(self, site_id: int) -> bool:
        return self.all_sites or site_id in self.site_ids

    def require(self, roles: frozenset[Role], action: str) -> None:
        if self.role not in roles:
            raise PermissionDeniedError(f"role '{self.role}' may not {action}")

    def require_write(self, site_id: int) -> None:
        self.require(WRITE_ROLES, "change study data")
        self.require_site(site_id)

    def require_site(self, site_id: int) -> None:
        # 404, not 403: another site's participants must not be discoverable.
        if not self.can_access_site(site_id):
            raise NotFoundError("no such participant at your sites")

    @property
    def sees_identifiers(self) -> bool:
        return self.role in IDENTIFIER_ROLES


def authenticate(session: Session, username: str, password: str) -> User:
    """The active user with this name and password, else :class:`AuthenticationError`."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        hash_password(password)  # spend the same time whether or not the user exists
        raise AuthenticationError("wrong user name or password")
    if not verify_password(user.password_hash, password):
        raise AuthenticationError("wrong user name or password")
    return user
