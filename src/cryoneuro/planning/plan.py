"""The Plan: one pydantic model that holds a planned cryoablation and its predictions.

It is what the registry stores with a procedure and what the report renders, so it carries all
inputs (for reproducibility) and all predictions, round-trips through JSON unchanged, and
names the software version that made it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cryoneuro import __version__
from cryoneuro.errors import InputError

SCHEMA_VERSION = "1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProbePlacement(_Model):
    name: str
    tip_mm: tuple[float, float, float]
    direction: tuple[float, float, float]
    diameter_mm: float
    active_length_mm: float
    tip_temperature_c: float | None = None  # held: the wall temperature; device: the gas's
    gas: str | None = None
    device: str | None = None  # catalogue model whose energy balance drove the wall
    drive: str | None = None  # "device" | "held" (None: held, plans before the device model)
    wall_temperature_end_c: float | None = None  # at the end of the last freeze
    mean_cooling_w: float | None = None


class ProtocolPhase(_Model):
    kind: str
    duration_s: float
    temperature_c: float | None = None


class Isotherm(_Model):
    volume_ml: float
    diameter_mm: float
    length_mm: float


class TrajectorySummary(_Model):
    entry_mm: list[float]
    tip_mm: list[float]
    depth_mm: float
    angle_to_skin_normal_deg: float | None
    path: list[tuple[str, float]]
    clearance_mm: dict[str, float]
    violations: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class Plan(_Model):
    """A planned procedure with its predicted iceball, nerve block, safety and relief."""

    schema_version: str = SCHEMA_VERSION
    software_version: str = __version__
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    case: str
    inputs: dict[str, Any] = Field(default_factory=dict)  # the case as read, for reproducibility
    probes: list[ProbePlacement]
    protocol: list[ProtocolPhase]
    trajectories: list[TrajectorySummary] = Field(default_factory=list)
    isotherms: dict[str, Isotherm] = Field(default_factory=dict)
    min_tissue_temperature_c: float | None = None
    nerve: dict[str, Any] = Field(default_factory=dict)  # block, grade, blocked length, ...
    coverage: dict[str, Any] = Field(default_factory=dict)  # target fraction below thresholds
    safety: list[dict[str, Any]] = Field(default_factory=list)  # per adjacent structure
    relief: dict[str, Any] = Field(default_factory=dict)  # predicted duration of relief
    feasible: bool = True
    reasons: list[str] = Field(default_factory=list)  # why not feasible
    warnings: list[str] = Field(default_factory=list)
    files: dict[str, str] = Field(default_factory=dict)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            return cls.model_validate_json(text)
        except ValueError as exc:
            first = str(exc).splitlines()
            raise InputError(
                f"not a cryoneuro plan: {first[1] if len(first) > 1 else first[0]}"
            ) from None

    def save(self, path: str | Path) -> Path:
        """Write atomically (a half-written plan is never left behind)."""
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        try:
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: no such plan file") from None
