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

This module holds the keys and their file only, and imports nothing of the registry but its
errors, so the settings and the audit trail can use it; checking the keys against a database,
the start-up check and rotation are in :mod:`cryoneuro.registry.database_keys`.
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

from cryoneuro.registry.errors import RegistryError

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
