"""One settings object for the registry (environment variables ``CRYONEURO_*``).

There are no secrets here and no default secret anywhere: the three keys live in a key file
(:mod:`cryoneuro.registry.keys`, created by ``cryoneuro keys init``) and are attached to the
settings with :meth:`RegistrySettings.with_keys` when the server or a command starts. Code
that needs a key before they are attached fails with :class:`~cryoneuro.registry.keys.KeyFileError`
instead of falling back to something guessable.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import PrivateAttr
from pydantic_settings import BaseSettings, SettingsConfigDict

from cryoneuro.registry.keys import KeyFileError, RegistryKeys, default_key_file, load_key_file


class RegistrySettings(BaseSettings):
    """Database URL, key-file location and the HTTP session/cookie policy."""

    model_config = SettingsConfigDict(env_prefix="CRYONEURO_", extra="ignore")

    db_url: str = "sqlite:///cryoneuro.db"
    #: The key file; default beside a SQLite database, else ~/.config/cryoneuro/ (keys.py).
    key_file: Path | None = None
    #: Session cookies carry ``Secure`` (sent only over HTTPS). Set false only for local
    #: development over plain http://127.0.0.1.
    secure_cookies: bool = True
    #: A session ends after this long without a request …
    session_idle_s: int = 30 * 60
    #: … and in any case this long after the log-in.
    session_max_age_s: int = 8 * 3600
    #: The address users reach the registry at (https://registry.example.nhs.uk); password
    #: reset links are built from it, never from the request's Host header.
    public_base_url: str = ""
    #: A request body must arrive whole within this many seconds (else 408; middleware.py).
    body_deadline_s: float = 15.0

    # --- participant self-report (ePRO) and reminders (issue 14; docs/registry.md) ---------
    #: An ePRO link works for this many days after it is issued (and once).
    epro_link_ttl_days: int = 14
    #: Shown to a participant whose answer is high-risk (and the site is alerted). Set the
    #: site's own wording and telephone number here.
    epro_safety_message: str = (
        "Your answers suggest your pain is severe or worse than before. Please contact your "
        "clinical team today. If you feel very unwell, call NHS 111, or 999 in an emergency."
    )
    #: A self-reported pain rating (0-10 scales) at or above this is high-risk.
    epro_high_risk_pain: int = 10
    #: Answers to "since the procedure, my pain is ..." that are high-risk.
    epro_high_risk_change: list[str] = ["much_worse"]
    #: Overdue visits are chased once, and only up to this many days after the window closed.
    reminders_overdue_max_days: int = 60
    #: SMTP relay for reminders. Empty host: not configured, and nothing is sent. No user name
    #: or password has a default; give them by environment (CRYONEURO_SMTP_PASSWORD).
    smtp_host: str = ""
    #: 0: the usual port for the security mode (587 starttls, 465 ssl, 25 none).
    smtp_port: int = 0
    #: ``starttls`` (default), ``ssl`` (implicit TLS) or ``none`` (a relay on this host only).
    smtp_security: str = "starttls"
    smtp_username: str = ""
    smtp_password: str = ""
    #: The From: address of reminder e-mails (required to send).
    smtp_from: str = ""
    smtp_timeout_s: float = 30.0

    _keys: RegistryKeys | None = PrivateAttr(default=None)

    def key_path(self) -> Path:
        return self.key_file or default_key_file(self.db_url)

    def with_keys(self, keys: RegistryKeys) -> RegistrySettings:
        """A copy of these settings carrying ``keys``."""
        copy = self.model_copy()
        copy._keys = keys
        return copy

    def load_keys(self) -> RegistrySettings:
        """A copy carrying the keys read from :meth:`key_path` (KeyFileError if unusable)."""
        return self.with_keys(load_key_file(self.key_path()))

    @property
    def keys(self) -> RegistryKeys:
        if self._keys is None:
            raise KeyFileError("no registry keys loaded: create them with `cryoneuro keys init`")
        return self._keys

    @property
    def has_keys(self) -> bool:
        return self._keys is not None

    @property
    def secret_key(self) -> str:
        """Signs session cookies and password-reset links."""
        return self.keys.session_secret()

    def fernet_key(self) -> bytes:
        """The Fernet key for NHS numbers."""
        return self.keys.fernet_key()

    def randomisation_seed_secret(self) -> bytes:
        """Seeds the block lists, so the list cannot be rebuilt without it."""
        return self.keys.randomisation_key


@lru_cache(maxsize=1)
def get_settings() -> RegistrySettings:
    """Settings read once from the environment (without keys: see :meth:`load_keys`)."""
    return RegistrySettings()
