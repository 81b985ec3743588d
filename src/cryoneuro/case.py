"""The case file (TOML): domain, tissue, probes, protocol and outputs — validated at the edge.

The minimal homogeneous form is the contract of docs/contracts.md::

    [domain]
    size_mm = [40, 40, 50]
    voxel_mm = 0.5
    tissue = "muscle"                 # or a table of properties, optionally with base = "..."
    body_temperature_c = 37

    [[probes]]
    tip_mm = [20, 20, 15]             # domain coordinates, mm
    direction = [0, 0, 1]             # from the tip towards the handle
    diameter_mm = 1.5
    active_length_mm = 10
    tip_temperature_c = -150          # or tip_trace_c = [[0, 37], [20, -150]]; or gas = "argon";
                                      # or model = "argon-2.4mm-class" (the device model)

    [protocol]
    phases = [{ freeze_s = 300 }]     # also { thaw_s = 60, mode = "passive" | "active" }

Every mistake (unknown key, wrong type — a boolean is never a number —, NaN, negative duration,
a temperature out of range, probe outside the domain or on its face, voxel too coarse for the
probe, a grid, protocol or record beyond the limits of :mod:`cryoneuro.input_checks`) is a
:class:`~cryoneuro.errors.CaseFileError` whose one-line message names the field; the limits are
checked by :func:`check_case` on the numbers alone, before anything is allocated.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import ConfigDict, Field, ValidationError, model_validator

from cryoneuro import input_checks as limits
from cryoneuro import probe as probe_physics
from cryoneuro.errors import CaseFileError, CryoneuroError
from cryoneuro.thermal.geometry import Grid, ProbeGeometry
from cryoneuro.thermal.solver import (
    DEFAULT_TIME_STEP_S,
    Phase,
    TemperatureSchedule,
    ThermalModel,
    constant,
    trace,
)
from cryoneuro.tissue import ThermalProperties, tissue_from_mapping

Vec3 = tuple[float, float, float]
Positive = Annotated[float, Field(gt=0)]


class _Strict(limits.StrictKinds):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class TissueTable(_Strict):
    """Custom tissue properties (volumetric, SI); ``base`` starts from a library tissue."""

    base: str | None = None
    k_unfrozen: Positive | None = None
    k_frozen: Positive | None = None
    c_unfrozen: Positive | None = None
    c_frozen: Positive | None = None
    latent: Annotated[float, Field(ge=0)] | None = None
    t_liquidus: float | None = None
    t_solidus: float | None = None
    perfusion: Annotated[float, Field(ge=0)] | None = None
    metabolism: Annotated[float, Field(ge=0)] | None = None


class DomainSpec(_Strict):
    size_mm: Vec3
    voxel_mm: Positive
    tissue: str | TissueTable = "muscle"
    body_temperature_c: float = 37.0
    boundary: Literal["body", "adiabatic"] = "body"

    @model_validator(mode="after")
    def _sizes(self) -> DomainSpec:
        if any(s <= 0 for s in self.size_mm):
            raise ValueError("size_mm must be three positive lengths")
        return self


class ProbeSpec(_Strict):
    name: str | None = None
    model: str | None = None  # a probe catalogue entry; fills diameter, length and gas
    tip_mm: Vec3
    direction: Vec3 = (0.0, 0.0, 1.0)
    diameter_mm: Positive | None = None
    active_length_mm: Positive | None = None
    tip_temperature_c: float | None = None
    tip_trace_c: list[tuple[float, float]] | None = None
    gas: str | None = None
    supply_bar: Positive | None = None
    exhaust_bar: Positive | None = None
    precooled: bool = True
    #: "device": the wall temperature emerges from the device energy balance (probe.device_drive;
    #: default for a catalogue model); "held": held at tip_temperature_c / the trace / the gas's
    #: no-load boiling point (default otherwise).
    drive: Literal["device", "held"] | None = None
    mass_flow_g_s: Positive | None = None
    h_gas_w_m2k: Positive | None = None
    thaw_power_w: Positive | None = None

    def uses_device(self) -> bool:
        if self.drive is not None:
            return self.drive == "device"
        return (
            self.tip_temperature_c is None
            and self.tip_trace_c is None
            and (self.model is not None or self.mass_flow_g_s is not None)
        )

    @model_validator(mode="after")
    def _one_drive(self) -> ProbeSpec:
        given = [
            k for k in ("tip_temperature_c", "tip_trace_c", "gas") if getattr(self, k) is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give only one of tip_temperature_c, tip_trace_c, gas (got {given})")
        if not given and self.model is None:
            raise ValueError("give tip_temperature_c, tip_trace_c or gas (or a catalogue model)")
        if self.drive == "device" and (
            self.tip_temperature_c is not None or self.tip_trace_c is not None
        ):
            raise ValueError(
                "drive = 'device' takes its temperature from the device; remove "
                "tip_temperature_c / tip_trace_c or set drive = 'held'"
            )
        if (
            self.drive == "device"
            and self.model is None
            and (self.gas is None or self.mass_flow_g_s is None)
        ):
            raise ValueError("drive = 'device' needs a catalogue model, or gas and mass_flow_g_s")
        if self.tip_temperature_c is not None and not -273.15 < self.tip_temperature_c < 100:
            raise ValueError(
                f"tip_temperature_c = {self.tip_temperature_c} is not a probe "
                "temperature in C (between -273.15 and 100)"
            )
        return self


class PhaseSpec(_Strict):
    freeze_s: Positive | None = None
    thaw_s: Positive | None = None
    mode: Literal["passive", "active"] = "passive"
    tip_temperature_c: float | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> PhaseSpec:
        if (self.freeze_s is None) == (self.thaw_s is None):
            raise ValueError("each phase needs exactly one of freeze_s or thaw_s")
        if self.freeze_s is not None and self.tip_temperature_c is not None:
            raise ValueError(
                "tip_temperature_c in a phase is for active thaw; set freeze "
                "temperatures on the probe"
            )
        return self

    def to_phase(self) -> Phase:
        if self.freeze_s is not None:
            return Phase("freeze", self.freeze_s)
        return Phase(f"thaw-{self.mode}", float(self.thaw_s), self.tip_temperature_c)  # type: ignore[arg-type]


class ProtocolSpec(_Strict):
    phases: list[PhaseSpec] = Field(min_length=1)


class OutputSpec(_Strict):
    isotherms_c: list[float] = Field(default_factory=lambda: [0.0, -20.0, -40.0])
    points: dict[str, Vec3] = Field(default_factory=dict)
    sample_interval_s: Positive = 0.25


class SolverSpec(_Strict):
    scheme: Literal["rkl2", "euler"] = "rkl2"
    time_step_s: Annotated[float, Field(gt=0, le=10)] = DEFAULT_TIME_STEP_S
    #: front = steps sized by the latent-heat front up to time_step_s; fixed = ramp to it
    step_control: Literal["front", "fixed"] = "front"
    insulated_shaft: bool = True
    #: auto = a GPU through CuPy when present, else Numba on the CPU (thermal/backends.py)
    backend: Literal["auto", "numba", "array", "cupy"] = "auto"
    #: largest grid allowed (input_checks.MAX_CELLS); raise it on a machine with more memory
    max_cells: Annotated[int, Field(gt=0)] = limits.MAX_CELLS


class Case(_Strict):
    """A validated case file."""

    domain: DomainSpec
    probes: list[ProbeSpec] = Field(min_length=1)
    protocol: ProtocolSpec
    output: OutputSpec = Field(default_factory=OutputSpec)
    solver: SolverSpec = Field(default_factory=SolverSpec)

    def simulate_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`cryoneuro.thermal.simulate`."""
        return {
            "thresholds_c": self.output.isotherms_c,
            "points_mm": dict(self.output.points),
            "sample_interval_s": self.output.sample_interval_s,
            "scheme": self.solver.scheme,
            "time_step_s": self.solver.time_step_s,
            "step_control": self.solver.step_control,
            "backend": self.solver.backend,
        }

    # -- conversion to the engine's objects -------------------------------------------------
    def tissue(self) -> ThermalProperties:
        spec = self.domain.tissue
        try:
            if isinstance(spec, str):
                return tissue_from_mapping(spec)
            return tissue_from_mapping(spec.model_dump(exclude_none=True), name="custom")
        except CryoneuroError as exc:
            raise CaseFileError(f"domain.tissue: {exc}") from None

    def grid(self) -> Grid:
        return Grid.from_size(self.domain.size_mm, self.domain.voxel_mm)

    def probe_geometries(self) -> list[ProbeGeometry]:
        out = []
        for i, p in enumerate(self.probes):
            diameter, length = p.diameter_mm, p.active_length_mm
            if p.model is not None:
                cat = _catalogue_model(p.model, i)
                diameter = diameter or cat.diameter_mm
                length = length or cat.active_length_mm
            if diameter is None or length is None:
                raise CaseFileError(
                    f"probes[{i}]: give diameter_mm and active_length_mm (or a catalogue model)"
                )
            try:
                out.append(
                    ProbeGeometry(
                        tuple(p.tip_mm), tuple(p.direction), diameter, length, name=f"probes[{i}]"
                    )
                )
            except CryoneuroError as exc:
                raise CaseFileError(str(exc)) from None
        return out

    def probe_schedules(self) -> list[TemperatureSchedule]:
        out = []
        for i, p in enumerate(self.probes):
            if p.tip_temperature_c is not None:
                out.append(constant(p.tip_temperature_c))
            elif p.tip_trace_c is not None:
                times, temps = zip(*p.tip_trace_c, strict=True) if p.tip_trace_c else ((), ())
                out.append(trace(times, temps))
            else:
                out.append(constant(gas_tip_temperature(p, i)))
        return out

    def probe_devices(self) -> list:
        """The device drive of each probe that uses one (None for held probes)."""
        out = []
        for i, p in enumerate(self.probes):
            out.append(device_drive_for(p, i) if p.uses_device() else None)
        return out

    def validity_warnings(self) -> list[str]:
        """Where the case uses a model outside its validated range (shown with the results)."""

        out: list[str] = []
        freezes = [ph.freeze_s for ph in self.protocol.phases if ph.freeze_s is not None]
        tissue = self.tissue()
        for i, p in enumerate(self.probes):
            if p.uses_device():
                m = _device_model(p, i)
                out += [
                    f"probes[{i}]: {w}"
                    for w in probe_physics.validity_warnings(
                        m, freeze_s=freezes, perfused=tissue.perfusion > 0, medium=tissue.name
                    )
                ]
            elif p.gas is not None or (
                p.model is not None and p.tip_temperature_c is None and p.tip_trace_c is None
            ):  # held at the boiling point
                out.append(
                    f"probes[{i}]: surface held at the gas's no-load boiling point, the "
                    "coldest the probe can be; real probes run warmer under heat load "
                    "and this overestimates the iceball (Littrup 2009: about 2x the "
                    "lethal diameter) — name a catalogue model for the device model"
                )
        if sum(p.uses_device() for p in self.probes) >= 3:
            out.append(
                "arrays of 3 or more device probes: the held-out 3- and 4-probe "
                "lethal diameters of Littrup 2009 were under-predicted by 4.7 and 9.5 mm "
                "(docs/validation.md)"
            )
        return out

    def model(self) -> ThermalModel:
        grid = self.grid()
        probes = self.probe_geometries()
        for i, probe in enumerate(probes):
            _check_inside(grid, probe, i)
        devices = self.probe_devices()
        return ThermalModel(
            grid=grid,
            labels=np.zeros(grid.shape, dtype=np.uint8),
            materials=[self.tissue()],
            probes=probes,
            probe_temperature=self.probe_schedules(),
            body_temperature_c=self.domain.body_temperature_c,
            boundary=self.domain.boundary,
            insulated_shaft=self.solver.insulated_shaft,
            probe_devices=devices if any(d is not None for d in devices) else None,
        )

    def phases(self) -> list[Phase]:
        return [ph.to_phase() for ph in self.protocol.phases]


