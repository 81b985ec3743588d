"""Plan a cryoablation on a labelled anatomy, end to end.

anatomy → region of interest → candidate placements → full 3D simulation of each → nerve block,
target coverage and adjacent-structure safety → the best candidate by the planner's score →
relief prediction, trajectory check, warnings with their sources, pictures, Plan and report.

Candidates come from one of two searches (:mod:`cryoneuro.planning.search`):

* ``"continuous"`` (default): entry direction within the chosen approach (dorsal, plantar,
  oblique, or an ultrasound plane), aim point, depth and protocol option searched together —
  a scrambled Sobol sample on the coarse grid, Nelder–Mead refinement from the best points,
  the best confirmed at 0.5 mm; one or two probes;
* ``"grid"``: the original 24-point grid (vertical needle from the top of the region; lateral
  offsets × shifts × gases × freezes), kept as a reference.

Protocols are named presets with their sources (:mod:`cryoneuro.planning.protocols`). Boundaries
(:mod:`cryoneuro.thermal.boundaries`): the skin convects to room air (or is held warm by saline,
or is adiabatic), and arteries are flowing vessels (a Nusselt film at blood temperature that
keeps flowing while the lumen is open) unless asked otherwise.

Choice rule (:func:`cryoneuro.planning.search.score`): a candidate is feasible when the whole
nerve cross-section reaches the axonotmesis threshold somewhere (complete block), the skin stays
above 0 °C and the needle path is clear; then the policy ("reversible-block": no neurotmesis;
"neuroma-ablation": the neuroma frozen to the neurotmesis range), the block, the skin margin
and a shorter freeze. If none is feasible the plan says so and why, and keeps the candidate
that came closest.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from cryoneuro import injury, regrowth
from cryoneuro import probe as probe_physics
from cryoneuro.anatomy.patient_anatomy import PatientAnatomy
from cryoneuro.errors import GeometryError
from cryoneuro.planning import search
from cryoneuro.planning.plan import (
    Isotherm,
    Plan,
    PlanArtifacts,
    ProbePlacement,
    ProtocolPhase,
    TrajectorySummary,
)
from cryoneuro.planning.trajectory import assess_trajectory, tip_for_target
from cryoneuro.thermal import Phase, ProbeGeometry, ThermalModel, constant, simulate
from cryoneuro.thermal import boundaries as bd
from cryoneuro.thermal.solver import LOW_FIDELITY_FRONT_TARGET
from cryoneuro.thermal.summary import isotherms

#: 17G argon probe class (docs/domain-facts.md: 17G ≈ 1.47 mm) with a 10 mm active zone (sphere
# class).
PROBE_MODEL = "argon-17G-sphere-class"
PROBE_DIAMETER_MM = 1.47
ACTIVE_LENGTH_MM = 10.0
#: How the probe wall is driven: "device" (the device energy balance of the catalogue model,
#: run with each candidate gas; docs/probe.md) or "held" (held at the gas's no-load boiling
#: point: the coldest possible probe, which overestimates the iceball).
DRIVE = "device"
#: Candidate protocols: two freeze cycles with a 30 s passive thaw (Prologo 2017 used two
#: freeze–thaw cycles; Cazzato 2016 a 150 s freeze); shorter freezes keep the skin safe in a
#: forefoot 25 mm thick.
FREEZE_S = (60.0, 120.0)
THAW_S = 30.0
#: Shifts of the active part's centre along the needle relative to the target (mm).
SHIFTS_MM = (0.0, 2.0)
#: Lateral offsets of the needle from the target centre (mm, along x): through the neuroma, or
#: beside it so the nerve is not pierced and its coldest point stays above the neurotmesis range.
OFFSETS_MM = (0.0, -2.5, 2.5)
#: Cryogens tried: nitrous oxide (recuperated tip -88.5 C, the handheld cryoneurolysis class,
#: which cannot reach the neurotmesis range) and argon (-185.8 C).
GASES = ("nitrous-oxide", "argon")


@dataclass
class Spec:
    """One candidate placement and protocol, ready to simulate (picklable for Dask workers)."""

    gas: str
    tip_c: float
    freeze_s: float
    phases: list
    geometries: list
    devices: list  # DeviceDrive or None, one per probe
    entries: list  # skin entry point of each needle (mm)
    offset_mm: float = 0.0
    shift_mm: float = 0.0
    describe: dict = field(default_factory=dict)  # how the search made it (approach, angles)

    def __iter__(
        self,
    ):  # the old 7-tuple unpacking (offset, shift, gas, tip, freeze, geometry, device)
        return iter(
            (
                self.offset_mm,
                self.shift_mm,
                self.gas,
                self.tip_c,
                self.freeze_s,
                self.geometries[0],
                self.devices[0],
            )
        )


@dataclass
class Candidate:
    offset_mm: float
    shift_mm: float
    freeze_s: float
    result: object
    profile: injury.NerveInjuryProfile
    safety: list
    skin_margin_c: float
    trajectory: object
    gas: str = "argon"
    tip_c: float = -185.8
    device: object = None  # the DeviceDrive of the first probe, or None for a held wall
    spec: Spec | None = None
    trajectories: list = field(default_factory=list)
    #: fraction of the target at or below −40 °C and at or below the neurotmesis threshold
    target_lethal: float = 0.0
    target_neurotmesis: float = 0.0
    policy: str = "reversible-block"
    boundary_heat_j: dict = field(default_factory=dict)

    @property
    def paths(self) -> list:
        return self.trajectories or ([self.trajectory] if self.trajectory is not None else [])

    @property
    def feasible(self) -> bool:
        return (
            self.profile.complete_block and self.skin_margin_c > 0 and all(t.ok for t in self.paths)
        )

    def score(self) -> float:
        """The planner's own score (search.score): higher is better."""
        from cryoneuro.planning.search import score

        return score(self, self.policy)

    def rank(self) -> tuple:
        """Sort key: the score (feasible first; then the policy, the block, the skin margin,
        the shorter freeze — search.score)."""
        return (self.score(),)


