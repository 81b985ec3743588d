"""Passwords (argon2), the acting user, and the role/site permission rules.

Every service call takes an :class:`Actor`; the checks live here so routes stay thin and the
rules can be read (and tested) in one place.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.registry.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    RegistryError,
    RegistryInputError,
)
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

    def blinded(self, study: object) -> bool:
        """Whether this role is kept blind to allocation in ``study`` (its blinded_roles)."""
        return self.role in (getattr(study, "blinded_roles", None) or [])

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


# --- Login rate limiting ---------------------------------------------------------------------


class LoginRateLimitedError(RegistryError):
    """Too many failed log-ins for a user name or from one client address (HTTP 429)."""

    status_code = 429

    def __init__(self, retry_after_s: int) -> None:
        minutes = max(1, math.ceil(retry_after_s / 60))
        super().__init__(
            f"too many failed log-in attempts: try again in {minutes} minute"
            f"{'s' if minutes != 1 else ''}"
        )
        self.retry_after = int(retry_after_s)


class LoginRateLimiter:
    """Failed log-ins counted per (user name, client IP) and per client IP in a sliding window.

    After ``max_failures`` failures for one user name from one IP, or ``ip_max_failures``
    failures of any user names from one IP (password spraying), within ``window_s`` seconds,
    further attempts from that IP (for that name) are refused (:class:`LoginRateLimitedError`,
    HTTP 429 with ``Retry-After``) until the oldest failure leaves the window. Counting per
    user name *and* IP (issue 13) means someone guessing a nurse's password from one machine
    does not lock the nurse out at her own; a successful log-in clears its (name, IP)
    counter. The store is in memory, **per server process** (several workers each count
    separately; a restart forgets). ``clock`` is injectable so tests need not sleep.
    """

    #: Above this many tracked keys, expired ones are swept (bounds memory under a flood).
    SWEEP_AT = 10_000

    def __init__(
        self,
        max_failures: int = 5,
        window_s: float = 15 * 60,
        clock: Callable[[], float] = time.monotonic,
        ip_max_failures: int = 50,
    ) -> None:
        self.max_failures = max_failures
        self.ip_max_failures = ip_max_failures
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(username: str, ip: str) -> tuple[str, str]:
        return "user:" + username[:80] + "\x00ip:" + ip[:64], "ip:" + ip[:64]

    def _limit(self, key: str) -> int:
        return self.ip_max_failures if key.startswith("ip:") else self.max_failures

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, username: str, ip: str) -> int:
        """Seconds until an attempt is allowed (0: now)."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in self._keys(username, ip):
                times = self._recent(key, now)
                limit = self._limit(key)
                if len(times) >= limit:
                    wait = max(wait, times[-limit] + self.window_s - now)
        return math.ceil(wait) if wait > 0 else 0

    def check(self, username: str, ip: str) -> None:
        wait = self.retry_after(username, ip)
        if wait:
            raise LoginRateLimitedError(wait)

    def failure(self, username: str, ip: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) > self.SWEEP_AT:
                for key in list(self._failures):
                    self._recent(key, now)
            for key in self._keys(username, ip):
                self._failures.setdefault(key, deque(maxlen=self._limit(key) * 4)).append(now)

    def success(self, username: str, ip: str) -> None:
        with self._lock:
            self._failures.pop(self._keys(username, ip)[0], None)


# --- Password reset links and the password rule ---------------------------------------------

RESET_SALT = "cryoneuro-password-reset"
#: A reset link works for this long (and only until the password changes).
RESET_MAX_AGE_S = 24 * 3600
PASSWORD_MIN_LENGTH = 12
PASSWORD_RULE = (
    f"at least {PASSWORD_MIN_LENGTH} characters, including letters and at least "
    "one digit or symbol, and not containing your user name"
)


def check_password_rule(password: str, username: str = "") -> None:
    """Raise :class:`RegistryInputError` (field ``password``) unless the rule is met."""
    problem = ""
    if len(password) < PASSWORD_MIN_LENGTH:
        problem = f"the password must have at least {PASSWORD_MIN_LENGTH} characters"
    elif len(password) > 200:
        problem = "the password must have at most 200 characters"
    elif not any(c.isalpha() for c in password):
        problem = "the password must contain letters"
    elif all(c.isalpha() or c.isspace() for c in password):
        problem = "the password must contain at least one digit or symbol"
    elif username and username.lower() in password.lower():
        problem = "the password must not contain your user name"
    if problem:
        raise RegistryInputError(problem, "password")


def password_fingerprint(password_hash: str) -> str:
    """A short digest of the current hash: a link carrying it dies when the password changes."""
    return hashlib.sha256(("reset:" + password_hash).encode()).hexdigest()[:24]


def _reset_serializer(secret_key: str, clock: Callable[[], float]) -> URLSafeTimedSerializer:
    class _Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    return URLSafeTimedSerializer(secret_key, salt=RESET_SALT, signer=_Signer)


def make_reset_token(secret_key: str, user: User, clock: Callable[[], float] = time.time) -> str:
    """A signed, time-stamped token for one user's current password hash."""
    return _reset_serializer(secret_key, clock).dumps(
        {"u": user.id, "f": password_fingerprint(user.password_hash)}
    )


def read_reset_token(
    session: Session,
    secret_key: str,
    token: str,
    max_age_s: int = RESET_MAX_AGE_S,
    clock: Callable[[], float] = time.time,
) -> User:
    """The user a valid reset token is for; :class:`RegistryInputError` if it is invalid,
    expired, already used (the password changed since) or the user is inactive."""
    invalid = RegistryInputError(
        "this password reset link is invalid, expired or already used: "
        "ask an administrator for a new one",
        "token",
    )
    if not token or len(token) > 500:
        raise invalid
    try:
        payload = _reset_serializer(secret_key, clock).loads(token, max_age=max_age_s)
    except (BadSignature, SignatureExpired, ValueError, TypeError):
        raise invalid from None
    if not isinstance(payload, dict) or not isinstance(payload.get("u"), int):
        raise invalid
    user = session.get(User, payload["u"]) if 0 < payload["u"] < 2**31 else None
    if (
        user is None
        or not user.active
        or not hmac.compare_digest(str(payload.get("f")), password_fingerprint(user.password_hash))
    ):
        raise invalid
    return user