def _catalogue_model(name: str, index: int):

    try:
        return probe_physics.get_probe_model(name)
    except CryoneuroError as exc:
        raise CaseFileError(f"probes[{index}].model: {exc}") from None


def _device_model(spec: ProbeSpec, index: int):
    """The catalogue entry a device-driven probe uses (an ad hoc one for gas + mass flow)."""

    if spec.model is not None:
        m = _catalogue_model(spec.model, index)
    else:
        m = probe_physics.ProbeModel(
            name=f"probes[{index}] ({spec.gas})",
            device_class="user-defined",
            gauge="",
            diameter_mm=spec.diameter_mm or 0.0,
            active_length_mm=spec.active_length_mm or 0.0,
            gas=spec.gas or "",
            status="user-defined",
        )
    changes = {
        k: v
        for k, v in (
            ("diameter_mm", spec.diameter_mm),
            ("active_length_mm", spec.active_length_mm),
            ("gas", spec.gas),
        )
        if v is not None
    }
    if changes:
        m = replace(m, **changes)
    return m


def device_drive_for(spec: ProbeSpec, index: int):
    """The :class:`~cryoneuro.thermal.drive.DeviceDrive` of a device-driven probe."""

    try:
        return probe_physics.device_drive(
            _device_model(spec, index),
            supply_bar=spec.supply_bar,
            mass_flow=spec.mass_flow_g_s,
            h_gas_w_m2k=spec.h_gas_w_m2k,
            thaw_power_w=spec.thaw_power_w,
            name=f"probes[{index}]",
        )
    except CryoneuroError as exc:
        raise CaseFileError(f"probes[{index}]: {exc}") from None