def region_of_interest(phantom: PatientAnatomy, half_mm: float = 14.0):
    """Resample the anatomy to a box around the neuroma (full height), 0.5 mm voxels.

    Deterministic in the phantom alone, so a saved plan's grid can be rebuilt exactly
    (:mod:`cryoneuro.planning.replay`). Returns (anatomy, neuroma centre in mm).
    """
    anat = phantom.anatomy
    grid = anat.grid()
    neuroma = anat.labels == phantom.neuroma_label
    centre = np.array([grid.axis_mm(a)[np.nonzero(neuroma)[a]].mean() for a in range(3)])
    lo_full, hi_full = anat.bounds_mm()
    lo = np.maximum(lo_full, centre - half_mm)
    hi = np.minimum(hi_full, centre + half_mm)
    lo[2], hi[2] = lo_full[2], hi_full[2]
    return anat.resample_to(grid.voxel_mm, (lo, hi)), centre


def protocol(freeze_s: float, thaw_s: float = THAW_S) -> list[Phase]:
    """The planner's default protocol: freeze, passive thaw, freeze (two freeze–thaw cycles)."""
    return [Phase("freeze", freeze_s), Phase("thaw-passive", thaw_s), Phase("freeze", freeze_s)]


#: Boundary options of the thermal model (thermal/boundaries.py). Skin: "convective" (room air,
#: h = 10 W/m²/K at 22 °C), "warm-saline" (surface held at 37 °C within SALINE_RADIUS_MM of each
#: entry point: a saline-soaked gauze over the iceball's area), "adiabatic" (air only, the
#: model before issue 12). Arteries: "flowing" (lumen a reservoir at 37 °C with a Nusselt
#: film) or "perfused" (the lumped Pennes sink that stops once frozen, the model before
#: issue 12).
SKIN_OPTIONS = ("convective", "warm-saline", "adiabatic")
ARTERY_OPTIONS = ("flowing", "perfused")
SALINE_RADIUS_MM = 25.0
#: When the best blocking plan freezes the convective skin: "if-needed" re-confirms the
#: confirmed candidates with warm saline on the skin, best first, until one is feasible, and
#: takes that protected plan, saying so in the plan, the report and a warning (none feasible:
#: the unprotected verdict stands); "never" keeps the unprotected verdict.
#: Source: "External skin warming is a critical technique for cutaneous protection when
#: performing cryoablation of superficial tumors. Existing techniques for cutaneous protection
#: include hydrodissection, pneumodissection, and application of warm, fluid-filled gloves"
#: (Bode, Heithaus, Prologo, CIO 2021-22 poster "External Skin Warming During Cryoablation");
#: the caveat goes into the warning: "Warm compress, saline and CO2 have shortcomings in
#: protecting the skin" (pneumodissection series, Eur Radiol 2016, key points).
SKIN_PROTECTION_OPTIONS = ("if-needed", "never")
SKIN_PROTECTION = "if-needed"
#: Mean blood velocity in the arteries (m/s): a user setting (measure it by Doppler). The
#: default is of the order of mean velocities in small limb arteries; it sets the Nusselt
#: film's entry-length term only (the fully developed limit, Nu = 3.66, does not depend on it).
ARTERY_VELOCITY_M_S = 0.1


@dataclass(frozen=True)
class Boundaries:
    """How the planner's thermal model treats the skin surface and the arteries."""

    skin: str = "convective"
    skin_h_w_m2k: float = bd.SKIN_AIR_H_W_M2K
    room_c: float = bd.ROOM_TEMPERATURE_C
    saline_c: float = bd.WARM_SALINE_C
    saline_radius_mm: float = SALINE_RADIUS_MM
    arteries: str = "flowing"
    artery_velocity_m_s: float = ARTERY_VELOCITY_M_S

    def __post_init__(self) -> None:
        if self.skin not in SKIN_OPTIONS:
            raise GeometryError(f"skin must be one of {SKIN_OPTIONS} (got '{self.skin}')")
        if self.arteries not in ARTERY_OPTIONS:
            raise GeometryError(f"arteries must be one of {ARTERY_OPTIONS} (got '{self.arteries}')")

    def as_dict(self) -> dict:
        return asdict(self)


LEGACY_BOUNDARIES = Boundaries(skin="adiabatic", arteries="perfused")


def boundaries_for(inputs: dict) -> Boundaries:
    """The boundaries a saved plan was made with (``inputs["boundaries"]``); plans made before
    they were recorded used :data:`LEGACY_BOUNDARIES`."""
    stored = (inputs or {}).get("boundaries")
    return Boundaries(**stored) if stored else LEGACY_BOUNDARIES


