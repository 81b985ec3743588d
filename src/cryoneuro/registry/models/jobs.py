"""Background jobs: long work (a full 3D plan) queued by the web app and run by
``cryoneuro worker`` (issue 18 item 4), so no request ever computes a plan.

Why a table and not a message broker: the registry's database is already the one thing every
registry process shares and backs up, it gives the atomic claim we need (``SELECT … FOR
UPDATE SKIP LOCKED`` on PostgreSQL, a conditional ``UPDATE`` under SQLite's single writer),
and a job's outcome (the plan bundle) is stored in the same database in one transaction.

The row itself is not audited column by column (``__audited__ = False``): progress changes
many times a minute and would flood the trail. Instead every step that matters — queued,
started, retried, done, failed, cancel requested, cancelled — is written to the audit trail
as an event by :mod:`cryoneuro.registry.services.jobs`, and the stored bundle's files are
audited as any upload.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cryoneuro.registry.models.base import Base, StrEnum, check_in, utcnow


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


class JobKind(StrEnum):
    plan = "plan"


#: States a job never leaves.
FINAL_STATES = frozenset({JobState.done, JobState.failed, JobState.cancelled})


class Job(Base):
    """One unit of background work on a procedure."""

    __tablename__ = "job"
    __audited__ = False
    __table_args__ = (
        CheckConstraint(check_in("state", JobState), name="state"),
        CheckConstraint(check_in("kind", JobKind), name="kind"),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress"),
        CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="attempts"),
        # the claim's query: the oldest queued job
        Index("ix_job_state_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedure.id"), index=True)
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)
    #: Reason for change recorded when the finished bundle replaces an existing one.
    reason: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(12), default=JobState.queued.value)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(String(200), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    #: The last attempt's error, one line (kept when a retry succeeds, for the record).
    error: Mapped[str | None] = mapped_column(String(500))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Which worker holds it (host:pid), while running.
    worker: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    created_by: Mapped[str] = mapped_column(String(80))
