"""Exception classes whose messages a user can act on.

Every error a user can cause (a malformed case file, an impossible geometry, an out-of-range
questionnaire answer) is raised as a :class:`CryoneuroError` subclass with a one-line message
that names what is wrong and how to fix it. The CLI turns these into ``cryoneuro: error: …``
on stderr and a non-zero exit; the web app into a 4xx. Anything else is a bug.
"""

from __future__ import annotations


class CryoneuroError(Exception):
    """Base class for errors caused by user input (never by a bug)."""

    exit_code: int = 2


class InputError(CryoneuroError, ValueError):
    """A value given by the user is malformed, out of range or inconsistent."""


class CaseFileError(InputError):
    """A case file (TOML) cannot be read or fails validation; the message names the field."""


class GeometryError(InputError):
    """Probe or anatomy geometry is impossible (outside the domain, too coarse a grid, …)."""


class PhysicsError(CryoneuroError):
    """A physical model was asked for a state where it does not apply."""
