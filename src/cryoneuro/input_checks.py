"""Limits and kind checks for user input, applied before anything is allocated.

Why this module exists: a case file is arithmetic on user numbers. Without limits, a 1000 mm
domain or 0.002 mm voxels ask numpy for tens to hundreds of GiB and die with a MemoryError
traceback, ``freeze_s = 1e9`` builds a step schedule and records that grow without bound, and
pydantic's lax mode reads ``diameter_mm = true`` as 1 mm. The limits below are checked on the
numbers alone (cell counts are products of ``round(size / voxel)``, sample counts are
``duration / interval``), so a refused case never reaches an array allocation. Every limit is a
named constant, quoted in the error message and in docs/case-file.md.
"""

from __future__ import annotations

import json
import math
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

#: Default largest number of grid cells. The engine needs about 190 bytes per cell (measured with
#: tracemalloc on a 640 000-cell case: one probe, three isotherms; 184 B/cell), so 64 M cells is
#: about 12 GB. A case may raise it with ``[solver] max_cells`` on a machine with more memory.
MAX_CELLS = 64_000_000
#: Smallest voxel edge (mm). Below 10 µm, cells are smaller than tissue cells and the continuum
#: bioheat properties do not apply; the explicit stable step (~dx²) would also be below 0.1 ms.
MIN_VOXEL_MM = 0.01
#: Longest protocol (sum of all phases), s. Clinical freeze–thaw protocols last minutes.
MAX_PROTOCOL_S = 24 * 3600.0
#: Most time steps a protocol may take (RKL2: duration / ``time_step_s``; Euler: duration / the
#: stable step). The step schedule is a list of this length.
MAX_SOLVER_STEPS = 2_000_000
#: Most recorded values: (samples over the protocol) x (1 + output points). Samples are taken
#: every ``sample_interval_s`` (or every step, if longer), so this bounds the point histories.
#: The default 0.25 s over 24 h gives 345 602 samples: 56 points fit.
MAX_RECORDED_VALUES = 20_000_000
#: Most probes. The rasteriser keeps one float64 distance field per probe (8 bytes per cell each)
#: and indexes probes with int8; clinical arrays use up to about a dozen probes.
MAX_PROBES = 32
#: Most isotherms (each adds a float32 time-below field, 4 bytes per cell).
MAX_ISOTHERMS = 16
#: Baseline (body / bath) temperature range, °C. The upper bound is where protein denaturation
#: starts and the perfusion/metabolism values stop applying; the lower bound admits ex vivo tissue
#: and gel phantoms at room temperature or in an ice-water bath. The baseline must also be above
#: the medium's liquidus (the model starts from unfrozen tissue); see the case checks.
BODY_TEMPERATURE_RANGE_C = (0.0, 45.0)
#: Absolute zero, °C: no probe or trace temperature may be at or below it.
ABSOLUTE_ZERO_C = -273.15
#: Hottest probe surface allowed (active thaw, measured traces), °C. Helium and electric thaw
#: devices run the tip at roughly room to body temperature; 60 °C leaves room for heated
#: thaw designs while refusing typos (2000 °C) that would be an ablation of a different kind.
MAX_PROBE_TEMPERATURE_C = 60.0


def cells_for(size_mm, voxel_mm: float) -> int:
    """Cells of a domain (the same rounding as :meth:`Grid.from_size`), computed without arrays."""
    return math.prod(max(0, round(float(s) / float(voxel_mm))) for s in size_mm)


def recorded_values(total_s: float, sample_interval_s: float, n_phases: int, n_points: int) -> int:
    """Upper bound on the values the solver records: samples (one per interval plus one at the
    end of each phase and one at t = 0) times (1 + points)."""
    samples = math.ceil(total_s / sample_interval_s) + n_phases + 1
    return samples * (1 + n_points)


def check_protocol(
    total_s: float, sample_interval_s: float, n_phases: int, n_points: int
) -> str | None:
    """Why a protocol is refused (a sentence naming the field), or None."""
    if not (math.isfinite(sample_interval_s) and sample_interval_s > 0):
        return (
            "output.sample_interval_s must be a positive number of seconds "
            f"(got {sample_interval_s})"
        )
    if total_s > MAX_PROTOCOL_S:
        return (
            f"protocol.phases: the protocol lasts {total_s:g} s; the limit is {MAX_PROTOCOL_S:g} s "
            f"({MAX_PROTOCOL_S / 3600:g} h); shorten the phases"
        )
    values = recorded_values(total_s, sample_interval_s, n_phases, n_points)
    if values > MAX_RECORDED_VALUES:
        least = total_s * (1 + n_points) / (MAX_RECORDED_VALUES - (n_phases + 1) * (1 + n_points))
        return (
            f"output.sample_interval_s = {sample_interval_s:g} s over {total_s:g} s with "
            f"{n_points} points records {values} values; the limit is {MAX_RECORDED_VALUES}; use "
            f"sample_interval_s >= {_round_up(least)} or fewer output.points"
        )
    return None


def _round_up(x: float) -> str:
    """A short number not below ``x`` (for 'use at least ...' advice)."""
    digits = 3 - math.floor(math.log10(abs(x))) if x > 0 else 3
    scale = 10.0**digits
    return f"{math.ceil(x * scale) / scale:g}"


# -- kinds: no booleans for numbers, no numbers or strings for booleans -----------------------
def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def kind_error(annotation: Any, value: Any, path: str = "") -> str | None:
    """Where ``value`` has the wrong kind for ``annotation`` in a way pydantic's lax mode would
    silently convert (``true`` → 1.0, ``"1.5"`` → 1.5, ``1`` → True), a sentence; else None.

    Walks the annotation and the value together through Annotated, Optional, list, tuple and
    dict; a union of different kinds (``str | TissueTable``) is left to its members' own
    validation. Hand-written because pydantic's ``strict`` mode would also refuse TOML arrays
    for tuple fields.
    """
    origin = get_origin(annotation)
    if origin is Annotated:
        return kind_error(get_args(annotation)[0], value, path)
    if origin is Union or origin is types.UnionType:
        if value is None:
            return None
        arms = [a for a in get_args(annotation) if a is not type(None)]
        return kind_error(arms[0], value, path) if len(arms) == 1 else None
    where = f"item {path} " if path else ""
    if annotation is bool:
        if not isinstance(value, bool):
            return f"{where}must be true or false (got {_toml(value)})"
        return None
    if annotation in (float, int):
        if isinstance(value, bool | str):
            return f"{where}must be a number, not {_toml(value)}"
        return None
    args = get_args(annotation)
    if origin in (list, tuple) and isinstance(value, list | tuple) and args:
        for i, item in enumerate(value):
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                if i >= len(args):
                    break
                item_ann = args[i]
            else:
                item_ann = args[0]
            err = kind_error(item_ann, item, f"{path}[{i}]")
            if err:
                return err
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        for key, item in value.items():
            err = kind_error(args[1], item, f"{path}.{key}" if path else str(key))
            if err:
                return err
    return None


class StrictKinds(BaseModel):
    """Base for case-file sections: a boolean is never read as a number (nor a number or a
    string as a boolean), in every field, including fields added later."""

    @field_validator("*", mode="before")
    @classmethod
    def _kinds(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None:
            err = kind_error(field.annotation, value)
            if err:
                raise PydanticCustomError("wrong_kind", err)
        return value
