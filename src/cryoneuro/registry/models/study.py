"""Studies, arms, visit schedule, eligibility criteria, sites, users and memberships."""

from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cryoneuro.registry.models.base import (
    Base,
    CreatedMixin,
    JSONType,
    Role,
    StudyDesign,
    check_in,
)


class Study(CreatedMixin, Base):
    """A research study: an RCT (Morton's neuroma) or a case series (stump/traumatic)."""

    __tablename__ = "study"
    __table_args__ = (CheckConstraint(check_in("design", StudyDesign), name="design"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    design: Mapped[str] = mapped_column(String(20))
    #: A test or training study: only here are the NHS test-range numbers (999…) and
    #: 0000000000 accepted (migration 0004).
    test_study: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Roles kept blind to allocation in this study (e.g. ["statistician", "monitor"]): they
    #: see "blinded" instead of arms, pain pooled over arms, and cannot randomise.
    blinded_roles: Mapped[list] = mapped_column(JSONType, default=list)

    arms: Mapped[list[StudyArm]] = relationship(back_populates="study", order_by="StudyArm.id")
    visits: Mapped[list[VisitDefinition]] = relationship(order_by="VisitDefinition.day")
    criteria: Mapped[list[EligibilityCriterion]] = relationship(order_by="EligibilityCriterion.id")
    sites: Mapped[list[Site]] = relationship(secondary="study_site", order_by="Site.code")


class StudyArm(Base):
    """An arm of an RCT; ``ratio`` is its share within each permuted block."""

    __tablename__ = "study_arm"
    __table_args__ = (UniqueConstraint("study_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(200))
    ratio: Mapped[int] = mapped_column(Integer, default=1)

    study: Mapped[Study] = relationship(back_populates="arms")


class VisitDefinition(Base):
    """A scheduled follow-up visit: target day after the procedure and its window."""

    __tablename__ = "visit_definition"
    __table_args__ = (UniqueConstraint("study_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(200))
    day: Mapped[int] = mapped_column(Integer)
    window_before_days: Mapped[int] = mapped_column(Integer, default=0)
    window_after_days: Mapped[int] = mapped_column(Integer, default=0)
    #: Instrument codes collected at this visit, e.g. ["nrs", "eq5d5l", "moxfq"].
    instruments: Mapped[list] = mapped_column(JSONType, default=list)


class EligibilityCriterion(Base):
    """An inclusion or exclusion criterion answered at screening."""

    __tablename__ = "eligibility_criterion"
    __table_args__ = (
        UniqueConstraint("study_id", "code"),
        CheckConstraint("kind IN ('inclusion', 'exclusion')", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(10))


class Site(CreatedMixin, Base):
    """A recruiting hospital; randomisation is stratified by site."""

    __tablename__ = "site"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(200))


class StudySite(Base):
    __tablename__ = "study_site"

    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), primary_key=True)


class User(CreatedMixin, Base):
    """A registry user with one role; non-administrators act only at their member sites."""

    __tablename__ = "app_user"
    __table_args__ = (CheckConstraint(check_in("role", Role), name="role"),)
    __audit_redact__ = frozenset({"password_hash"})

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    sites: Mapped[list[Site]] = relationship(secondary="site_membership", order_by="Site.code")


class SiteMembership(Base):
    __tablename__ = "site_membership"

    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), primary_key=True)
