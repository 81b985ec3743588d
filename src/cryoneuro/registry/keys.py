"""The registry's secret keys, kept in one key file outside the database.

Why a file and not a default in the source: a constant in the source lets anyone who reads
the code forge an administrator's session, rebuild the NHS-number key and predict the
randomisation lists (issue 13). So there is no built-in key: ``cryoneuro keys init`` (or the
first ``cryoneuro db upgrade``) writes four random keys into a JSON file created with mode
0600, and the server refuses to start without it (``cryoneuro serve --dev`` instead uses
ephemeral random keys and says so loudly).

- ``session_key``: signs session cookies, CSRF-bearing sessions and password-reset links;
- ``identifier_key``: the Fernet key (AES-128-CBC + HMAC-SHA256) that encrypts NHS numbers, and
  the HMAC key of their duplicate-detection hash;
- ``randomisation_key``: seeds the concealed permuted-block lists and the de-identification
  date offsets;
- ``audit_key``: keys the HMAC chain over the audit trail (audit.py), so someone who can write
  to the database but has not got the key file cannot recompute the chain after an edit.

The database stores a **fingerprint** of the keys, HMAC-SHA256(key, constant label) for each,
never the keys: a server started with another key file (a wrong copy, a restored backup of
the wrong environment) refuses to start with one line instead of silently failing to decrypt
NHS numbers or to detect duplicates. Rotation is described in docs/registry.md.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryoneuro.registry.errors import RegistryError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from cryoneuro.registry.settings import RegistrySettings

KEY_FILE_FORMAT = "cryoneuro-registry-keys-1"
#: The label each key signs to give its fingerprint (HMAC, so the key cannot be recovered).
FINGERPRINT_LABEL = b"cryoneuro registry key fingerprint v1"
KEY_NAMES = ("session_key", "identifier_key", "randomisation_key", "audit_key")


class KeyFileError(RegistryError):
    """The key file is missing, unreadable, malformed, too open, or not this database's."""

    exit_code = 2


@dataclass(frozen=True)
class RegistryKeys:
    """The keys as raw bytes (32 random bytes each)."""

    session_key: bytes
    identifier_key: bytes
    randomisation_key: bytes
    audit_key: bytes

    @classmethod
    def generate(cls) -> RegistryKeys:
        """Fresh keys from the operating system's CSPRNG (:mod:`secrets`)."""
        return cls(*(secrets.token_bytes(32) for _ in KEY_NAMES))

    def fernet_key(self) -> bytes:
        """The identifier key in Fernet's encoding (urlsafe base64 of 32 bytes)."""
        return base64.urlsafe_b64encode(self.identifier_key)

    def session_secret(self) -> str:
        """The session key as text (itsdangerous/Starlette take a string)."""
        return self.session_key.hex()

    def fingerprint(self) -> str:
        """HMAC-SHA256 of a constant label under each key, joined: safe to store."""
        parts = [
            hmac.new(getattr(self, name), FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:32]
            for name in KEY_NAMES
        ]
        return ":".join(parts)

    def to_json(self) -> str:
        body = {
            "format": KEY_FILE_FORMAT,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            **{name: base64.urlsafe_b64encode(getattr(self, name)).decode() for name in KEY_NAMES},
        }
        return json.dumps(body, indent=2) + "\n"


def default_key_file(db_url: str) -> Path:
    """Beside a SQLite database file (``registry.db`` → ``registry.db.keys.json``); for other
    databases ``$XDG_CONFIG_HOME/cryoneuro/registry-keys.json`` (``~/.config`` by default)."""
    if db_url.startswith("sqlite:///") and db_url.removeprefix("sqlite:///") not in (
        "",
        ":memory:",
    ):
        return Path(db_url.removeprefix("sqlite:///") + ".keys.json")
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "cryoneuro" / "registry-keys.json"


