"""Declarative base, vocabularies and shared column helpers.

Vocabularies are plain string enums stored as text (with a CHECK constraint) so that
exports, REDCap choices and the API use the same clinical codes.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import ClassVar

from sqlalchemy import JSON, DateTime, MetaData, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base for every registry table; audited unless ``__audited__`` is False."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict] = {dict: JSON, list: JSON}

    __audited__: bool = True
    #: Columns whose values never go into the audit trail in clear (identifiers).
    __audit_redact__: frozenset[str] = frozenset()


def utcnow() -> dt.datetime:
    """Timezone-aware now, the one clock of the registry."""
    return dt.datetime.now(dt.UTC)


class CreatedMixin:
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


class StrEnum(enum.StrEnum):
    """Enum whose values are the stored codes."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def codes(cls) -> list[str]:
        return [m.value for m in cls]


class StudyDesign(StrEnum):
    rct = "rct"
    case_series = "case_series"


class Role(StrEnum):
    administrator = "administrator"
    investigator = "investigator"
    data_entry = "data_entry"
    monitor = "monitor"
    statistician = "statistician"


class NeuromaType(StrEnum):
    mortons = "mortons"
    stump = "stump"
    other_traumatic = "other_traumatic"


class ImagingModality(StrEnum):
    ultrasound = "ultrasound"
    ct = "ct"
    mri = "mri"
    fluoroscopy = "fluoroscopy"


class Anaesthesia(StrEnum):
    local = "local"
    regional = "regional"
    sedation = "sedation"
    general = "general"


class Gas(StrEnum):
    argon = "argon"
    nitrous_oxide = "nitrous-oxide"
    carbon_dioxide = "carbon-dioxide"
    nitrogen = "nitrogen"


class SafetyCategory(StrEnum):
    """NICE HTG652 safety outcomes, plus 'other' for anything else."""

    pain = "pain"
    worsening_of_symptoms = "worsening_of_symptoms"
    infection = "infection"
    damage_to_adjacent_structures = "damage_to_adjacent_structures"
    further_intervention = "further_intervention"
    other = "other"


class Severity(StrEnum):
    mild = "mild"
    moderate = "moderate"
    severe = "severe"


class Relatedness(StrEnum):
    not_related = "not_related"
    unlikely = "unlikely"
    possible = "possible"
    probable = "probable"
    definite = "definite"


class AEOutcome(StrEnum):
    recovered = "recovered"
    recovering = "recovering"
    not_recovered = "not_recovered"
    recovered_with_sequelae = "recovered_with_sequelae"
    fatal = "fatal"
    unknown = "unknown"


class ReinterventionKind(StrEnum):
    repeat_cryoablation = "repeat_cryoablation"
    surgical_excision = "surgical_excision"
    injection = "injection"
    other = "other"


class Sex(StrEnum):
    female = "female"
    male = "male"
    other = "other"
    unknown = "unknown"


def check_in(column: str, vocabulary: type[StrEnum]) -> str:
    """SQL CHECK text restricting ``column`` to the vocabulary's codes."""
    codes = ", ".join(f"'{c}'" for c in vocabulary.codes())
    return f"{column} IN ({codes})"


JSONType = JSON