def gas_tip_temperature(spec: ProbeSpec, index: int) -> float:
    """Steady tip temperature from the gas model (``cryoneuro probe``)."""

    gas = spec.gas
    if gas is None and spec.model is not None:
        gas = _catalogue_model(spec.model, index).gas
    kwargs: dict[str, Any] = {"precooled": spec.precooled}
    if spec.supply_bar is not None:
        kwargs["supply_bar"] = spec.supply_bar
    if spec.exhaust_bar is not None:
        kwargs["exhaust_bar"] = spec.exhaust_bar
    try:
        state = probe_physics.tip_state(gas, **kwargs)
    except CryoneuroError as exc:
        raise CaseFileError(f"probes[{index}].gas: {exc}") from None
    if state.warms:
        raise CaseFileError(
            f"probes[{index}].gas = '{gas}' warms on expansion and cannot "
            "freeze; use argon, nitrogen, nitrous-oxide or carbon-dioxide"
        )
    return float(state.tip_temperature_c)


def _check_inside(grid: Grid, probe: ProbeGeometry, index: int) -> None:
    _, b_pt = probe.segment_mm
    tip = np.asarray(probe.tip_mm)
    lo = np.asarray(grid.origin_mm)
    hi = lo + np.asarray(grid.size_mm)
    for label, point in (("tip_mm", tip), ("end of the active part", b_pt)):
        if np.any(point < lo) or np.any(point > hi):
            where = [round(float(v), 3) for v in point]
            raise CaseFileError(
                f"probes[{index}].{'tip_mm' if label == 'tip_mm' else 'active_length_mm'}: "
                f"the {label} {where} mm is outside the domain (0..{list(grid.size_mm)} mm); "
                "move the probe or enlarge domain.size_mm"
            )
    if probe.diameter_mm < grid.voxel_mm:
        raise CaseFileError(
            f"domain.voxel_mm = {grid.voxel_mm} is too coarse for probes[{index}] "
            f"(diameter {probe.diameter_mm} mm); use voxel_mm <= {probe.diameter_mm:g}"
        )


