"""Append-only audit entries and the concealed randomisation list."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cryoneuro.registry.models.base import Base, JSONType, utcnow


class AuditEntry(Base):
    """One create/update/delete: who, when, which row, old and new values, why.

    Never updated or deleted: the service layer has no path to do so, a flush that tries
    raises :class:`~cryoneuro.registry.errors.AuditTamperError`, and database triggers
    (SQLite and PostgreSQL, see the migration) reject UPDATE and DELETE.
    """

    __tablename__ = "audit_entry"
    __audited__ = False
    # the monitor's view of one record's history, and the trail in time order
    __table_args__ = (
        Index("ix_audit_entry_table_row", "table_name", "row_id"),
        Index("ix_audit_entry_occurred_at", "occurred_at"),
        # the newest entry of a table: the dashboard cache's stamps (migration 0011)
        Index("ix_audit_entry_table_id", "table_name", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    user_id: Mapped[int | None] = mapped_column(Integer)
    username: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(10))
    table_name: Mapped[str] = mapped_column(String(60))
    row_id: Mapped[str] = mapped_column(String(60))
    old_values: Mapped[dict | None] = mapped_column(JSONType)
    new_values: Mapped[dict | None] = mapped_column(JSONType)
    reason: Mapped[str] = mapped_column(Text, default="")
    #: The site the entry concerns (None: study-wide or account events, administrators only).
    site_id: Mapped[int | None] = mapped_column(Integer, index=True)
    #: HMAC-SHA256 over the previous entry's hash and this entry's content (audit.py).
    entry_hash: Mapped[str | None] = mapped_column(String(64))


class RandomisationStratum(Base):
    """One (study, site) stratum; its row is the lock that serialises allocations."""

    __tablename__ = "randomisation_stratum"
    __table_args__ = (UniqueConstraint("study_id", "site_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    blocks_generated: Mapped[int] = mapped_column(Integer, default=0)
    allocations: Mapped[int] = mapped_column(Integer, default=0)


class RandomisationSlot(Base):
    """One concealed allocation in a permuted block; filled in order, never reused."""

    __tablename__ = "randomisation_slot"
    __table_args__ = (UniqueConstraint("stratum_id", "sequence"),)
    #: Not audited row by row (the list is concealed); an allocation is audited through the
    #: participant (arm_code, randomised_at) and stratum updates it makes.
    __audited__ = False

    id: Mapped[int] = mapped_column(primary_key=True)
    stratum_id: Mapped[int] = mapped_column(ForeignKey("randomisation_stratum.id"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)
    block_number: Mapped[int] = mapped_column(Integer)
    block_size: Mapped[int] = mapped_column(Integer)
    arm_code: Mapped[str] = mapped_column(String(40))
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participant.id"), unique=True)
    allocated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    allocated_by: Mapped[str | None] = mapped_column(String(80))
    note: Mapped[str] = mapped_column(Text, default="")
