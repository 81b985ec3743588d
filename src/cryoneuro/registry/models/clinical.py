"""Participants and their clinical records, in the order of the care pathway:
identifiers → consent → eligibility → neuroma → procedure → follow-up → adverse events →
re-interventions.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cryoneuro.registry.models.base import (
    AEOutcome,
    Anaesthesia,
    Base,
    CreatedMixin,
    ImagingModality,
    JSONType,
    NeuromaType,
    ReinterventionKind,
    Relatedness,
    SafetyCategory,
    Severity,
    Sex,
    check_in,
)


class Participant(CreatedMixin, Base):
    """A pseudonymised participant: ``study_number`` is the only id used outside the site."""

    __tablename__ = "participant"
    __table_args__ = (
        CheckConstraint(check_in("sex", Sex), name="sex"),
        # the dashboard and site-scoped lists filter by site and status
        Index("ix_participant_site_status", "site_id", "status"),
        # the participant list, a page at a time in id order (migration 0009)
        Index("ix_participant_site_id_id", "site_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    study_number: Mapped[str] = mapped_column(String(40), unique=True)
    sex: Mapped[str] = mapped_column(String(10))
    age_at_enrolment_years: Mapped[int] = mapped_column(Integer)
    enrolment_date: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="enrolled")
    arm_code: Mapped[str | None] = mapped_column(String(40), default=None)
    randomised_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    identifier: Mapped[ParticipantIdentifier | None] = relationship(
        back_populates="participant", uselist=False
    )
    neuromas: Mapped[list[Neuroma]] = relationship(order_by="Neuroma.id")
    procedures: Mapped[list[Procedure]] = relationship(order_by="Procedure.procedure_date")
    visits: Mapped[list[FollowUpVisit]] = relationship(order_by="FollowUpVisit.visit_date")
    adverse_events: Mapped[list[AdverseEvent]] = relationship(order_by="AdverseEvent.onset_date")
    reinterventions: Mapped[list[Reintervention]] = relationship(
        order_by="Reintervention.reintervention_date"
    )
    consents: Mapped[list[Consent]] = relationship(order_by="Consent.id")
    eligibility: Mapped[list[EligibilityAnswer]] = relationship(order_by="EligibilityAnswer.id")


class ParticipantIdentifier(Base):
    """Direct identifiers, kept apart: NHS number encrypted (Fernet) plus a keyed hash for
    duplicate detection. Only administrators and investigators may read them."""

    __tablename__ = "participant_identifier"
    __table_args__ = (UniqueConstraint("study_id", "nhs_number_hash"),)
    __audit_redact__ = frozenset({"nhs_number_encrypted", "nhs_number_hash"})

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), unique=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"))
    nhs_number_encrypted: Mapped[str] = mapped_column(Text)
    nhs_number_hash: Mapped[str] = mapped_column(String(64))

    participant: Mapped[Participant] = relationship(back_populates="identifier")


class Consent(Base):
    """Written informed consent (version of the information sheet, date, withdrawal)."""

    __tablename__ = "consent"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    consent_date: Mapped[dt.date] = mapped_column(Date)
    form_version: Mapped[str] = mapped_column(String(40))
    consented: Mapped[bool] = mapped_column(Boolean)
    withdrawal_date: Mapped[dt.date | None] = mapped_column(Date)


class EligibilityAnswer(Base):
    """Whether one screening criterion is met (inclusion) or present (exclusion)."""

    __tablename__ = "eligibility_answer"
    __table_args__ = (UniqueConstraint("participant_id", "criterion_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    criterion_code: Mapped[str] = mapped_column(String(40))
    answer: Mapped[bool] = mapped_column(Boolean)


class Neuroma(Base):
    """The treated neuroma: type, anatomical site, size and prior treatments."""

    __tablename__ = "neuroma"
    __table_args__ = (CheckConstraint(check_in("neuroma_type", NeuromaType), name="type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    neuroma_type: Mapped[str] = mapped_column(String(20))
    anatomical_site: Mapped[str] = mapped_column(String(200))
    laterality: Mapped[str] = mapped_column(String(10), default="")
    size_mm: Mapped[float | None] = mapped_column(Float)
    prior_treatments: Mapped[list] = mapped_column(JSONType, default=list)


class Procedure(CreatedMixin, Base):
    """One cryoablation session with its device, protocol and the stored Plan (JSON)."""

    __tablename__ = "procedure"
    __table_args__ = (
        CheckConstraint(check_in("imaging_modality", ImagingModality), name="imaging"),
        CheckConstraint(check_in("anaesthesia", Anaesthesia), name="anaesthesia"),
        # day 0 of every participant (first procedure) without a sort per query
        Index("ix_procedure_participant_date", "participant_id", "procedure_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    neuroma_id: Mapped[int | None] = mapped_column(ForeignKey("neuroma.id"))
    procedure_date: Mapped[dt.date] = mapped_column(Date)
    imaging_modality: Mapped[str] = mapped_column(String(20))
    anaesthesia: Mapped[str] = mapped_column(String(20))
    device_name: Mapped[str] = mapped_column(String(200))
    manufacturer: Mapped[str] = mapped_column(String(200))
    device_lot: Mapped[str] = mapped_column(String(100))
    probe_model: Mapped[str] = mapped_column(String(200), default="")
    gas: Mapped[str] = mapped_column(String(20))
    protocol: Mapped[str] = mapped_column(Text, default="")
    operator: Mapped[str] = mapped_column(String(200))
    plan: Mapped[dict | None] = mapped_column(JSONType)
    predicted_relief_days: Mapped[float | None] = mapped_column(Float)


class FollowUpVisit(CreatedMixin, Base):
    """A follow-up visit: raw instrument answers (JSON) and the scores derived from them."""

    __tablename__ = "followup_visit"
    __table_args__ = (UniqueConstraint("participant_id", "visit_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    visit_code: Mapped[str] = mapped_column(String(40))
    visit_date: Mapped[dt.date] = mapped_column(Date)
    answers: Mapped[dict] = mapped_column(JSONType, default=dict)
    scores: Mapped[dict] = mapped_column(JSONType, default=dict)


class AdverseEvent(CreatedMixin, Base):
    """An adverse event in the NICE HTG652 safety categories."""

    __tablename__ = "adverse_event"
    __table_args__ = (
        CheckConstraint(check_in("category", SafetyCategory), name="category"),
        CheckConstraint(check_in("severity", Severity), name="severity"),
        CheckConstraint(check_in("relatedness", Relatedness), name="relatedness"),
        CheckConstraint(check_in("outcome", AEOutcome), name="outcome"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    procedure_id: Mapped[int | None] = mapped_column(ForeignKey("procedure.id"))
    onset_date: Mapped[dt.date] = mapped_column(Date)
    category: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(20))
    serious: Mapped[bool] = mapped_column(Boolean)
    relatedness: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(30))
    device_incident: Mapped[bool] = mapped_column(Boolean, default=False)


class Reintervention(CreatedMixin, Base):
    """A further intervention on the treated neuroma (a NICE safety outcome)."""

    __tablename__ = "reintervention"
    __table_args__ = (CheckConstraint(check_in("kind", ReinterventionKind), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    reintervention_date: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(30))
    description: Mapped[str] = mapped_column(Text, default="")
