"""Label-name tables: 3D Slicer colour tables, ITK-SNAP label descriptions, JSON/TOML maps.

A label map is an integer image; its names come from a separate table. Supported:

* 3D Slicer ``.ctbl`` / colour ``.txt``: ``value name R G B A`` per line, ``#`` comments.
* ITK-SNAP label description ``.txt``: ``IDX R G B A VIS MSH "LABEL"`` per line.
* JSON or TOML: ``{"1": "skin", "2": "fat"}`` (or name → value; both directions are accepted).
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

from cryoneuro.errors import InputError


class LabelTableError(InputError):
    """A label-name table cannot be parsed."""


class MissingLabelError(InputError):
    """A required label name is absent from the label map or its table."""


#: Phantom label names → tissue-library names (cryoneuro.tissue.TISSUES).
DEFAULT_TISSUE_MAP: dict[str, str] = {
    "background": "fat",
    "skin": "skin",
    "subcutaneous_fat": "fat",
    "plantar_fat": "fat",
    "fat": "fat",
    "muscle": "muscle",
    "muscle_flap": "muscle",
    "tendon": "tendon",
    "ligament": "tendon",
    "metatarsal": "bone",
    "metatarsal_marrow": "bone",
    "phalanx": "bone",
    "tibia": "bone",
    "fibula": "bone",
    "bone": "bone",
    "bone_marrow": "bone",
    "nerve": "nerve",
    "neuroma": "nerve",
    "digital_nerve": "nerve",
    "tibial_nerve": "nerve",
    "digital_artery": "blood",
    "artery": "blood",
    "posterior_tibial_artery": "blood",
    "vein": "blood",
    "scar": "tendon",
}


def read_label_table(path: str | Path) -> dict[int, str]:
    """Read a label-name table (format chosen by suffix and content); returns ``{value: name}``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelTableError(f"{p}: cannot read label table ({exc.__class__.__name__})") from None
    suffix = p.suffix.lower()
    try:
        if suffix == ".json":
            return normalise_label_mapping(json.loads(text), source=str(p))
        if suffix == ".toml":
            return normalise_label_mapping(tomllib.loads(text), source=str(p))
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LabelTableError(
            f"{p}: not valid {suffix[1:].upper()} ({exc})".splitlines()[0]
        ) from None
    return _parse_text_table(text, str(p))


def normalise_label_mapping(mapping: dict, *, source: str = "label map") -> dict[int, str]:
    """Accept ``{value: name}`` or ``{name: value}`` with string or int keys."""
    out: dict[int, str] = {}
    for key, val in mapping.items():
        if isinstance(val, int) and not isinstance(val, bool):
            value, name = val, str(key)
        elif re.fullmatch(r"-?\d+", str(key)):
            value, name = int(key), str(val)
        else:
            raise LabelTableError(
                f"{source}: entry {key!r} = {val!r} is neither value→name nor name→value"
            )
        out[value] = name
    return out


def _parse_text_table(text: str, source: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            parts = shlex.split(line)
        except ValueError:
            raise LabelTableError(f"{source}: line {n}: unbalanced quotes") from None
        if not parts or not re.fullmatch(r"-?\d+", parts[0]):
            raise LabelTableError(f"{source}: line {n}: expected an integer label value first")
        if len(parts) >= 8 and '"' in line:  # ITK-SNAP: IDX R G B A VIS MSH "LABEL"
            name = parts[7]
        elif len(parts) >= 2:  # Slicer: value name R G B A
            name = parts[1]
        else:
            raise LabelTableError(f"{source}: line {n}: no label name")
        out[int(parts[0])] = name
    if not out:
        raise LabelTableError(f"{source}: no label entries found")
    return out


def label_value(names: dict[int, str], name: str, *, source: str = "label map") -> int:
    """The value of a label name; :class:`MissingLabelError` when absent."""
    for value, n in names.items():
        if n == name:
            return value
    raise MissingLabelError(
        f"{source}: required label '{name}' not found (have {sorted(names.values())})"
    )