class Level:
    """The anatomy on one grid (screening at 1 mm, confirmation at 0.5 mm) and its masks.

    Picklable (arrays and dataclasses only), so a Dask worker can evaluate candidates on it.
    """

    def __init__(
        self,
        phantom: PatientAnatomy,
        anat,
        voxel_mm: float,
        bounds,
        boundaries: Boundaries | None = None,
        front_target: float | None = None,
    ):
        if (
            tuple(anat.spacing_mm) != (voxel_mm,) * 3
        ):  # the region of interest may already be on this grid
            anat = anat.resample_to(voxel_mm, bounds)
        self.anat = anat
        # the step control's front target (simulate(front_target=)); None: the engine default
        self.front_target = front_target
        self.grid, self.labels, self.materials = anat.to_model_inputs(
            {**phantom.tissue_map, "background": "air"}
        )
        lab = anat.labels
        self.lab = lab
        self.nerve = np.isin(lab, [phantom.nerve_label, phantom.neuroma_label])
        self.nerve_disc_mm = injury.disc_radius_mm(self.nerve, self.grid.voxel_mm)
        self.target = lab == phantom.neuroma_label
        self.body = lab != 0
        self.boundaries = boundaries or LEGACY_BOUNDARIES
        lumen = np.isin(lab, phantom.artery_labels)
        self.vessel = None
        self.vessel_info: dict = {}
        if self.boundaries.arteries == "flowing" and lumen.any():
            self.vessel, self.vessel_info = bd.flowing_vessel(
                "flowing blood",
                lumen,
                np.ones(lab.shape, bool),
                self.grid.voxel_mm,
                velocity_m_s=self.boundaries.artery_velocity_m_s,
            )
        self.structures = {
            "skin": lab == phantom.skin_label,
            "artery": lumen,
            "bone": np.isin(lab, phantom.bone_labels),
        }
        if self.vessel is not None:
            # the lumen keeps blood temperature: what freezes is the tissue at its wall
            wall = ndimage.binary_dilation(lumen, ndimage.generate_binary_structure(3, 1))
            self.structures["artery"] = wall & ~lumen & self.body

    def surfaces(self, entries=()) -> list:
        """The boundary surfaces of this grid for needles entering at ``entries`` (mm)."""
        b = self.boundaries
        out = []
        if b.skin == "convective":
            out.append(bd.skin_convection(self.body, b.skin_h_w_m2k, b.room_c))
        elif b.skin == "warm-saline":
            out.append(
                bd.skin_warming(
                    self.body,
                    b.saline_c,
                    centres_mm=list(entries) or None,
                    radius_mm=b.saline_radius_mm if len(entries) else None,
                    grid=self.grid,
                )
            )
        if self.vessel is not None:
            out.append(self.vessel)
        return out

    def model(
        self, geometry, tip_c: float, materials=None, device=None, entries=()
    ) -> ThermalModel:
        """The thermal model of one placement (``geometry``: one ProbeGeometry or a list;
        ``materials`` overrides the tissue table; ``device``: a DeviceDrive, or a list, that
        replaces the held temperature)."""
        geoms = list(geometry) if isinstance(geometry, list | tuple) else [geometry]
        devs = list(device) if isinstance(device, list | tuple) else [device] * len(geoms)
        return ThermalModel(
            self.grid,
            self.labels,
            list(materials or self.materials),
            geoms,
            [constant(tip_c)] * len(geoms),
            probe_devices=None if all(d is None for d in devs) else devs,
            surfaces=self.surfaces(entries),
        )

    def judge(
        self, res, centreline_mm, block_proximal_to_mm: float | None = None
    ) -> tuple[injury.NerveInjuryProfile, list, float]:
        """Nerve profile, adjacent-structure safety and the skin margin (°C) of a simulation.

        The whole anatomical nerve goes to the profile with the tissue mask beside it, so a
        needle through the nerve is seen as displaced tissue, not as a gap in the section."""
        tissue = res.tissue_mask
        prof = injury.nerve_profile(
            res.min_temperature_c,
            self.grid,
            self.nerve,
            centreline_mm,
            radius_mm=self.nerve_disc_mm,
            tissue_mask=tissue,
            block_proximal_to_mm=block_proximal_to_mm,
        )
        safety = injury.structure_safety(
            res.min_temperature_c, self.grid, {k: m & tissue for k, m in self.structures.items()}
        )
        skin = next((x for x in safety if x.name == "skin"), None)
        return prof, safety, skin.margin_c if skin else np.inf

    def evaluate(self, phantom, spec, traj, policy: str = "reversible-block") -> Candidate:
        if not isinstance(spec, Spec):  # the old 7-tuple
            offset, shift, gas, tip_c, freeze, geometry, device = spec
            spec = Spec(
                gas, tip_c, freeze, protocol(freeze), [geometry], [device], [], offset, shift
            )
        res = simulate(
            self.model(spec.geometries, spec.tip_c, device=spec.devices, entries=spec.entries),
            spec.phases,
            **({} if self.front_target is None else {"front_target": self.front_target}),
        )
        prof, safety, margin = self.judge(
            res, phantom.centreline_mm, getattr(phantom, "block_proximal_to_mm", None)
        )
        target = self.target & res.tissue_mask
        t = res.min_temperature_c[target]
        trajs = list(traj) if isinstance(traj, list | tuple) else ([traj] if traj else [])
        return Candidate(
            spec.offset_mm,
            spec.shift_mm,
            spec.freeze_s,
            res,
            prof,
            safety,
            margin,
            trajs[0] if trajs else None,
            spec.gas,
            spec.tip_c,
            spec.devices[0],
            spec=spec,
            trajectories=trajs,
            target_lethal=float((t <= -40.0).mean()) if t.size else 0.0,
            target_neurotmesis=float((t <= injury.NEUROTMESIS_C).mean()) if t.size else 0.0,
            policy=policy,
            boundary_heat_j=dict(res.boundary_heat_j),
        )