def _format_validation(exc: ValidationError, source: str) -> str:
    # The most specific error: for a union such as ``str | TissueTable`` given a table, the
    # table's field error (domain.tissue.latent), not the string arm's "valid string".
    errors = exc.errors()
    err = max(errors, key=lambda e: len(e.get("loc", ())))
    loc = ""
    for part in err.get("loc", ()):
        if isinstance(part, int):
            loc += f"[{part}]"
        elif (
            part
            and not str(part).startswith(("function-", "tagged-union"))
            and part not in ("str", "TissueTable", "tuple[float, float]")
        ):
            loc += ("." if loc else "") + str(part)
    msg = err.get("msg", "invalid value")
    if err.get("type") == "extra_forbidden":
        msg = "unknown key (check the spelling; see docs/case-file.md)"
    elif err.get("type") == "finite_number":
        msg = "must be a finite number (NaN and inf are not allowed)"
    msg = msg.removeprefix("Value error, ")
    value = err.get("input")
    shown = (
        ""
        if err.get("type") in ("missing", "wrong_kind") or isinstance(value, dict)
        else f" (got {value!r})"
    )
    return f"{source}: {loc or 'case'}: {msg}{shown}"


def parse_case(data: dict[str, Any], source: str = "case") -> Case:
    try:
        case = Case.model_validate(data)
    except ValidationError as exc:
        raise CaseFileError(_format_validation(exc, source)) from None
    check_case(case, source)
    return case


