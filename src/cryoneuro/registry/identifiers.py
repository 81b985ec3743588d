"""Encryption and keyed hashing of direct identifiers.

The NHS number is stored Fernet-encrypted (readable by administrators and investigators
through the service layer only) and as an HMAC-SHA256 so duplicates can be refused without
decrypting every row. Both keys come from :class:`~cryoneuro.registry.settings.RegistrySettings`.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken

from cryoneuro.registry.errors import RegistryError
from cryoneuro.registry.settings import RegistrySettings


class IdentifierKeyError(RegistryError):
    """The identifier key cannot decrypt the stored NHS number (wrong key file)."""

    status_code = 500


def encrypt_identifier(settings: RegistrySettings, value: str) -> str:
    return Fernet(settings.fernet_key()).encrypt(value.encode()).decode()


def decrypt_identifier(settings: RegistrySettings, token: str) -> str:
    try:
        return Fernet(settings.fernet_key()).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise IdentifierKeyError("cannot decrypt identifier: wrong registry key file") from exc


def identifier_hash(settings: RegistrySettings, value: str) -> str:
    """Keyed hash: equal numbers collide, but the number cannot be recovered by brute force
    without the key (there are only ~10⁹ valid NHS numbers, so a plain hash would not do)."""
    key = settings.fernet_key()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