def probe_model_for(gas: str, model_name: str = PROBE_MODEL):
    """The catalogue probe run with ``gas`` (its default supply pressure when not its own gas)."""

    m = probe_physics.get_probe_model(model_name)
    if probe_physics.canonical_gas(gas).name != m.gas:
        m = replace(m, gas=probe_physics.canonical_gas(gas).name, supply_bar=None, status="scaled")
    return m


def device_for(gas: str, model_name: str = PROBE_MODEL, tip_offset_c: float = 0.0):
    """The DeviceDrive of the planner's probe with ``gas`` (``tip_offset_c`` warms its gas)."""

    dev = probe_physics.device_drive(probe_model_for(gas, model_name), name="probe 1")
    return (
        replace(dev, gas_temperature_c=dev.gas_temperature_c + max(tip_offset_c, 0.0))
        if tip_offset_c
        else dev
    )


def relief_for(
    phantom: PatientAnatomy,
    profile: injury.NerveInjuryProfile,
    procedure_date: dt.date | None = None,
) -> dict:
    """Relief (regrowth from the lesion's proximal edge; the mechanism by the neuroma type) and
    what published series observed (:func:`cryoneuro.regrowth.relief_summary`); {} without a
    block."""
    if profile.lesion_proximal_end_mm is None:
        return {}
    dist = regrowth.distance_along_centreline(
        phantom.centreline_mm, profile.lesion_proximal_end_mm, phantom.end_organ_mm
    )
    return regrowth.relief_summary(
        max(dist, 0.1), getattr(phantom, "neuroma_type", "morton"), procedure_date
    )


@dataclass
class _Centreline:
    """The part of a phantom a screening task needs (keeps what goes to a Dask worker small)."""

    centreline_mm: np.ndarray
    block_proximal_to_mm: float | None = None


def _screen_task(
    level: Level, centreline_mm: np.ndarray, spec, block_proximal_to_mm=None, policy=None
) -> Candidate:
    """One screening simulation on a Dask worker: one Numba thread (one core per worker, as in
    :func:`cryoneuro.sweep.run_sample`); the thermal result stays on the worker (only the
    verdict comes back), the trajectory is attached by the caller."""
    import numba

    numba.set_num_threads(1)
    cand = level.evaluate(
        _Centreline(centreline_mm, block_proximal_to_mm), spec, None, policy or POLICY
    )
    cand.result = None
    return cand


def _screen(
    coarse: Level, phantom: PatientAnatomy, specs: list, client, progress, total: int, policy=None
) -> list:
    """Screen every candidate on the coarse level, in process or through a Dask client.

    Each candidate is an independent deterministic simulation (the stencil has no reductions
    across cells), so the verdicts do not depend on where or in which order they ran.
    """
    policy = policy or POLICY
    screened = []
    if client is None:
        for n, (spec, traj) in enumerate(specs, start=1):
            screened.append((coarse.evaluate(phantom, spec, traj, policy), spec, traj))
            if progress:
                progress(n / total, f"screening {n}/{len(specs)} ({coarse.grid.voxel_mm:g} mm)")
        return screened
    import uuid

    from dask.distributed import as_completed

    token = uuid.uuid4().hex[:12]
    [level_f] = client.scatter([coarse], broadcast=True)
    futures = {
        client.submit(
            _screen_task,
            level_f,
            phantom.centreline_mm,
            spec,
            getattr(phantom, "block_proximal_to_mm", None),
            policy,
            key=f"screen-{token}-{i}",
            retries=2,
            pure=False,
        ): i
        for i, (spec, _) in enumerate(specs)
    }
    done: dict[int, Candidate] = {}
    for n, fut in enumerate(as_completed(futures), start=1):
        i = futures[fut]
        done[i] = fut.result()
        done[i].trajectories = list(specs[i][1])
        done[i].trajectory = specs[i][1][0]
        if progress:
            progress(n / total, f"screening {n}/{len(specs)} (1 mm, Dask)")
    return [(done[i], spec, traj) for i, (spec, traj) in enumerate(specs)]


#: Screening grid (mm) and how many of the best screened candidates are confirmed at 0.5 mm.
SCREEN_VOXEL_MM = 1.0
CONFIRM_VOXEL_MM = 0.5
CONFIRM_TOP = 3
#: Step control of the screening runs: the looser front target of the low-fidelity runs
#: (thermal.solver.LOW_FIDELITY_FRONT_TARGET; docs/thermal.md "Step control": isotherms within
#: 0.02 mm of the default's, the minimum field up to ~12 K colder right at the front). Screening
#: only ranks candidates; every verdict comes from the confirmation at the default target.
SCREEN_FRONT_TARGET = LOW_FIDELITY_FRONT_TARGET
#: Default ranking policy (search.POLICIES).
POLICY = "reversible-block"
SEARCHES = ("continuous", "grid")


