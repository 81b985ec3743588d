"""Pydantic models at the HTTP/CLI edge: what a request may contain, with limits.

Lengths are capped so hostile input (megabyte strings) is refused with a 422 naming the
field before it reaches the database; vocabularies come from the model enums.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cryoneuro.registry.models import (
    AEOutcome,
    Anaesthesia,
    Gas,
    ImagingModality,
    NeuromaType,
    ReinterventionKind,
    Relatedness,
    SafetyCategory,
    Severity,
    Sex,
)

Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=1000)]
PLAN_MAX_BYTES = 2_000_000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=5000)


class NeuromaIn(Strict):
    neuroma_type: NeuromaType
    anatomical_site: Short
    laterality: Annotated[str, StringConstraints(max_length=10)] = ""
    size_mm: float | None = Field(default=None, gt=0, le=200)
    prior_treatments: list[Short] = Field(default_factory=list, max_length=20)


class EnrolmentIn(Strict):
    """Screening and enrolment in one step: consent, eligibility answers, neuroma."""

    study_code: Code
    site_code: Code
    nhs_number: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)]
    sex: Sex
    age_at_enrolment_years: int = Field(ge=16, le=120)
    enrolment_date: dt.date
    consent_date: dt.date
    consent_form_version: Code
    consented: bool
    #: criterion code → answer (inclusion: met?; exclusion: present?)
    eligibility: dict[Code, bool] = Field(max_length=100)
    neuroma: NeuromaIn


class ProcedureIn(Strict):
    procedure_date: dt.date
    neuroma_id: int | None = Field(default=None, ge=1)
    imaging_modality: ImagingModality
    anaesthesia: Anaesthesia
    device_name: Short
    manufacturer: Short
    device_lot: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    probe_model: Annotated[str, StringConstraints(max_length=200)] = ""
    gas: Gas
    protocol: LongText = ""
    operator: Short
    plan: dict[str, Any] | None = None
    predicted_relief_days: float | None = Field(default=None, ge=0, le=3650)


class FollowUpIn(Strict):
    visit_code: Code
    visit_date: dt.date
    #: instrument code → {item: answer}
    answers: dict[Code, dict[Code, Any]] = Field(max_length=20)


class AdverseEventIn(Strict):
    onset_date: dt.date
    procedure_id: int | None = Field(default=None, ge=1)
    category: SafetyCategory
    description: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]
    severity: Severity
    serious: bool
    relatedness: Relatedness
    outcome: AEOutcome
    device_incident: bool = False


class ReinterventionIn(Strict):
    reintervention_date: dt.date
    kind: ReinterventionKind
    description: LongText = ""


class EditIn(Strict):
    """A change to an existing record: the fields to change and why."""

    changes: dict[Code, Any] = Field(min_length=1, max_length=50)
    reason: Reason


class LoginIn(Strict):
    username: Annotated[str, StringConstraints(min_length=1, max_length=80)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class WithdrawalIn(Strict):
    """Withdrawal of consent: no new data after this date; data so far are kept."""

    withdrawal_date: dt.date
    reason: Reason