def load_case(path: str | Path) -> Case:
    """Read and validate a case file; every problem becomes a one-line CaseFileError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CaseFileError(f"{path}: no such case file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseFileError(f"{path}: cannot read the case file ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CaseFileError(f"{path}: not valid TOML ({exc})") from None
    _reject_non_finite(data, path.name)
    return parse_case(data, path.name)


def _reject_non_finite(value: Any, source: str, where: str = "") -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise CaseFileError(f"{source}: {where or 'case'}: must be a finite number (got {value})")
    if isinstance(value, dict):
        for k, v in value.items():
            _reject_non_finite(v, source, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _reject_non_finite(v, source, f"{where}[{i}]")


# -- checks across fields, on numbers alone: nothing is allocated before they pass -----------
def check_case(case: Case, source: str = "case") -> None:
    """Refuse a case that is valid field by field but too large or impossible as a whole
    (limits in :mod:`cryoneuro.input_checks`); the first problem, on one line naming the field."""
    try:
        problem = next(_case_problems(case), None)
    except CryoneuroError as exc:  # a catalogue model, a tissue table or the grid rounding
        problem = str(exc)
    if problem is not None:
        raise CaseFileError(f"{source}: {problem}")


def _case_problems(case: Case):
    dom, out, solver = case.domain, case.output, case.solver
    # size: cells, duration, steps and records, before the grid or any field exists
    if dom.voxel_mm < limits.MIN_VOXEL_MM:
        yield (
            f"domain.voxel_mm = {dom.voxel_mm:g} mm is below the smallest voxel, "
            f"{limits.MIN_VOXEL_MM:g} mm; use larger voxels"
        )
    cells = limits.cells_for(dom.size_mm, dom.voxel_mm)
    if cells > solver.max_cells:
        yield (
            f"domain.size_mm {list(dom.size_mm)} at domain.voxel_mm = {dom.voxel_mm:g} gives "
            f"{cells:,} cells; the limit is {solver.max_cells:,} (solver.max_cells, about "
            f"{solver.max_cells * 190 / 1e9:.1f} GB); use larger voxels or a smaller domain"
        )
    if len(case.probes) > limits.MAX_PROBES:
        yield f"probes: {len(case.probes)} probes; the limit is {limits.MAX_PROBES}"
    phases = case.protocol.phases
    total = sum(ph.freeze_s or ph.thaw_s or 0.0 for ph in phases)
    problem = limits.check_protocol(total, out.sample_interval_s, len(phases), len(out.points))
    if problem:
        yield problem
    if solver.scheme == "rkl2" and total / solver.time_step_s > limits.MAX_SOLVER_STEPS:
        yield (
            f"solver.time_step_s = {solver.time_step_s:g} s over {total:g} s is "
            f"{math.ceil(total / solver.time_step_s):,} steps; the limit is "
            f"{limits.MAX_SOLVER_STEPS:,}; use time_step_s >= {total / limits.MAX_SOLVER_STEPS:.3g}"
        )
    # temperatures
    body = dom.body_temperature_c
    lo, hi = limits.BODY_TEMPERATURE_RANGE_C
    if not lo <= body <= hi:
        yield (
            f"domain.body_temperature_c = {body:g} C is outside {lo:g}..{hi:g} C (tissue in vivo "
            "30-42 C; ex vivo tissue and gel phantoms at room or bath temperature)"
        )
    liquidus = case.tissue().t_liquidus
    if body <= liquidus:
        yield (
            f"domain.body_temperature_c = {body:g} C is not above the tissue's liquidus "
            f"({liquidus:g} C): the model starts from unfrozen tissue"
        )
    if not any(ph.freeze_s is not None for ph in phases):
        yield "protocol.phases: no freeze phase; add { freeze_s = ... }"
    for j, ph in enumerate(phases):
        field = f"protocol.phases[{j}].tip_temperature_c"
        if ph.thaw_s is not None and ph.mode == "passive" and ph.tip_temperature_c is not None:
            yield (
                f'{field} applies only to mode = "active" (a passive thaw has no probe temperature)'
            )
        if (
            ph.mode == "active"
            and ph.tip_temperature_c is not None
            and not (0.0 < ph.tip_temperature_c <= limits.MAX_PROBE_TEMPERATURE_C)
        ):
            yield (
                f"{field} = {ph.tip_temperature_c:g} C is outside "
                f"0..{limits.MAX_PROBE_TEMPERATURE_C:g} C "
                "(an active thaw warms the probe above 0 C; thaw devices reach room to "
                "body temperature)"
            )
    yield from _probe_problems(case, body)
    # outputs
    levels = out.isotherms_c
    if len(levels) > limits.MAX_ISOTHERMS:
        yield f"output.isotherms_c: {len(levels)} isotherms; the limit is {limits.MAX_ISOTHERMS}"
    if len(set(levels)) != len(levels):
        yield f"output.isotherms_c {levels} lists an isotherm twice"
    for k, level in enumerate(levels):
        if not limits.ABSOLUTE_ZERO_C < level < body:
            yield (
                f"output.isotherms_c[{k}] = {level:g} C must be above {limits.ABSOLUTE_ZERO_C} C "
                f"and below domain.body_temperature_c ({body:g} C)"
            )
    grid = case.grid()  # a Grid is a shape and a voxel size: no arrays
    for name, point in out.points.items():
        if not grid.contains(np.asarray(point)):
            yield (
                f"output.points.{name} {list(point)} mm is outside the domain "
                f"(0..{list(grid.size_mm)} mm)"
            )
    for i, probe in enumerate(case.probe_geometries()):
        _check_inside(grid, probe, i)
        problem = _clearance_problem(grid, probe, i)
        if problem:
            yield problem


def _probe_problems(case: Case, body: float):
    names = [p.name for p in case.probes if p.name is not None]
    for name in sorted({n for n in names if names.count(n) > 1}):
        yield f"probes: the name '{name}' is given to more than one probe"
    for i, p in enumerate(case.probes):
        if p.tip_temperature_c is not None and p.tip_temperature_c >= body:
            yield (
                f"probes[{i}].tip_temperature_c = {p.tip_temperature_c:g} C is not below "
                f"domain.body_temperature_c ({body:g} C); a freezing probe must be colder than "
                f"the tissue"
            )
        if p.tip_trace_c is None:
            continue
        field = f"probes[{i}].tip_trace_c"
        if not p.tip_trace_c:
            yield f"{field} is empty; give [[t_s, T_c], ...]"
            continue
        times = [t for t, _ in p.tip_trace_c]
        temps = [c for _, c in p.tip_trace_c]
        if times[0] < 0 or any(b <= a for a, b in pairwise(times)):
            yield f"{field}: times must start at 0 s or later and increase strictly (got {times})"
        for k, c in enumerate(temps):
            if not limits.ABSOLUTE_ZERO_C < c <= limits.MAX_PROBE_TEMPERATURE_C:
                yield (
                    f"{field}[{k}]: {c:g} C is outside {limits.ABSOLUTE_ZERO_C}.."
                    f"{limits.MAX_PROBE_TEMPERATURE_C:g} C"
                )
        if min(temps) >= body:
            yield (
                f"{field} never goes below domain.body_temperature_c ({body:g} C): "
                "it would not freeze"
            )


def _clearance_problem(grid: Grid, probe: ProbeGeometry, index: int) -> str | None:
    """The active surface (hemispherical tip + cylinder, radius a) must keep at least one voxel of
    tissue between itself and every outer face: a surface on a face would hold a body-temperature
    boundary cell next to a probe cell (an infinite gradient), which is no model of tissue.

    The active solid is the convex hull of the tip sphere (centre A = tip + a d) and the end disc
    (centre B = tip + L d, normal d), so it lies in the box iff both do; the disc reaches
    ``a sqrt(1 - d_i^2)`` along axis i."""
    a, h = probe.radius_mm, grid.voxel_mm
    lo = np.asarray(grid.origin_mm) + h
    hi = np.asarray(grid.origin_mm) + np.asarray(grid.size_mm) - h
    centre_a, centre_b = probe.segment_mm
    disc = a * np.sqrt(np.clip(1.0 - probe.unit**2, 0.0, 1.0))
    for part, centre, reach, field in (
        ("tip", centre_a, np.full(3, a), "tip_mm"),
        ("end of the active part", centre_b, disc, "active_length_mm"),
    ):
        low, high = centre - reach, centre + reach
        if np.all(low >= lo - 1e-9) and np.all(high <= hi + 1e-9):
            continue
        axis = int(np.argmax(np.maximum(lo - low, high - hi)))
        face = "min" if lo[axis] - low[axis] >= high[axis] - hi[axis] else "max"
        return (
            f"probes[{index}].{field}: the probe's {part} (radius {a:g} mm) comes within one voxel "
            f"({h:g} mm) of the domain's {'xyz'[axis]} {face} face; keep the active surface at "
            f"least {h:g} mm inside (move the probe or enlarge domain.size_mm)"
        )
    return None