class _Builder:
    """Turns a search point (or a grid point) into a Spec and its checked trajectories."""

    def __init__(self, phantom, anat, target, preset, drive: str, n_probes: int):
        # needle paths are always checked on the region's own grid (0.5 mm for the phantoms):
        # a coarse grid can lose a 1 mm skin layer and refuse a path that enters through skin
        self.phantom, self.target = phantom, np.asarray(target, float)
        self.lab, self.grid = anat.labels, anat.grid()
        self.preset = preset
        self.model = probe_physics.get_probe_model(preset.device)
        self.n_probes = n_probes
        names = anat.label_names
        self.names = names
        self.avoid = {
            "bone": [names[v] for v in phantom.bone_labels],
            "artery": [names[v] for v in phantom.artery_labels],
        }
        self.skin = names[phantom.skin_label]
        lo, hi = anat.bounds_mm()
        self.lo, self.hi = np.asarray(lo, float), np.asarray(hi, float)
        gases = sorted({g for g, _ in preset.options})
        self.tips = {g: probe_physics.tip_state(g).tip_temperature_c for g in gases}
        self.drive = drive

    def devices(self, gas: str) -> list:
        if self.drive != "device":
            return [None] * self.n_probes
        return [
            replace(device_for(gas, self.preset.device), name=f"probe {k + 1}")
            for k in range(self.n_probes)
        ]

    def build(self, direction, centres, option: int, *, offset=0.0, shift=0.0, describe=None):
        """(Spec, trajectories) or (None, reason) when a needle path is refused."""
        gas, freeze = self.preset.options[option]
        direction = np.asarray(direction, float)
        geoms, trajs, entries = [], [], []
        for k, c in enumerate(centres):
            try:
                entry = search.entry_point(np.asarray(c, float), direction, self.lo, self.hi)
                tip = tip_for_target(entry, c, self.model.active_length_mm)
                traj = assess_trajectory(
                    entry,
                    tip,
                    self.lab,
                    self.grid,
                    self.names,
                    skin=self.skin,
                    avoid=self.avoid,
                )
            except GeometryError as exc:
                return None, str(exc)
            if not traj.ok:
                return None, traj.violations[0]
            geoms.append(
                ProbeGeometry(
                    tuple(tip),
                    tuple(direction),
                    self.model.diameter_mm,
                    self.model.active_length_mm,
                    name=f"probe {k + 1}",
                )
            )
            trajs.append(traj)
            entries.append(entry)
        spec = Spec(
            gas,
            self.tips[gas],
            freeze,
            self.preset.phases(freeze),
            geoms,
            self.devices(gas),
            entries,
            offset,
            shift,
            describe or {},
        )
        return spec, trajs


