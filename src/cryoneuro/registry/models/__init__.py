"""All registry tables (import from here so Alembic sees the whole metadata)."""

from cryoneuro.registry.models.base import (
    AEOutcome,
    Anaesthesia,
    Base,
    Gas,
    ImagingModality,
    NeuromaType,
    ReinterventionKind,
    Relatedness,
    Role,
    SafetyCategory,
    Severity,
    Sex,
    StudyDesign,
    utcnow,
)
from cryoneuro.registry.models.clinical import (
    AdverseEvent,
    Consent,
    EligibilityAnswer,
    FollowUpVisit,
    Neuroma,
    Participant,
    ParticipantIdentifier,
    Procedure,
    Reintervention,
)
from cryoneuro.registry.models.files import PlanFile  # noqa: F401
from cryoneuro.registry.models.security import RegistrySetting, UserSession
from cryoneuro.registry.models.study import (
    EligibilityCriterion,
    Site,
    SiteMembership,
    Study,
    StudyArm,
    StudySite,
    User,
    VisitDefinition,
)
from cryoneuro.registry.models.trail import AuditEntry, RandomisationSlot, RandomisationStratum

__all__ = [
    "AEOutcome", "AdverseEvent", "Anaesthesia", "AuditEntry", "Base", "Consent",
    "EligibilityAnswer", "EligibilityCriterion", "FollowUpVisit", "Gas", "ImagingModality",
    "Neuroma", "NeuromaType", "Participant", "ParticipantIdentifier", "Procedure",
    "RandomisationSlot", "RandomisationStratum", "RegistrySetting", "Reintervention", "ReinterventionKind",
    "Relatedness", "Role", "SafetyCategory", "Severity", "Sex", "Site", "SiteMembership",
    "Study", "StudyArm", "StudyDesign", "StudySite", "User", "UserSession", "VisitDefinition",
    "utcnow",
]