def write_key_file(path: Path, keys: RegistryKeys | None = None) -> RegistryKeys:
    """Create ``path`` (mode 0600, never overwriting) holding ``keys`` (default: new ones)."""
    keys = keys or RegistryKeys.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(
            f"{path} already exists: keys are never overwritten (see key "
            "rotation in docs/registry.md)"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(keys.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    return keys


def _decode(path: Path, body: dict, name: str) -> bytes:
    value = body.get(name)
    try:
        raw = base64.urlsafe_b64decode(value.encode()) if isinstance(value, str) else b""
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != 32:
        raise KeyFileError(
            f"{path}: '{name}' is not 32 bytes of urlsafe base64: restore the "
            "file from its backup or create keys with `cryoneuro keys init`"
        )
    return raw


def load_key_file(path: Path) -> RegistryKeys:
    """Read and check a key file: present, owner-only permissions, well-formed."""
    hint = (
        "create one with `cryoneuro keys init`, or run `cryoneuro serve --dev` for "
        "throwaway development keys"
    )
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"no registry key file at {path}: {hint}") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    if os.name == "posix" and stat.S_IMODE(info.st_mode) & 0o077:
        raise KeyFileError(
            f"key file {path} is readable by others (mode "
            f"{stat.S_IMODE(info.st_mode):o}): run `chmod 600 {path}`"
        )
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise KeyFileError(
            f"key file {path} is not valid JSON: restore it from its backup"
        ) from None
    if not isinstance(body, dict) or body.get("format") != KEY_FILE_FORMAT:
        raise KeyFileError(
            f"key file {path} is not a cryoneuro registry key file (format "
            f"'{KEY_FILE_FORMAT}' expected)"
        )
    return RegistryKeys(*(_decode(path, body, name) for name in KEY_NAMES))


FINGERPRINT_SETTING = "key_fingerprint"


def check_database_keys(
    session: Session, keys: RegistryKeys, key_path: Path | str, *, register: bool = True
) -> str:
    """Refuse keys that are not this database's; record the fingerprint on first use.

    Returns ``"match"`` or ``"registered"``. A database without a fingerprint (created before
    keys existed) is accepted only if the identifier key decrypts an NHS number already stored
    and its keyed hash matches, so a wrong key cannot silently break duplicate detection.
    """
    from sqlalchemy import select

    from cryoneuro.registry.models import ParticipantIdentifier, RegistrySetting, utcnow

    row = session.get(RegistrySetting, FINGERPRINT_SETTING)
    expected = keys.fingerprint()
    if row is not None:
        if hmac.compare_digest(row.value, expected):
            return "match"
        stored = row.value.split(":")
        wrong = [
            name
            for name, a, b in zip(KEY_NAMES, stored, expected.split(":"), strict=False)
            if a != b
        ] or list(KEY_NAMES)
        raise KeyFileError(
            f"key file {key_path} does not belong to this database ({', '.join(wrong)} "
            "differ): use the key file created with it (see key rotation in "
            "docs/registry.md)"
        )
    stored_identifier = session.execute(
        select(
            ParticipantIdentifier.nhs_number_encrypted, ParticipantIdentifier.nhs_number_hash
        ).limit(1)
    ).first()
    if stored_identifier is not None:
        from cryptography.fernet import Fernet, InvalidToken

        try:
            number = Fernet(keys.fernet_key()).decrypt(stored_identifier[0].encode()).decode()
        except (InvalidToken, ValueError):
            number = None
        digest = (
            hmac.new(keys.fernet_key(), number.encode(), hashlib.sha256).hexdigest()
            if number is not None
            else ""
        )
        if number is None or not hmac.compare_digest(digest, stored_identifier[1]):
            raise KeyFileError(
                f"identifier key in {key_path} cannot read the NHS numbers "
                "stored in this database: use the key file created with it"
            )
    if register:
        from cryoneuro.registry.audit import start_chain

        session.add(RegistrySetting(name=FINGERPRINT_SETTING, value=expected, updated_at=utcnow()))
        session.flush()
        start_chain(session, keys.audit_key)
    return "registered"


DEV_WARNING = (
    "WARNING: --dev: ephemeral random keys. Sessions, NHS numbers and randomisation "
    "lists written now become unreadable when the server stops. Never use --dev "
    "with real patients."
)


def ensure_keys(settings: RegistrySettings, *, dev: bool = False) -> RegistrySettings:
    """Settings carrying keys: those already attached, fresh ephemeral ones (``dev``), or
    the key file's (:class:`KeyFileError` when it is missing or unusable)."""
    if settings.has_keys:
        return settings
    if dev:
        return settings.with_keys(RegistryKeys.generate())
    return settings.load_keys()


def check_startup(
    settings: RegistrySettings, factory: sessionmaker[Session], *, dev: bool = False
) -> str:
    """Run before serving: the database must accept these keys (see
    :func:`check_database_keys`). In ``dev`` mode a database that already has keys is
    refused, so throwaway keys are never mixed into a real registry."""
    from cryoneuro.registry.db import transaction
    from cryoneuro.registry.models import RegistrySetting

    if dev:
        with factory() as session:
            if session.get(RegistrySetting, FINGERPRINT_SETTING) is not None:
                raise KeyFileError(
                    "--dev refused: this database has registered keys; start "
                    f"without --dev using its key file ({settings.key_path()})"
                )
        return "dev"
    with transaction(factory) as session:
        return check_database_keys(session, settings.keys, settings.key_path())


def rotate_session_key(settings: RegistrySettings, factory: sessionmaker[Session]) -> RegistryKeys:
    """Replace the session key (every session and reset link ends; nothing else changes).

    The new key file is written beside the old one first (0600), then the database's
    fingerprint changes, every server-side session is revoked and the rotation is audited in
    one transaction, and only then does the new file replace the old (``os.replace``). If
    that last step fails, the server refuses to start and the message names the new file.
    """
    from sqlalchemy import update

    from cryoneuro.registry.audit import log_event
    from cryoneuro.registry.auth import Actor
    from cryoneuro.registry.db import transaction
    from cryoneuro.registry.models import RegistrySetting, UserSession, utcnow

    old = settings.keys
    new = RegistryKeys(
        secrets.token_bytes(32), old.identifier_key, old.randomisation_key, old.audit_key
    )
    path = settings.key_path()
    pending = path.with_name(path.name + ".new")
    pending.unlink(missing_ok=True)
    write_key_file(pending, new)
    try:
        with transaction(factory) as session:
            check_database_keys(session, old, path, register=False)
            row = session.get(RegistrySetting, FINGERPRINT_SETTING)
            if row is None:
                raise KeyFileError(
                    "this database has no registered keys yet: start the server "
                    "once (or run `cryoneuro db upgrade`) before rotating"
                )
            row.value, row.updated_at = new.fingerprint(), utcnow()
            session.execute(
                update(UserSession)
                .where(UserSession.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            log_event(
                session,
                Actor.system(),
                "key-rotate",
                table="registry_setting",
                row_id=FINGERPRINT_SETTING,
                details={"key": "session_key"},
                reason="session key rotated",
            )
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    try:
        os.replace(pending, path)
    except OSError as exc:
        raise KeyFileError(
            f"the database now expects the keys in {pending}, but moving it to "
            f"{path} failed ({exc.strerror}): move it by hand"
        ) from None
    return new