def plan(
    anatomy: PatientAnatomy,
    *,
    gases=GASES,
    offsets_mm=None,
    shifts_mm=None,
    freezes_s=FREEZE_S,
    procedure_date: dt.date | None = None,
    progress: Callable[[float, str], None] | None = None,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    drive: str = DRIVE,
    protocol: str | None = None,
    search_method: str | None = None,
    approach: str | search.Approach | None = None,
    n_probes: int = 1,
    policy: str = POLICY,
    boundaries: Boundaries | None = None,
    screen_voxel_mm: float = SCREEN_VOXEL_MM,
    confirm_voxel_mm: float = CONFIRM_VOXEL_MM,
    confirm_top: int = CONFIRM_TOP,
    n_sobol: int = search.N_SOBOL,
    n_local: int = search.N_LOCAL,
    seed: int = 0,
    skin_protection: str = SKIN_PROTECTION,
) -> Plan:
    """Plan the cryoablation of the anatomy's neuroma; compute only, write nothing.

    Returns the :class:`~cryoneuro.planning.plan.Plan` with the confirmed simulation attached
    (for :meth:`Plan.plot <cryoneuro.planning.plan.Plan.plot>` and :func:`write_plan`, which
    writes ``plan.json``, the report, figures and volumes). ``files`` stays empty until
    :func:`write_plan` runs.

    ``search_method``: ``"continuous"`` (the default, unless grid ``offsets_mm`` or
    ``shifts_mm`` are given: they ask for the grid) searches direction, aim point, depth and
    protocol option within ``approach`` (a name of :data:`search.NAMED_APPROACHES`, "top", or an
    :class:`~cryoneuro.planning.search.Approach`; default "top" with the needle tilted up to
    30°) with ``n_sobol`` Sobol points and ``n_local`` Nelder–Mead steps; ``"grid"`` is the
    original vertical grid (``offsets_mm`` × ``shifts_mm`` × the protocol's options).
    ``protocol``: a preset name (:mod:`cryoneuro.planning.protocols`); None runs ``gases`` ×
    ``freezes_s`` as two freeze–thaw cycles on the 17G sphere-class probe (the original
    planner). ``n_probes``: 1 or 2 (parallel needles). ``policy``: "reversible-block" or
    "neuroma-ablation". ``boundaries``: skin and artery treatment (:class:`Boundaries`; default
    convective skin, flowing arteries). ``skin_protection``: "if-needed" (default) re-confirms
    the confirmed candidates, best first, with warm saline on the skin when the best blocking
    plan freezes the convective skin, and keeps the first that is feasible (``inputs
    ["skin_protection"]`` records what was tried, how many and why); "never" does not.

    Every candidate is screened on a ``screen_voxel_mm`` grid, the best ``confirm_top`` are
    re-simulated at ``confirm_voxel_mm``, and the choice is made on the confirmed results only.
    A grid search may be screened through Dask (``client``, ``scheduler`` or ``workers``); the
    continuous search runs in process (each step depends on the last).
    """
    from cryoneuro.planning import protocols as presets

    phantom = anatomy
    if drive not in ("device", "held"):
        raise GeometryError(f"drive must be 'device' or 'held' (got '{drive}')")
    grid_given = offsets_mm is not None or shifts_mm is not None
    if search_method is None:
        search_method = "grid" if grid_given else "continuous"
    if search_method == "continuous" and grid_given:
        raise GeometryError(
            "offsets_mm and shifts_mm are grid settings; leave them out for the continuous "
            "search or set search_method='grid'"
        )
    offsets_mm = OFFSETS_MM if offsets_mm is None else offsets_mm
    shifts_mm = SHIFTS_MM if shifts_mm is None else shifts_mm
    if search_method not in SEARCHES:
        raise GeometryError(f"search must be one of {SEARCHES} (got '{search_method}')")
    if n_probes not in (1, 2):
        raise GeometryError(f"n_probes must be 1 or 2 (got {n_probes})")
    if policy not in search.POLICIES:
        raise GeometryError(f"policy must be one of {search.POLICIES} (got '{policy}')")
    boundaries = boundaries or Boundaries()
    if skin_protection not in SKIN_PROTECTION_OPTIONS:
        raise GeometryError(
            f"skin_protection must be one of {SKIN_PROTECTION_OPTIONS} (got '{skin_protection}')"
        )
    if client is None and (scheduler or workers) and search_method == "grid":
        from cryoneuro.parallel import dask_client

        with dask_client(scheduler=scheduler, workers=workers or 2) as own:
            return plan(
                phantom,
                gases=gases,
                offsets_mm=offsets_mm,
                shifts_mm=shifts_mm,
                freezes_s=freezes_s,
                procedure_date=procedure_date,
                progress=progress,
                client=own,
                drive=drive,
                protocol=protocol,
                search_method=search_method,
                approach=approach,
                n_probes=n_probes,
                policy=policy,
                boundaries=boundaries,
                screen_voxel_mm=screen_voxel_mm,
                confirm_voxel_mm=confirm_voxel_mm,
                confirm_top=confirm_top,
                skin_protection=skin_protection,
            )
    preset = (
        presets.get_preset(protocol)
        if protocol
        else presets.custom_preset(gases, freezes_s, device=PROBE_MODEL, thaw_s=THAW_S)
    )
    if protocol is None:
        preset = replace(preset, name="planner-double-freeze (gases × freezes given)")
    appr = search.approach_for(phantom.name, approach)
    if search_method == "continuous" and approach is None:
        appr = replace(appr, name="top, tilted up to 30°", max_tilt_deg=30.0)

    anat, target = region_of_interest(phantom)
    bounds = anat.bounds_mm()
    fine = Level(phantom, anat, confirm_voxel_mm, bounds, boundaries)
    coarse = Level(
        phantom, anat, screen_voxel_mm, bounds, boundaries, front_target=SCREEN_FRONT_TARGET
    )
    builder = _Builder(phantom, anat, target, preset, drive, n_probes)
    refused: list[str] = []
    if search_method == "grid":
        specs = []
        for offset, shift in search.grid_points(offsets_mm, shifts_mm):
            aim = target + np.array([offset, 0.0, 0.0])
            d = np.asarray(appr.axis)
            for option in range(len(preset.options)):
                centres = [aim + shift * d]
                if n_probes == 2:
                    sep = np.cross(d, [0.0, 1.0, 0.0])
                    sep = (
                        sep / np.linalg.norm(sep) if np.linalg.norm(sep) else np.array([1.0, 0, 0])
                    )
                    centres = [centres[0] - 4.0 * sep, centres[0] + 4.0 * sep]
                spec, trajs = builder.build(
                    d,
                    centres,
                    option,
                    offset=offset,
                    shift=shift,
                    describe={"search": "grid", "offset_mm": offset, "shift_mm": shift},
                )
                if spec is None:
                    refused.append(trajs)
                    continue
                specs.append((spec, trajs))
        if not specs:
            raise GeometryError(
                f"{phantom.name}: every candidate needle path is refused ({refused[0]})"
            )
        total = len(specs) + min(confirm_top, len(specs))
        screened = _screen(coarse, phantom, specs, client, progress, total, policy)
        evaluations = [
            search.Evaluation(np.zeros(0), c.score(), c, spec, trajs) for c, spec, trajs in screened
        ]
    else:
        layout = search.Layout(
            appr,
            n_probes,
            len(preset.options),
            shift_mm=search.shift_range_mm(builder.model.active_length_mm),
        )
        budget = 1 + n_sobol + n_local

        def evaluate(x):
            dec = layout.decode(x, target)
            spec, trajs = builder.build(
                dec["direction"],
                dec["centres"],
                dec["option"],
                offset=dec["offset_mm"],
                shift=dec["shift_mm"],
                describe={
                    "search": "continuous",
                    "approach": appr.name,
                    "tilt_deg": round(dec["tilt_deg"], 2),
                    "direction": [round(float(v), 4) for v in dec["direction"]],
                    "spacing_mm": round(dec["spacing_mm"], 2),
                    "x": [round(float(v), 4) for v in x],
                },
            )
            if spec is None:
                refused.append(trajs)
                return search.Evaluation(np.asarray(x), search.REFUSED, None, None, [], trajs)
            cand = coarse.evaluate(phantom, spec, trajs, policy)
            cand.result = None  # keep memory small: only the confirmed results are kept
            return search.Evaluation(np.asarray(x), cand.score(), cand, spec, trajs)

        def report(n, ev):
            if progress:
                progress(
                    min(n / (budget + confirm_top), 0.99),
                    f"search {n}/{budget} ({coarse.grid.voxel_mm:g} mm)",
                )

        evaluations = search.continuous_search(
            evaluate, layout.dim, n_sobol=n_sobol, n_local=n_local, seed=seed, progress=report
        )
    simulated = [e for e in evaluations if e.candidate is not None]
    if not simulated:
        raise GeometryError(
            f"{phantom.name}: every needle path the search tried was refused "
            f"({refused[0] if refused else 'no candidate'}); choose another approach"
        )
    simulated.sort(key=lambda e: e.score, reverse=True)
    confirmed = []
    for n, ev in enumerate(simulated[:confirm_top], start=1):
        confirmed.append(fine.evaluate(phantom, ev.spec, ev.trajectories, policy))
        if progress:
            progress(
                0.99, f"confirming {n}/{min(confirm_top, len(simulated))} ({confirm_voxel_mm:g} mm)"
            )
    best = max(confirmed, key=Candidate.score)
    protection: dict = {"rule": skin_protection, "applied": False}
    if (
        skin_protection == "if-needed"
        and boundaries.skin == "convective"
        and best.profile.complete_block
        and not best.skin_margin_c > 0
    ):
        saline = replace(boundaries, skin="warm-saline")
        fine_saline = Level(phantom, anat, confirm_voxel_mm, bounds, saline)
        if progress:
            progress(0.99, "skin protection: re-confirming with warm saline")
        # in the order of the unprotected ranking, until one is feasible with saline: the
        # first feasible is the plan (each re-confirmation costs a 0.5 mm run, ~1.6 s; the
        # demo's best is protected by the first one — issue 17 item 4)
        protected = []
        for c in sorted(confirmed, key=Candidate.score, reverse=True):
            protected.append(fine_saline.evaluate(phantom, c.spec, c.paths, policy))
            if protected[-1].feasible:
                break
        best_saline = (
            protected[-1] if protected[-1].feasible else max(protected, key=Candidate.score)
        )
        protection.update(
            tried="warm-saline",
            unprotected_skin_min_c=round(float(best.skin_margin_c), 2),
            protected_skin_min_c=round(float(best_saline.skin_margin_c), 2),
            protected_block=bool(best_saline.profile.complete_block),
            re_confirmed=len(protected),
            protected_scores=[round(c.score(), 3) for c in protected],
        )
        if best_saline.feasible:
            protection["applied"] = True
            best, fine, boundaries = best_saline, fine_saline, saline
    context = {
        "protocol_preset": preset.describe(),
        "search": {
            "method": search_method,
            "approach": appr.describe(),
            "n_probes": n_probes,
            "policy": policy,
            "screen_voxel_mm": screen_voxel_mm,
            "confirm_voxel_mm": confirm_voxel_mm,
            "evaluations": len(evaluations),
            "simulated": len(simulated),
            "refused": len(refused),
            "best_screened_score": round(simulated[0].score, 3),
            "confirmed_scores": [round(c.score(), 3) for c in confirmed],
            "chosen": best.spec.describe if best.spec else {},
        },
        "boundaries": boundaries.as_dict(),
        "skin_protection": protection,
        "vessel": fine.vessel_info,
    }
    return _assemble(
        phantom,
        fine.anat,
        best,
        [e.candidate for e in simulated],
        fine.target,
        fine.anat.label_names,
        fine.lab,
        best.tip_c,
        None,  # write nothing: write_plan does
        procedure_date,
        fine.structures,
        context=context,
        level=fine,
    )


