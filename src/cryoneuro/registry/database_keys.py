"""The registry's keys against its database: fingerprint check, start-up check, rotation.

The keys themselves and their file are in :mod:`cryoneuro.registry.keys`; this module is the
part that needs the database, the audit trail and the settings, split off so that the key file
code stays at the bottom of the registry (the settings and the audit trail import it) and no
import cycle runs through it. Why each check exists is in the docstring of ``keys.py`` and in
docs/registry.md (key rotation).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cryoneuro.registry.audit import log_event, start_chain
from cryoneuro.registry.auth import Actor
from cryoneuro.registry.db import transaction
from cryoneuro.registry.keys import KEY_NAMES, KeyFileError, RegistryKeys, write_key_file
from cryoneuro.registry.models import ParticipantIdentifier, RegistrySetting, UserSession, utcnow
from cryoneuro.registry.settings import RegistrySettings

FINGERPRINT_SETTING = "key_fingerprint"


def check_database_keys(
    session: Session, keys: RegistryKeys, key_path: Path | str, *, register: bool = True
) -> str:
    """Refuse keys that are not this database's; record the fingerprint on first use.

    Returns ``"match"`` or ``"registered"``. A database without a fingerprint (created before
    keys existed) is accepted only if the identifier key decrypts an NHS number already stored
    and its keyed hash matches, so a wrong key cannot silently break duplicate detection.
    """
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
