"""Registry-wide settings stored in the database and server-side log-in sessions."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cryoneuro.registry.models.base import Base, utcnow


class RegistrySetting(Base):
    """A named value the database must remember, e.g. the key fingerprint (keys.py)."""

    __tablename__ = "registry_setting"
    __audited__ = False

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UserSession(Base):
    """A log-in session. The cookie carries a random token; only its SHA-256 is stored, so a
    copy of the database does not give live sessions. Revoked on log-out, password change or
    reset, and deactivation; expires after the idle and absolute limits (settings)."""

    __tablename__ = "user_session"
    __audited__ = False

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    ip: Mapped[str] = mapped_column(String(64), default="")
