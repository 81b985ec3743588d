"""Protocol stepping: freeze / passive thaw / active thaw phases on the 3D bioheat model.

A :class:`ThermalModel` describes the problem (grid, per-voxel materials, probes and how they
are driven); :func:`simulate` runs a protocol on it and returns a :class:`ThermalResult` with the
final temperature, the minimum temperature each voxel reached, the time each voxel spent at or
below each threshold, temperature histories at named points and the heat each probe drew.

Probe boundary per phase:

* ``freeze``: the active surface is held at the probe's tip temperature, a constant or a
  function of the time since the start of that freeze phase (a measured trace, or the gas
  model's steady tip temperature);
* ``thaw-passive``: the gas stops; the active surface becomes adiabatic;
* ``thaw-active``: the surface is held at the thaw temperature (helium thaw; 20 °C default, a
  parameter).

A probe with a :class:`~cryoneuro.thermal.drive.DeviceDrive` (``ThermalModel.probe_devices``)
is not held at a given temperature: at the start of every step its wall temperature comes from
the energy balance of the device (gas-side heat transfer, limited by the gas flow's cooling
capacity; see ``drive.py``), evaluated on the current tissue state. The wall temperature each
probe had is recorded (``ThermalResult.probe_wall_temperature_c``).

Outer faces of the domain are held at body temperature (the far field) or are adiabatic.
Surfaces inside the domain (skin warming, skin convection, flowing blood) are
:class:`~cryoneuro.thermal.boundaries.SurfaceBoundary` reservoirs (``ThermalModel.surfaces``);
the heat each took is ``ThermalResult.boundary_heat_j``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numba
import numpy as np
from scipy.ndimage import map_coordinates

from cryoneuro import input_checks
from cryoneuro.errors import InputError
from cryoneuro.thermal import backends, boundaries, kernels, rkl
from cryoneuro.thermal.drive import DeviceDrive
from cryoneuro.thermal.geometry import INSULATED, Grid, ProbeGeometry, ProbeRaster, rasterise_probes
from cryoneuro.thermal.threads import with_free_threads
from cryoneuro.tissue import ThermalProperties

TemperatureSchedule = Callable[[float], float]

PHASE_KINDS = ("freeze", "thaw-passive", "thaw-active")
#: Fraction of the explicit stability limit used as the time step.
CFL_SAFETY = 0.9
#: Longest RKL2 step (s) and how steps are chosen below it (``rkl.StepControl``). Every step is
#: sized from the one before so that no cell crosses more than ``FRONT_TARGET`` of its mushy
#: range in one step, and grows by at most ``STEP_GROWTH`` per step. Why: a cell that leaves the
#: mushy range inside a long step overshoots (measured: a cell beside the probe reached −112 °C
#: instead of −54 °C after one 3 s step, and the −40 °C isotherm came out 0.2 mm long), while
#: away from the front long steps are accurate. Chosen by measurement against forward Euler
#: (docs/thermal.md, "Step control"): 0.2 keeps a water-like gel (0.5 K mushy range, the
#: hardest case) within 0.011 mm and tissue within 0.002 mm at a third of the evaluations of
#: the earlier fixed 0.5 s steps.
DEFAULT_TIME_STEP_S = 8.0
FRONT_TARGET = 0.2
STEP_GROWTH = 1.5
#: A looser front target for a *low-fidelity* model whose bias is corrected elsewhere (the 1 mm
#: control variate of ``sweep_multifidelity``): on the reference case at 1 mm 587 evaluations
#: instead of 820, final isotherms within 0.0085 mm of forward Euler, but a 10.5 K overshoot in
#: the minimum-temperature field (0.42 K at the default); on the demo plan's 1 mm replays ~40 %
#: less time, skin minimum moved < 0.2 K (docs/thermal.md, "Step control"). Never for a plan.
LOW_FIDELITY_FRONT_TARGET = 0.8
STEP_CONTROLS = ("front", "fixed")
#: Default thaw temperature of an active (helium) thaw, °C. Helium J–T warming alone gives only
#: a few kelvin (see ``cryoneuro probe helium``); devices add heating to reach roughly room to
#: body temperature at the tip, so 20 °C is a conservative default.
DEFAULT_ACTIVE_THAW_C = 20.0


@dataclass(frozen=True)
class Phase:
    """One step of a protocol."""

    kind: str
    duration_s: float
    temperature_c: float | None = None  # thaw-active only

    def __post_init__(self) -> None:
        if self.kind not in PHASE_KINDS:
            raise InputError(f"phase kind '{self.kind}' is not one of {PHASE_KINDS}")
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise InputError(
                f"phase duration must be a positive number of seconds (got {self.duration_s})"
            )


def constant(value_c: float) -> TemperatureSchedule:
    return lambda _t: value_c


def trace(times_s: Sequence[float], temperatures_c: Sequence[float]) -> TemperatureSchedule:
    """Piecewise-linear schedule through measured points (held constant beyond the ends)."""
    t = np.asarray(times_s, dtype=float)
    y = np.asarray(temperatures_c, dtype=float)
    if t.ndim != 1 or len(t) < 1 or len(t) != len(y) or np.any(np.diff(t) <= 0):
        raise InputError("tip_trace_c must be [[t_s, T_c], ...] with strictly increasing times")
    return lambda s: float(np.interp(s, t, y))


@dataclass
class ThermalModel:
    """The problem: grid, per-voxel material index, materials, probes and their drive."""

    grid: Grid
    labels: np.ndarray  # uint8 index into ``materials`` for each voxel
    materials: list[ThermalProperties]
    probes: list[ProbeGeometry]
    probe_temperature: list[TemperatureSchedule]
    body_temperature_c: float = 37.0
    boundary: str = "body"  # "body" (Dirichlet at body temperature) or "adiabatic"
    dirichlet_faces: tuple[bool, ...] | None = None  # overrides ``boundary`` per face
    wall_temperature_c: tuple[float, ...] | None = None  # per face; default body temperature
    source_w_m3: np.ndarray | None = None  # optional volumetric heat source (tests, heaters)
    initial_temperature_c: np.ndarray | None = None
    insulated_shaft: bool = True  # see geometry.rasterise_probes
    #: per probe: a device energy balance that replaces the held temperature (None: held)
    probe_devices: list[DeviceDrive | None] | None = None
    #: surfaces inside the domain held at a temperature or convective (boundaries.py)
    surfaces: list[boundaries.SurfaceBoundary] = field(default_factory=list)

    def __post_init__(self) -> None:
        boundaries.check(self.surfaces, self.grid.shape)
        if len(self.materials) + 1 + len(self.surfaces) > 255:
            raise InputError("too many materials and boundaries (255 at most)")
        if self.probe_devices is not None and len(self.probe_devices) != len(self.probes):
            raise InputError("give one device drive (or None) per probe")
        if self.labels.shape != self.grid.shape:
            raise InputError(
                f"label map shape {self.labels.shape} does not match the grid {self.grid.shape}"
            )
        if len(self.probe_temperature) != len(self.probes):
            raise InputError("give one temperature schedule per probe")
        if self.labels.size and int(self.labels.max()) >= len(self.materials):
            raise InputError(
                f"label {int(self.labels.max())} has no material (only {len(self.materials)} given)"
            )
        if self.boundary not in ("body", "adiabatic"):
            raise InputError(
                f"domain.boundary must be 'body' or 'adiabatic' (got '{self.boundary}')"
            )
        self.labels = np.ascontiguousarray(self.labels, dtype=np.uint8)

    def faces(self) -> np.ndarray:
        if self.dirichlet_faces is not None:
            return np.asarray(self.dirichlet_faces, dtype=np.bool_)
        return np.full(6, self.boundary == "body", dtype=np.bool_)


@dataclass
class ThermalResult:
    """What a simulation produced (temperatures in °C, times in s)."""

    model: ThermalModel
    raster: ProbeRaster
    temperature_c: np.ndarray
    min_temperature_c: np.ndarray
    thresholds_c: np.ndarray
    time_below_s: np.ndarray  # (n_thresholds, *grid.shape)
    point_names: list[str]
    point_times_s: np.ndarray
    point_temperatures_c: np.ndarray  # (n_times, n_points)
    probe_heat_j: np.ndarray  # heat drawn by each probe over the protocol
    enthalpy_change_j: float
    time_step_s: float  # the longest step taken (steps vary under the front step control)
    steps: int
    wall_time_s: float
    operator_evaluations: int = 0
    phases: list[Phase] = field(default_factory=list)
    #: wall temperature of each probe at the sample times (NaN while the probe is off)
    probe_wall_temperature_c: np.ndarray | None = None
    #: heat each surface boundary took from the tissue over the protocol (J; < 0: it gave heat)
    boundary_heat_j: dict[str, float] = field(default_factory=dict)

    @property
    def grid(self) -> Grid:
        return self.model.grid

    @property
    def tissue_mask(self) -> np.ndarray:
        """Voxels that are tissue (not probe, not shaft)."""
        return self.raster.kind == 0

    def time_below(self, threshold_c: float) -> np.ndarray:
        idx = np.flatnonzero(np.isclose(self.thresholds_c, threshold_c))
        if not len(idx):
            raise InputError(
                f"no time-below record for {threshold_c} C; add it to output.isotherms_c"
            )
        return self.time_below_s[idx[0]]


def stable_time_step(model: ThermalModel, raster: ProbeRaster) -> float:
    """Largest stable forward-Euler step (s) over the materials present.

    ``dt <= C_min dx^2 / (k_max S + w_b dx^2)`` where ``S`` is the largest per-cell sum of face
    multipliers: 6 in the bulk, up to 7 at a Dirichlet outer face, more beside a probe
    (``1/theta`` up to 2 per probe face).
    """
    dx = model.grid.voxel_mm * 1e-3
    present = np.unique(model.labels[raster.kind == 0])  # empty when no tissue voxel
    s_max = max(raster.max_face_sum, 7.0 if model.faces().any() else 6.0)
    s_max = max(s_max, 6.0 + boundaries.extra_face_sum(model.surfaces, raster.kind == 0))
    dt = math.inf
    for m in present:
        p = model.materials[int(m)]
        c_min = min(p.c_frozen, p.c_unfrozen)
        k_max = max(p.k_frozen, p.k_unfrozen)
        dt = min(dt, c_min * dx * dx / (k_max * s_max + p.perfusion * dx * dx))
    return CFL_SAFETY * dt


@with_free_threads
def simulate(
    model: ThermalModel,
    protocol: Sequence[Phase],
    *,
    thresholds_c: Sequence[float] = (0.0, -20.0, -40.0),
    points_mm: dict[str, Sequence[float]] | None = None,
    sample_interval_s: float = 0.25,
    max_time_step_s: float | None = None,
    scheme: str = "rkl2",
    time_step_s: float = DEFAULT_TIME_STEP_S,
    progress: Callable[[float, str], None] | None = None,
    backend: str = "auto",
    step_control: str = "front",
    front_target: float = FRONT_TARGET,
) -> ThermalResult:
    """Run ``protocol`` on ``model``; see the module docstring for the boundary conditions.

    ``scheme="rkl2"`` (default) takes Runge–Kutta–Legendre super time steps (``rkl.py``) of at
    most ``time_step_s``: with ``step_control="front"`` (default) each is sized by the
    latent-heat front (at most ``front_target`` of a cell's mushy range per step); ``"fixed"``
    ramps up to ``time_step_s`` and stays there. The default ``front_target`` is the accurate
    choice; larger values trade accuracy for fewer evaluations (only for a low-fidelity model
    whose bias is corrected elsewhere: the multi-fidelity sweep's 1 mm control variate uses
    ``LOW_FIDELITY_FRONT_TARGET``; docs/thermal.md, "Step control"). ``"euler"`` takes
    forward-Euler steps at the stability limit (or ``max_time_step_s`` if smaller). Records are
    sampled every ``sample_interval_s`` or every step, whichever is longer. ``backend``
    (``backends.py``): ``"auto"`` runs on a GPU through CuPy when one is present and on the CPU
    (Numba) otherwise; ``"array"`` forces the GPU code on the CPU through NumPy (for testing it).
    """
    if scheme not in ("rkl2", "euler"):
        raise InputError(f"scheme must be 'rkl2' or 'euler' (got '{scheme}')")
    if step_control not in STEP_CONTROLS:
        raise InputError(f"step_control must be 'front' or 'fixed' (got '{step_control}')")
    if not (math.isfinite(time_step_s) and time_step_s > 0):
        raise InputError(f"time_step_s must be positive (got {time_step_s})")
    if isinstance(front_target, bool) or not (
        isinstance(front_target, int | float) and 0.0 < front_target <= 1.0
    ):
        raise InputError(
            f"front_target must be in (0, 1], a fraction of the mushy range (got {front_target!r})"
        )
    if not protocol:
        raise InputError("protocol.phases is empty; add at least one { freeze_s = ... }")
    too_long = input_checks.check_protocol(
        sum(p.duration_s for p in protocol), sample_interval_s, len(protocol), len(points_mm or {})
    )
    if too_long:  # before anything is allocated (input_checks.py)
        raise InputError(too_long)
    started = time.perf_counter()
    grid = model.grid
    raster = rasterise_probes(grid, model.probes, insulated_shaft=model.insulated_shaft)
    kern = backends.get_kernels(backend)
    state = _State(model, raster, kern)
    xp = kern.xp
    kind = raster.kind
    kind_dev = kern.to_device(kind)
    dx = grid.voxel_mm * 1e-3
    inv_dx2 = 1.0 / (dx * dx)

    thresholds = np.asarray(sorted({float(x) for x in thresholds_c}, reverse=True))
    t_min = state.interior(state.t_old).copy()
    t_prev = t_min.copy()
    below = xp.zeros((len(thresholds), *grid.shape), dtype=np.float32)
    thresholds_dev = kern.to_device(thresholds)
    points = dict(points_mm or {})
    names = list(points)
    coords = np.array([points[n] for n in names], dtype=float) if names else np.zeros((0, 3))
    for name, c in zip(names, coords, strict=True):
        if not grid.contains(c):
            raise InputError(f"output point '{name}' {list(c)} is outside the domain")
    sample_t: list[float] = [0.0]
    sample_T: list[np.ndarray] = [_sample_points(state.interior(state.t_old), grid, coords, kern)]
    devices = model.probe_devices or [None] * len(model.probes)
    any_device = any(d is not None for d in devices)
    sample_wall: list[np.ndarray] = [np.full(len(model.probes), np.nan)]
    h_start = state.tissue_enthalpy()

    dt_stable = stable_time_step(model, raster)
    if max_time_step_s is not None:
        dt_stable = min(dt_stable, max_time_step_s)
    n_steps = sum(p.duration_s for p in protocol) / (
        dt_stable if scheme == "euler" else time_step_s
    )
    if n_steps > input_checks.MAX_SOLVER_STEPS:  # bounded before anything runs
        raise InputError(
            f"solver.scheme = '{scheme}' would take {n_steps:.3g} steps (limit "
            f"{input_checks.MAX_SOLVER_STEPS:,}); use 'rkl2', larger voxels or a shorter protocol"
        )
    use_source = model.source_w_m3 is not None
    source = kern.to_device(
        state.pad(model.source_w_m3, 0.0) if model.source_w_m3 is not None else np.zeros((1, 1, 1))
    )
    n_probes = len(model.probes)
    heat = np.zeros(n_probes)
    probe_temp = np.zeros(n_probes)
    total_s = sum(p.duration_s for p in protocol)
    elapsed = 0.0
    steps = 0
    since_sample = 0.0
    evaluations = 0
    dt_used = 0.0  # the longest step taken

    for phase_no, phase in enumerate(protocol):
        if scheme == "rkl2":
            control = rkl.StepControl(
                phase.duration_s,
                time_step_s,
                dt_stable,
                front_target=front_target if step_control == "front" else None,
                growth=STEP_GROWTH if step_control == "front" else rkl.RAMP_GROWTH,
            )
        else:
            n = max(1, math.ceil(phase.duration_s / dt_stable))
            control = rkl.StepControl.uniform(phase.duration_s, n)
        t_phase = 0.0
        on = np.full(n_probes, phase.kind != "thaw-passive")
        label = f"{phase.kind} {phase_no + 1}/{len(protocol)}"
        while not control.done:
            dt = control.next()
            dt_used = max(dt_used, dt)
            for p in range(n_probes):
                if phase.kind == "freeze":
                    probe_temp[p] = model.probe_temperature[p](t_phase + 0.5 * dt)
                elif phase.kind == "thaw-active":
                    probe_temp[p] = (
                        phase.temperature_c
                        if phase.temperature_c is not None
                        else DEFAULT_ACTIVE_THAW_C
                    )
            if any_device and phase.kind != "thaw-passive":
                g_w_k, t_eff = state.wall_conductance(inv_dx2)
                for p, dev in enumerate(devices):
                    if dev is None:
                        continue
                    if phase.kind == "freeze":
                        probe_temp[p] = dev.freeze_wall_c(g_w_k[p], t_eff[p])
                    else:
                        probe_temp[p] = dev.thaw_wall_c(g_w_k[p], t_eff[p], probe_temp[p])
            t_before = state.t_old  # not written by the step (see _State.step_rkl)
            if scheme == "rkl2":
                stages = rkl.stages_for(dt, dt_stable)
                state.step_rkl(dt, stages, inv_dx2, source, use_source, probe_temp, on, heat)
                evaluations += stages
            else:
                state.step(dt, inv_dx2, source, use_source, probe_temp, on, heat)
                evaluations += 1
            if control.front_target is not None:
                control.observe(kern.liquid_change(t_before, state.t_old, state.lab, state.mat))
            else:
                control.observe()
            steps += 1
            t_phase += dt
            elapsed += dt
            since_sample += dt
            if since_sample >= sample_interval_s - 1e-12 or control.done:
                state.fill_probe_cells(probe_temp, on)
                t_now = state.interior(state.t_old)
                kern.record(t_now, t_prev, kind_dev, t_min, below, thresholds_dev, since_sample)
                sample_t.append(elapsed)
                sample_T.append(_sample_points(t_now, grid, coords, kern))
                sample_wall.append(np.where(on, probe_temp, np.nan))
                since_sample = 0.0
                if progress is not None:
                    progress(min(elapsed / total_s, 1.0), label)
    insulated = kind == INSULATED
    t_min = np.array(kern.to_host(t_min))
    t_min[insulated] = np.nan
    final = np.array(kern.to_host(state.interior(state.t_old)))
    final[insulated] = np.nan
    below = np.asarray(kern.to_host(below))
    voxel_m3 = dx**3
    return ThermalResult(
        model=model,
        raster=raster,
        temperature_c=final,
        min_temperature_c=t_min,
        thresholds_c=thresholds,
        time_below_s=below,
        point_names=names,
        point_times_s=np.asarray(sample_t),
        point_temperatures_c=np.asarray(sample_T).reshape(len(sample_t), len(names)),
        probe_heat_j=heat * voxel_m3,
        enthalpy_change_j=(state.tissue_enthalpy() - h_start) * voxel_m3,
        boundary_heat_j=state.boundary_heat(voxel_m3),
        time_step_s=dt_used,
        steps=steps,
        wall_time_s=time.perf_counter() - started,
        operator_evaluations=evaluations,
        phases=list(protocol),
        probe_wall_temperature_c=np.asarray(sample_wall).reshape(len(sample_t), n_probes),
    )


class _State:
    """Padded working arrays (one ghost layer) and the operations on them."""

    def __init__(
        self,
        model: ThermalModel,
        raster: ProbeRaster,
        kern: backends.NumbaKernels | backends.ArrayKernels | None = None,
    ) -> None:
        self.kern = kern = kern or backends.NumbaKernels()
        grid = model.grid
        self.mat = kernels.material_table(model.materials, model.body_temperature_c)
        self.probe_material = len(model.materials)
        self.inner = (slice(1, -1),) * 3
        kind = raster.kind
        self.free = kind == 0
        lab = np.full(tuple(n + 2 for n in grid.shape), self.probe_material, dtype=np.uint8)
        lab_in = model.labels.copy()
        lab_in[~self.free] = self.probe_material
        # surface boundaries: reservoir rows after the probe material (boundaries.py)
        self.surface_names = [s.name for s in model.surfaces]
        self.reservoirs = [s.cells & self.free for s in model.surfaces]
        self.tissue = self.free.copy()
        if model.surfaces:
            self.mat = np.vstack(
                [self.mat, boundaries.reservoir_rows(model.surfaces, grid.voxel_mm)]
            )
            for r, cells in enumerate(self.reservoirs):
                lab_in[cells] = self.probe_material + 1 + r
                self.tissue &= ~cells
        lab[self.inner] = lab_in
        self.lab = lab
        t0 = np.full(grid.shape, float(model.body_temperature_c))
        if model.initial_temperature_c is not None:
            t0[...] = model.initial_temperature_c
        for s, cells in zip(model.surfaces, self.reservoirs, strict=True):
            t0[cells] = s.temperature_c
        self.t_old = self.pad(t0, float(model.body_temperature_c))
        self.h = np.empty_like(self.t_old)
        kernels.enthalpy_from_temperature(self.t_old, lab, self.mat, self.h)
        self.k_old = np.empty_like(self.t_old)
        kernels.conductivity_field(self.t_old, lab, self.mat, self.k_old)
        faces = model.faces()
        walls = model.wall_temperature_c or (float(model.body_temperature_c),) * 6
        for f in range(6):
            axis, end = divmod(f, 2)
            sl: list[slice | int] = [slice(None)] * 3
            sl[axis] = -1 if end else 0
            self.k_old[tuple(sl)] = kernels.K_WALL if faces[f] else 0.0
            self.t_old[tuple(sl)] = walls[f]
        self.t_new = self.t_old.copy()
        self.k_new = self.k_old.copy()
        self.n_chunks = min(max(1, grid.shape[0] // 4), 2 * numba.get_num_threads())
        self.raster = raster
        self.cells = raster.boundary_cells + 1  # padded indices
        self.prates = np.zeros(len(self.cells))
        self.per_probe = np.zeros(len(model.probes))
        self.spare: list | None = None
        self.m0: np.ndarray | None = None
        self.members = [np.nonzero(raster.probe_index == p) for p in range(len(model.probes))]
        self.owners = []
        for p in range(len(model.probes)):
            touches = (raster.boundary_probe == p).any(axis=1)
            self.owners.append(tuple((raster.boundary_cells[touches] + 1).T))
        self.mat_host = self.mat
        self.inv_theta, self.which = raster.boundary_inv_theta, raster.boundary_probe
        if model.surfaces and len(raster.boundary_cells):
            # a reservoir cell (boundaries.py) beside a probe does not exchange with it: its
            # conductivity is the film's (or the wall's 1e12), not a tissue's, and would pin the
            # probe's wall to the boundary temperature
            held = np.zeros(grid.shape, bool)
            for cells in self.reservoirs:
                held |= cells
            c = raster.boundary_cells
            on_reservoir = held[c[:, 0], c[:, 1], c[:, 2]]
            if on_reservoir.any():
                self.inv_theta = self.inv_theta.copy()
                self.inv_theta[on_reservoir] = 0.0
        if kern.name != "numba":  # the working arrays live on the backend's device
            dev = kern.to_device
            for name in (
                "lab",
                "mat",
                "h",
                "t_old",
                "k_old",
                "t_new",
                "k_new",
                "prates",
                "cells",
                "free",
                "inv_theta",
                "which",
            ):
                setattr(self, name, dev(getattr(self, name)))
            self.members = [tuple(dev(c + 1) for c in m) for m in self.members]
            self.owners = [tuple(dev(c) for c in o) for o in self.owners]
        else:
            self.members = [tuple(c + 1 for c in m) for m in self.members]

    def pad(self, a: np.ndarray, fill: float) -> np.ndarray:
        """A host array with one ghost layer (moved to the device by the caller if needed)."""
        out = np.full(tuple(n + 2 for n in a.shape), fill, dtype=np.float64)
        out[self.inner] = a
        return out

    def interior(self, a: np.ndarray) -> np.ndarray:
        return a[self.inner]

    def tissue_enthalpy(self) -> float:
        return float(self.kern.to_host(self.interior(self.h))[self.tissue].sum())

    def boundary_heat(self, voxel_m3: float) -> dict[str, float]:
        """Heat each reservoir collected (its enthalpy starts at 0), J."""
        h = self.kern.to_host(self.interior(self.h))
        return {
            name: float(h[cells].sum()) * voxel_m3
            for name, cells in zip(self.surface_names, self.reservoirs, strict=True)
        }

    def _probe(self, t, k, probe_temp, on, inv_dx2) -> None:
        self.kern.probe_rates(
            t,
            k,
            self.cells,
            self.inv_theta,
            self.which,
            probe_temp,
            on,
            inv_dx2,
            self.prates,
            self.per_probe,
        )

    def wall_conductance(self, inv_dx2: float) -> tuple[np.ndarray, np.ndarray]:
        """Per probe: tissue-side conductance ``G`` (W/K) of its ghost-fluid faces and the
        conductance-weighted tissue temperature ``T_eff`` (°C) on the current state.

        The ghost-fluid flux is linear in the wall temperature, ``q(T_w) = G'T_w − S``; two
        evaluations (``T_w`` = 0 and 1) give ``G'`` and ``S``; ``G = G' dx³``,
        ``T_eff = S / G'``."""
        n = len(self.per_probe)
        on = np.ones(n, dtype=np.bool_)
        self._probe(self.t_old, self.k_old, np.zeros(n), on, inv_dx2)
        q0 = self.per_probe.copy()
        self._probe(self.t_old, self.k_old, np.ones(n), on, inv_dx2)
        g_prime = self.per_probe - q0
        safe = np.where(g_prime > 0, g_prime, 1.0)
        t_eff = np.where(g_prime > 0, -q0 / safe, np.nan)
        return g_prime / inv_dx2**1.5, t_eff

    def step(self, dt, inv_dx2, source, use_source, probe_temp, on, heat) -> None:
        """Forward Euler: ``H += dt L(H)``; ``heat`` gets the heat each probe drew (J/m³)."""
        n_cells = len(self.cells)
        if n_cells:
            self._probe(self.t_old, self.k_old, probe_temp, on, inv_dx2)
        self.kern.stage(
            self.h,
            self.h,
            self.h,
            self.h,
            self.h,
            self.t_old,
            self.k_old,
            self.t_new,
            self.k_new,
            self.lab,
            self.mat,
            1.0,
            0.0,
            0.0,
            dt,
            0.0,
            inv_dx2,
            source,
            use_source,
            False,
            False,
            self.n_chunks,
        )
        if n_cells:
            self.kern.add_probe_rates(
                self.h,
                self.t_new,
                self.k_new,
                self.lab,
                self.mat,
                self.cells,
                self.prates,
                dt,
                self.h,
                False,
            )
            heat -= dt * self.per_probe
        self.t_old, self.t_new = self.t_new, self.t_old
        self.k_old, self.k_new = self.k_new, self.k_old

    def step_rkl(self, tau, n_stages, inv_dx2, source, use_source, probe_temp, on, heat) -> None:
        """One RKL2 super-step of length ``tau`` in ``n_stages`` stages (see rkl.py).

        The probe heat follows the same linear recurrence as the stages, so the energy account
        stays exact."""
        if self.spare is None:
            xp = self.kern.xp
            self.spare = [
                (xp.empty_like(self.h), self.t_old.copy(), self.k_old.copy()) for _ in range(2)
            ]
            self.m0 = xp.zeros_like(self.h)
        coef = rkl.coefficients(n_stages)
        n_cells = len(self.cells)
        y0 = (self.h, self.t_old, self.k_old)
        bufs = [y0, self.spare[0], self.spare[1]]
        # stage 1: Y1 = Y0 + mu~1 tau L(Y0), storing M0 = L(Y0)
        if n_cells:
            self._probe(y0[1], y0[2], probe_temp, on, inv_dx2)
        q0 = self.per_probe.copy()
        mut1 = coef[0][2]
        a = bufs[1]
        self.kern.stage(
            a[0],
            y0[0],
            y0[0],
            y0[0],
            self.m0,
            y0[1],
            y0[2],
            a[1],
            a[2],
            self.lab,
            self.mat,
            1.0,
            0.0,
            0.0,
            mut1 * tau,
            0.0,
            inv_dx2,
            source,
            use_source,
            False,
            True,
            self.n_chunks,
        )
        if n_cells:
            self.kern.add_probe_rates(
                a[0],
                a[1],
                a[2],
                self.lab,
                self.mat,
                self.cells,
                self.prates,
                mut1 * tau,
                self.m0,
                True,
            )
        e_prev2, e_prev1 = np.zeros_like(q0), mut1 * tau * q0
        prev2, prev1 = y0, a
        for j in range(2, n_stages + 1):
            mu, nu, mut, gmt = coef[j - 1]
            out = bufs[2] if j == 2 else prev2
            if n_cells:
                self._probe(prev1[1], prev1[2], probe_temp, on, inv_dx2)
            self.kern.stage(
                out[0],
                prev1[0],
                prev2[0],
                y0[0],
                self.m0,
                prev1[1],
                prev1[2],
                out[1],
                out[2],
                self.lab,
                self.mat,
                mu,
                nu,
                1.0 - mu - nu,
                mut * tau,
                gmt * tau,
                inv_dx2,
                source,
                use_source,
                True,
                False,
                self.n_chunks,
            )
            if n_cells:
                self.kern.add_probe_rates(
                    out[0],
                    out[1],
                    out[2],
                    self.lab,
                    self.mat,
                    self.cells,
                    self.prates,
                    mut * tau,
                    self.m0,
                    False,
                )
            e_new = mu * e_prev1 + nu * e_prev2 + mut * tau * self.per_probe + gmt * tau * q0
            e_prev2, e_prev1 = e_prev1, e_new
            prev2, prev1 = prev1, out
        heat -= e_prev1
        self.spare = [b for b in bufs if b is not prev1]
        self.h, self.t_old, self.k_old = prev1

    def fill_probe_cells(self, probe_temp: np.ndarray, on: np.ndarray) -> None:
        """Give attached cells the probe's temperature; during a passive thaw, the mean of the
        tissue touching it (a metal needle equilibrates with its surroundings)."""
        hl = self.mat_host[self.probe_material, kernels.HL]
        tl = self.mat_host[self.probe_material, kernels.TL]
        cu = self.mat_host[self.probe_material, kernels.CU]
        for p, members in enumerate(self.members):
            if on[p]:
                value = probe_temp[p]
            elif len(self.owners[p][0]):
                value = float(self.t_old[self.owners[p]].mean())
            else:
                continue
            self.t_old[members] = value
            self.h[members] = hl + cu * (value - tl)


def _sample_points(t: np.ndarray, grid: Grid, coords: np.ndarray, kern=None) -> np.ndarray:
    """Trilinear interpolation of the temperature at the given points (mm)."""
    if len(coords) == 0:
        return np.zeros(0)
    if kern is not None:
        t = kern.to_host(t)
    idx = (coords - np.asarray(grid.origin_mm)) / grid.voxel_mm - 0.5
    return map_coordinates(t, idx.T, order=1, mode="nearest")
