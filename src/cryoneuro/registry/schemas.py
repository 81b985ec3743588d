"""Pydantic models at the HTTP/CLI edge: what a request may contain, with limits.

Lengths are capped so hostile input (megabyte strings) is refused with a 422 naming the
field before it reaches the database; vocabularies come from the model enums.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cryoneuro.planning.plan import Plan
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
#: Database integer ids: larger values are refused at the edge (never a driver error).
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
#: No clinical date of this registry can precede this one (NICE IPG 2000s onwards; a typo
#: such as 0001-01-01 broke the de-identified export) or lie in the future.
EARLIEST_DATE = dt.date(2000, 1, 1)


def _clinical_date(value: dt.date) -> dt.date:
    if value < EARLIEST_DATE:
        raise ValueError(f"date must be on or after {EARLIEST_DATE.isoformat()}")
    if value > dt.date.today():
        raise ValueError("date must not be in the future")
    return value


ClinicalDate = Annotated[dt.date, AfterValidator(_clinical_date)]


def _no_nul(value: Any, depth: int = 0) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text must not contain NUL characters")
    elif isinstance(value, dict) and depth < 20:
        for key, item in value.items():
            _no_nul(key, depth + 1)
            _no_nul(item, depth + 1)
    elif isinstance(value, list) and depth < 20:
        for item in value:
            _no_nul(item, depth + 1)


class Strict(BaseModel):
    """Request bodies: unknown fields refused, strings capped, NUL characters refused
    anywhere (PostgreSQL cannot store them; the review found a 500)."""

    model_config = ConfigDict(extra="forbid", str_max_length=5000)

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        _no_nul(data)
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """``true`` is not a size or an age (pydantic would read it as 1)."""
        if isinstance(value, bool) and info.field_name is not None:
            kinds = _leaf_types(cls.model_fields[info.field_name].annotation)
            if bool not in kinds and kinds & {int, float}:
                raise ValueError("expected a number, not true/false")
        return value


def _leaf_types(annotation: Any) -> set[Any]:
    args = get_args(annotation)
    if not args:
        return {annotation}
    if get_origin(annotation) is Annotated:
        return _leaf_types(args[0])
    return set().union(*(_leaf_types(a) for a in args))


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
    enrolment_date: ClinicalDate
    consent_date: ClinicalDate
    consent_form_version: Code
    consented: bool
    #: criterion code → answer (inclusion: met?; exclusion: present?)
    eligibility: dict[Code, bool] = Field(max_length=100)
    neuroma: NeuromaIn


class ProcedureIn(Strict):
    procedure_date: ClinicalDate
    neuroma_id: Id | None = None
    imaging_modality: ImagingModality
    anaesthesia: Anaesthesia
    device_name: Short
    manufacturer: Short
    device_lot: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
    ]
    probe_model: Annotated[str, StringConstraints(max_length=200)] = ""
    gas: Gas
    protocol: LongText = ""
    operator: Short
    #: A cryoneuro ``Plan`` (planning/plan.py), validated and stored as the model dumps it.
    plan: dict[str, Any] | None = None
    predicted_relief_days: float | None = Field(default=None, ge=0, le=3650)

    @field_validator("plan")
    @classmethod
    def _plan_model(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """Only a plan the ``Plan`` model accepts is stored: a malformed one (the review's
        ``{"warnings": 5}``) broke the procedure page for everyone."""
        if value is None:
            return None
        try:
            return Plan.model_validate(value).model_dump(mode="json")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "plan"
            raise ValueError(f"not a cryoneuro plan: {where}: {first.get('msg')}") from None


class FollowUpIn(Strict):
    visit_code: Code
    visit_date: ClinicalDate
    #: instrument code → {item: answer}
    answers: dict[Code, dict[Code, Any]] = Field(max_length=20)
    #: instrument → {item: missing code} (or → one code for every item): items without a
    #: value, with why (HL7 DataAbsentReason codes; services/visit_status.py)
    missing: dict[Code, dict[Code, str] | str] = Field(default_factory=dict, max_length=20)


class AdverseEventIn(Strict):
    onset_date: ClinicalDate
    procedure_id: Id | None = None
    category: SafetyCategory
    description: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)
    ]
    severity: Severity
    serious: bool
    relatedness: Relatedness
    outcome: AEOutcome
    device_incident: bool = False


class ReinterventionIn(Strict):
    reintervention_date: ClinicalDate
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

    withdrawal_date: ClinicalDate
    reason: Reason
