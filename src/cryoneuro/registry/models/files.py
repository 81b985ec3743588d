"""Files attached to a procedure: the plan bundle (plan.json, report, NIfTI volumes).

Stored in the database (not on disk) so a backup of the database is a backup of everything,
and an upload is one transaction with the procedure's ``plan``/``predicted_relief_days``.
The audit trail records each file's name, size and SHA-256 (the bytes are redacted).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cryoneuro.registry.models.base import Base, utcnow


class PlanFile(Base):
    """One file of a procedure's plan bundle; ``name`` is unique per procedure."""

    __tablename__ = "plan_file"
    __table_args__ = (UniqueConstraint("procedure_id", "name"),)
    __audit_redact__ = frozenset({"content"})

    id: Mapped[int] = mapped_column(primary_key=True)
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedure.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    #: Deferred: listing a procedure's files does not load their bytes.
    content: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, deferred=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))
