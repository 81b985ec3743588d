"""One settings object for the registry (environment variables ``CRYONEURO_*``).

Secrets have development defaults so that ``cryoneuro serve`` works out of the box on a
laptop; a production deployment must set ``CRYONEURO_SECRET_KEY``,
``CRYONEURO_IDENTIFIER_KEY`` and ``CRYONEURO_RANDOMISATION_SECRET`` (see docs/registry.md).
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict

_DEV_SECRET = "cryoneuro-development-secret-change-me"


class RegistrySettings(BaseSettings):
    """Database URL and the three secrets (sessions, identifiers, randomisation list)."""

    model_config = SettingsConfigDict(env_prefix="CRYONEURO_", extra="ignore")

    db_url: str = "sqlite:///cryoneuro.db"
    #: Signs session cookies and CSRF tokens.
    secret_key: str = _DEV_SECRET
    #: Fernet key (urlsafe base64, 32 bytes) for NHS numbers; derived from secret_key if empty.
    identifier_key: str = ""
    #: Seeds the concealed randomisation lists; derived from secret_key if empty.
    randomisation_secret: str = ""
    #: Session cookies only over HTTPS in production.
    https_only_cookies: bool = False
    session_max_age_s: int = 8 * 3600

    def fernet_key(self) -> bytes:
        """The Fernet key: explicit, or derived from the secret key (development only)."""
        if self.identifier_key:
            return self.identifier_key.encode()
        digest = hashlib.sha256(("identifier:" + self.secret_key).encode()).digest()
        return base64.urlsafe_b64encode(digest)

    def randomisation_seed_secret(self) -> bytes:
        """Secret that seeds the block lists, so the list cannot be rebuilt without it."""
        return (self.randomisation_secret or ("randomisation:" + self.secret_key)).encode()


@lru_cache(maxsize=1)
def get_settings() -> RegistrySettings:
    """Settings read once from the environment."""
    return RegistrySettings()
