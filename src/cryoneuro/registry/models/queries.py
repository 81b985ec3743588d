"""Data queries, visits not done, item-level missing codes and protocol deviations (issue 14).

Why here: these four record *why a value is what it is* (or why it is absent), which GCP
monitoring needs (ICH E6(R3) §3.11.4 source data verification; a query is how a monitor asks a
site about a value) and the CONSORT flow needs ("lost to follow-up (give reasons)"). They sit
beside the clinical records rather than inside them, so the clinical tables keep their shape.

Vocabularies (stored codes; the tidy export and the analysis use the same words):

* :class:`NotDoneReason` — why a scheduled follow-up visit did not take place: the CONSORT
  categories (lost to follow-up, withdrew, died) plus "unable" and "other" (with text).
* :class:`MissingCode` — why one instrument item has no value at a visit that took place. The
  codes are HL7 FHIR's *DataAbsentReason* codes (http://terminology.hl7.org/CodeSystem/
  data-absent-reason, the CDISC/HL7 "null flavour" idea): ``not-asked`` (NullFlavor NASK),
  ``asked-declined`` (the participant refused), ``asked-unknown`` (ASKU: asked, did not know),
  ``not-applicable`` (NA) and ``unknown`` (UNK). A coded item is never a value: it is not
  scored (see services/visit_status.py).
* :class:`DeviationCategory` — protocol deviation categories: eligibility, visit window,
  procedure, consent, other.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cryoneuro.registry.models.base import (
    Base,
    CreatedMixin,
    JSONType,
    StrEnum,
    check_in,
    utcnow,
)


class QueryStatus(StrEnum):
    open = "open"
    answered = "answered"
    closed = "closed"


class QueryRecordType(StrEnum):
    """The records a query can be raised on."""

    participant = "participant"
    neuroma = "neuroma"
    procedure = "procedure"
    followup_visit = "followup_visit"
    adverse_event = "adverse_event"


class QueryAction(StrEnum):
    """One step of a query's thread."""

    raise_ = "raise"
    correct = "correct"
    explain = "explain"
    close = "close"
    reopen = "reopen"


class NotDoneReason(StrEnum):
    lost_to_follow_up = "lost_to_follow_up"
    withdrew = "withdrew"
    died = "died"
    unable = "unable"
    other = "other"


class MissingCode(StrEnum):
    """HL7 FHIR DataAbsentReason codes (a subset)."""

    not_asked = "not-asked"
    asked_declined = "asked-declined"
    asked_unknown = "asked-unknown"
    not_applicable = "not-applicable"
    unknown = "unknown"


class DeviationCategory(StrEnum):
    eligibility = "eligibility"
    visit_window = "visit_window"
    procedure = "procedure"
    consent = "consent"
    other = "other"


class DataQuery(CreatedMixin, Base):
    """A monitor's question about one field of one record, and where it stands."""

    __tablename__ = "data_query"
    __table_args__ = (
        CheckConstraint(check_in("status", QueryStatus), name="status"),
        CheckConstraint(check_in("record_type", QueryRecordType), name="record_type"),
        # the open-query lists: per site and per monitor
        Index("ix_data_query_site_status", "site_id", "status"),
        Index("ix_data_query_raised_by_status", "raised_by_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    #: The participant's site (kept here so lists and the audit scope need no join).
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    record_type: Mapped[str] = mapped_column(String(30))
    record_id: Mapped[int] = mapped_column(Integer)
    #: Column name, or ``answers.<instrument>.<item>`` for a follow-up answer.
    field: Mapped[str] = mapped_column(String(100))
    #: The value when the query was raised (JSON: number, text, date text or null).
    value_at_raise: Mapped[Any] = mapped_column(JSONType, nullable=True)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default=QueryStatus.open.value)
    raised_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    raised_by: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    steps: Mapped[list[DataQueryStep]] = relationship(order_by="DataQueryStep.id")


class DataQueryStep(Base):
    """One step of a query's thread: raised, corrected, explained, closed, re-opened.

    ``old_value``/``new_value`` are the field's value before and after (equal unless the step
    is a correction). The audit trail records the same step as audit entries too; this table
    is the thread the site can read (site staff do not read the audit trail).
    """

    __tablename__ = "data_query_step"
    __table_args__ = (CheckConstraint(check_in("action", QueryAction), name="action"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    query_id: Mapped[int] = mapped_column(ForeignKey("data_query.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    action: Mapped[str] = mapped_column(String(10))
    text: Mapped[str] = mapped_column(Text, default="")
    old_value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    new_value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    username: Mapped[str] = mapped_column(String(80))
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class VisitNotDone(CreatedMixin, Base):
    """A scheduled follow-up visit that did not take place, and why."""

    __tablename__ = "visit_not_done"
    __table_args__ = (
        UniqueConstraint("participant_id", "visit_code"),
        CheckConstraint(check_in("reason", NotDoneReason), name="reason"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    visit_code: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(30))
    #: Required for ``other``; optional detail otherwise (free text: dropped from de-identified).
    reason_text: Mapped[str] = mapped_column(Text, default="")
    #: When the site established it (e.g. the date of death, of the last contact attempt).
    recorded_date: Mapped[dt.date] = mapped_column(Date)


class MissingItem(Base):
    """One instrument item without a value at a visit that took place, with its code."""

    __tablename__ = "missing_item"
    __table_args__ = (
        UniqueConstraint("visit_id", "instrument", "item"),
        CheckConstraint(check_in("code", MissingCode), name="code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("followup_visit.id"), index=True)
    #: The visit's participant (the audit trail scopes entries by the participant's site).
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"))
    instrument: Mapped[str] = mapped_column(String(40))
    item: Mapped[str] = mapped_column(String(40))
    code: Mapped[str] = mapped_column(String(20))


class ProtocolDeviation(CreatedMixin, Base):
    """A departure from the protocol, by category (reported in the analysis)."""

    __tablename__ = "protocol_deviation"
    __table_args__ = (CheckConstraint(check_in("category", DeviationCategory), name="category"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    deviation_date: Mapped[dt.date] = mapped_column(Date)
    category: Mapped[str] = mapped_column(String(20))
    #: The visit concerned, if any (e.g. a visit outside its window).
    visit_code: Mapped[str] = mapped_column(String(40), default="")
    description: Mapped[str] = mapped_column(Text)
