"""Form description and parsing for the server-rendered pages.

Field names are the dotted paths of the API schemas (``neuroma.size_mm``,
``answers.moxfq.q3``), so a validation error's location maps straight back to the input
beside which its message is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from cryoneuro.registry.errors import RegistryInputError


@dataclass
class FormField:
    name: str
    label: str
    kind: str = "text"  # text, number, date, select, textarea, checkbox, yesno
    choices: list[tuple[str, str]] = field(default_factory=list)
    required: bool = True
    hint: str = ""
    value: Any = ""
    error: str = ""
    section: str = ""
    subsection: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


def choices(codes: list[str]) -> list[tuple[str, str]]:
    return [(c, c.replace("_", " ")) for c in codes]


def nest(flat: dict[str, Any], checkboxes: set[str] = frozenset()) -> dict[str, Any]:
    """Dotted form names → nested dict; blanks dropped, checkboxes and yes/no to booleans."""
    out: dict[str, Any] = {}
    for name in checkboxes:
        flat.setdefault(name, "")
    for name, value in flat.items():
        if name == "csrf_token":
            continue
        if name in checkboxes:
            value = value not in ("", None)
        elif isinstance(value, str):
            value = value.strip()
            if value == "":
                continue
            if value in ("true", "false"):
                value = value == "true"
        target = out
        parts = name.split(".")
        if len(parts) > 5:
            continue
        for part in parts[:-1]:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                break
            target = nxt
        else:
            target[parts[-1]] = value
    return out


def validate(schema: type[BaseModel], data: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    """The model, or None and {field: message} for every error."""
    try:
        return schema.model_validate(data), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "form"
            errors.setdefault(loc, str(err["msg"])[:200])
        return None, errors


def input_error(exc: RegistryInputError) -> dict[str, str]:
    return {exc.field or "form": str(exc)}


def fill(fields: list[FormField], flat: dict[str, Any], errors: dict[str, str]) -> list[str]:
    """Put submitted values and errors on the fields; return errors not tied to a field."""
    names = {f.name for f in fields}
    for f in fields:
        if f.name in flat:
            f.value = flat[f.name]
        f.error = errors.get(f.name, "")
    return [f"{k}: {v}" if k != "form" else v for k, v in errors.items() if k not in names]
