"""Registry exception classes: each maps to one HTTP status in the web layer.

Kept apart from the services so the web app can translate them without importing SQLAlchemy.
"""

from __future__ import annotations

from cryoneuro.errors import CryoneuroError, InputError


class RegistryError(CryoneuroError):
    """Base class for registry errors a user can cause (never a bug)."""

    status_code: int = 400


class RegistryInputError(InputError, RegistryError):
    """A submitted value is malformed or out of range; ``field`` names it."""

    status_code = 422

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(RegistryError):
    """The record does not exist, or the user may not know that it exists."""

    status_code = 404


class PermissionDeniedError(RegistryError):
    """The user's role or site membership does not allow the action."""

    status_code = 403


class AuthenticationError(RegistryError):
    """Wrong user name or password, or no session."""

    status_code = 401


class ReasonForChangeRequiredError(RegistryInputError):
    """Edits to study data need a reason for change (GCP, ICH E6 audit trail)."""


class AuditTamperError(RegistryError):
    """An attempt to change or delete an audit entry: the trail is append-only."""

    status_code = 409


class RandomisationError(RegistryError):
    """Randomisation is not possible (not an RCT, not eligible, already allocated, …)."""

    status_code = 409


class ConflictError(RegistryError):
    """The record clashes with an existing one (duplicate NHS number, user name, …)."""

    status_code = 409
