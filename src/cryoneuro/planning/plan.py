"""The Plan: one pydantic model that holds a planned cryoablation and its predictions.

It is what the registry stores with a procedure and what the report renders, so it carries all
inputs (for reproducibility) and all predictions, round-trips through JSON unchanged, and
names the software version that made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from cryoneuro import __version__
from cryoneuro.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

SCHEMA_VERSION = "1"


@dataclass
class PlanArtifacts:
    """What a freshly computed plan keeps beside its JSON content, for drawing and writing: the
    confirmed simulation (a :class:`~cryoneuro.thermal.ThermalResult`), the image on its grid
    (HU), the masks of the structures drawn on it, and the nerve's injury profile. Not saved in
    ``plan.json`` (a plan read back from JSON has none)."""

    result: Any
    image: Any
    structures: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    nerve_profile: Any = None


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
    #: the simulation behind a freshly computed plan (None once read back from JSON)
    _artifacts: PlanArtifacts | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        """Equal when the content is: the attached simulation is not part of it (it is not
        saved), so a plan equals itself read back from ``plan.json``."""
        if not isinstance(other, Plan):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def summary(self) -> pd.DataFrame:
        """The plan's headline numbers as a table, one row per quantity.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``quantity``, with ``value`` and ``unit``: feasibility, cryogen, freeze
            time (s), each isotherm's volume (mL), diameter and length (mm), the nerve block and
            blocked length (mm), the coldest tissue (°C), each adjacent structure's margin to
            its limit (°C) and the predicted median relief (days). Every value is the plan's
            own field (nothing is recomputed).
        """
        import pandas as pd

        rows: list[tuple[str, Any, str]] = [
            ("feasible", self.feasible, ""),
            ("probes", len(self.probes), ""),
            ("gas", self.probes[0].gas if self.probes else None, ""),
            (
                "freeze time",
                sum(p.duration_s for p in self.protocol if p.kind == "freeze"),
                "s",
            ),
        ]
        for level, iso in self.isotherms.items():
            rows += [
                (f"{level} °C isotherm volume", iso.volume_ml, "mL"),
                (f"{level} °C isotherm diameter", iso.diameter_mm, "mm"),
                (f"{level} °C isotherm length", iso.length_mm, "mm"),
            ]
        if self.nerve:
            rows += [
                ("nerve complete block", self.nerve.get("complete_block"), ""),
                ("nerve blocked length", self.nerve.get("blocked_length_mm"), "mm"),
            ]
        rows.append(("coldest tissue", self.min_tissue_temperature_c, "°C"))
        for s in self.safety:
            rows.append((f"{s['structure']} margin to limit", s.get("margin_c"), "°C"))
        if "median_days" in self.relief:
            rows.append(("median relief (regrowth-limited)", self.relief["median_days"], "days"))
        table = pd.DataFrame(rows, columns=["quantity", "value", "unit"])
        return table.set_index("quantity")

    def plot(self, ax: Axes | None = None) -> Axes:
        """Draw the planned iceball on the image, in the plane along the first probe.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Where to draw; default a new :class:`matplotlib.figure.Figure` (no pyplot, so no
            backend is chosen).

        Returns
        -------
        matplotlib.axes.Axes
            The image (grey), the structures' outlines, the isotherms of the minimum temperature
            (dashed, 0/-20/-40 °C) and the probe; axes in mm from the probe's mid active length.

        Raises
        ------
        cryoneuro.errors.InputError
            For a plan read back from JSON: its simulation is not stored; plan again to draw.
        """
        if self._artifacts is None:
            raise InputError(
                f"plan '{self.case}': no simulation attached (a plan read from JSON keeps only "
                "its numbers); plan again to draw it"
            )
        from cryoneuro.planning.figures import draw_plan_section

        if ax is None:
            from matplotlib.figure import Figure

            ax = Figure(figsize=(6, 5.4), layout="constrained").add_subplot()
        art = self._artifacts
        draw_plan_section(ax, art.result, art.image, art.structures, section="along")
        ax.set_title(art.title or self.case, fontsize=10)
        return ax

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