def _assemble(
    phantom,
    anat,
    best: Candidate,
    candidates,
    target_mask,
    names,
    lab,
    tip_c,
    out: Path | None,
    procedure_date,
    structures,
    *,
    context: dict | None = None,
    level: Level | None = None,
) -> Plan:
    """The Plan of the chosen candidate, with its simulation attached; written to ``out`` by
    :func:`write_plan` when a folder is given (None: computed only)."""
    from cryoneuro.planning import warnings as plan_warnings

    context = context or {}
    res = best.result
    grid = res.grid
    cov = injury.target_coverage(res.min_temperature_c, grid, target_mask & res.tissue_mask)
    structures = {k: m & res.tissue_mask for k, m in structures.items()}
    reasons = []
    if not best.profile.complete_block:
        reasons.append(
            "no candidate freezes the whole nerve cross-section to the axonotmesis threshold "
            f"({injury.NEURAPRAXIA_C:g} °C)"
        )
    if best.profile.complete_block and not best.skin_margin_c > 0:
        tried = (context.get("skin_protection") or {}).get("tried")
        if tried:
            saline = context["skin_protection"]
            reasons.append(
                f"the skin reaches {best.skin_margin_c:.1f} °C (limit 0 °C) with the best iceball "
                f"that blocks the nerve, and {saline['protected_skin_min_c']:.1f} °C with warm "
                "saline on the skin: change the approach or the protocol"
            )
        else:
            reasons.append(
                f"the skin reaches {best.skin_margin_c:.1f} °C (limit 0 °C) with the best "
                "iceball that blocks the nerve: protect the skin (warm saline) or change the "
                "approach"
            )
    relief = relief_for(phantom, best.profile, procedure_date)
    paths = best.paths
    overlay_structures = {
        "nerve": np.isin(lab, [phantom.nerve_label]),
        "target": target_mask,
        **structures,
    }
    boundaries = level.boundaries if level is not None else LEGACY_BOUNDARIES
    vessel_info = dict(context.get("vessel") or {})
    if level is not None:
        warn = plan_warnings.plan_warnings(
            best,
            level,
            boundaries=boundaries,
            vessel_info=vessel_info,
            trajectories=paths,
            protection=context.get("skin_protection"),
        )
        drop = plan_warnings.blood_temperature_drop(best, vessel_info)
        if drop is not None:
            vessel_info["blood_temperature_drop_c"] = round(drop, 3)
    else:
        warn = injury.warnings(best.safety) + [w for t in paths for w in t.warnings]
    from cryoneuro.thermal.summary import probe_summary

    probe_states = probe_summary(res)
    preset_device = (context.get("protocol_preset") or {}).get("device", PROBE_MODEL)
    model_used = probe_model_for(best.gas, preset_device)
    if best.device is not None:
        perfused = any(m.perfusion > 0 for m in res.model.materials)
        tag = plan_warnings.RULES["device-model"].tag()
        warn += [
            f"device model: {w} {tag}"
            for w in probe_physics.validity_warnings(
                model_used,
                freeze_s=[p.duration_s for p in res.phases if p.kind == "freeze"],
                perfused=perfused,
                medium="tissue",
            )
        ]
    else:
        warn.append(
            "probe wall held at the gas's no-load boiling point: the coldest possible probe; "
            "this overestimates the iceball (docs/validation.md)"
        )
    plan = Plan(
        case=phantom.name,
        inputs={
            "phantom": phantom.name,
            "notes": phantom.notes,
            **({"case": phantom.record} if getattr(phantom, "record", None) else {}),
            "voxel_mm": grid.voxel_mm,
            "grid_shape": list(grid.shape),
            "tip_temperature_c": tip_c,
            "drive": "held" if best.device is None else "device",
            "device": model_used.name,
            **{k: v for k, v in context.items() if k != "vessel"},
            "vessel": vessel_info,
            "boundary_heat_j": {k: round(v, 3) for k, v in best.boundary_heat_j.items()},
            "screened_at_1mm": [
                {
                    "gas": c.gas,
                    "offset_mm": c.offset_mm,
                    "shift_mm": c.shift_mm,
                    "freeze_s": c.freeze_s,
                    "complete_block": c.profile.complete_block,
                    "neurotmesis_risk": c.profile.neurotmesis_risk,
                    "skin_margin_c": round(float(c.skin_margin_c), 2),
                    "score": round(c.score(), 3),
                    **({"tilt_deg": c.spec.describe.get("tilt_deg")} if c.spec else {}),
                }
                for c in candidates
            ],
        },
        probes=[
            ProbePlacement(
                name=probe.name,
                tip_mm=tuple(float(v) for v in probe.tip_mm),
                direction=tuple(float(v) for v in probe.unit),
                diameter_mm=probe.diameter_mm,
                active_length_mm=probe.active_length_mm,
                tip_temperature_c=tip_c,
                gas=best.gas,
                device=model_used.name if best.device is not None else None,
                drive="held" if best.device is None else "device",
                wall_temperature_end_c=state["wall_temperature_end_of_freeze_c"],
                mean_cooling_w=round(state["mean_cooling_during_freezes_w"], 3),
            )
            for probe, state in zip(res.model.probes, probe_states, strict=True)
        ],
        protocol=[
            ProtocolPhase(kind=p.kind, duration_s=p.duration_s, temperature_c=p.temperature_c)
            for p in res.phases
        ],
        trajectories=[
            TrajectorySummary(**{k: getattr(t, k) for k in TrajectorySummary.model_fields})
            for t in paths
        ],
        isotherms={k: Isotherm(**v) for k, v in isotherms(res, [0, -20, -40]).items()},
        min_tissue_temperature_c=float(np.nanmin(res.min_temperature_c[res.tissue_mask])),
        nerve=best.profile.summary(),
        coverage={
            "target_volume_ml": cov.volume_ml,
            **{f"fraction_at_or_below_{k:g}_c": v for k, v in cov.fractions.items()},
            "fraction_at_or_below_neurotmesis_c": best.target_neurotmesis,
            "min_temperature_c": cov.min_c,
            "max_temperature_c": cov.max_c,
        },
        safety=[
            {
                "structure": s.name,
                "min_temperature_c": s.min_c,
                "limit_c": s.limit_c,
                "margin_c": s.margin_c,
                "distance_from_0c_mm": s.distance_mm.get(0.0),
                "distance_from_-20c_mm": s.distance_mm.get(-20.0),
                **(
                    {
                        "state": plan_warnings.freezing_state(
                            s.min_c,
                            *plan_warnings.mushy_range(level, structures.get(s.name, lab < 0)),
                        )
                    }
                    if level is not None
                    else {}
                ),
            }
            for s in best.safety
        ],
        relief=relief,
        feasible=not reasons,
        reasons=reasons,
        warnings=warn,
    )
    plan._artifacts = PlanArtifacts(
        result=res,
        image=anat.image,
        structures=overlay_structures,
        title=f"{phantom.name}: planned iceball (minimum temperature)",
        nerve_profile=best.profile,
    )
    if out is not None:
        write_plan(plan, out)
    return plan


def write_plan(plan: Plan, out_dir: str | Path) -> Plan:
    """Write a computed plan: ``plan.json``, the report (HTML, PDF), its figures, the NIfTI
    volumes and the bundle; see :func:`cryoneuro.planning.writing.write_plan`."""
    from cryoneuro.planning.writing import write_plan as _write_plan

    return _write_plan(plan, out_dir)


def plan_phantom(anatomy: PatientAnatomy, out_dir: str | Path, **options: Any) -> Plan:
    """Plan and write: :func:`plan` then :func:`write_plan` (``out_dir``); the options are
    :func:`plan`'s. Kept for the callers written before the two were separated."""
    return write_plan(plan(anatomy, **options), out_dir)
