"""Plan a cryoablation on a labelled anatomy, end to end.

anatomy → region of interest → candidate placements (needle along the approach, active part
shifted along it, freeze durations) → full 3D simulation of each → nerve block, target coverage
and adjacent-structure safety → the best feasible candidate → relief prediction, trajectory
check, pictures, Plan and report.

Choice rule: a candidate is feasible when the whole nerve cross-section reaches the
axonotmesis threshold somewhere (complete block) and the skin stays above 0 °C; among feasible
candidates the one with the largest skin margin wins (ties: shorter freeze). If none is
feasible the plan says so and why, and keeps the candidate that came closest.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cryoneuro import injury, regrowth
from cryoneuro import probe as probe_physics
from cryoneuro.anatomy.phantoms import Phantom
from cryoneuro.errors import GeometryError
from cryoneuro.planning.plan import Isotherm, Plan, ProbePlacement, ProtocolPhase, TrajectorySummary
from cryoneuro.planning.trajectory import assess_trajectory, tip_for_target
from cryoneuro.thermal import Phase, ProbeGeometry, ThermalModel, constant, simulate
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
    device: object = None  # the DeviceDrive, or None for a held wall

    @property
    def feasible(self) -> bool:
        return self.profile.complete_block and self.skin_margin_c > 0 and self.trajectory.ok

    def rank(self) -> tuple:
        """Feasible first; then no neurotmesis risk, the largest skin margin, the shortest
        freeze."""
        return (
            self.feasible,
            not self.profile.neurotmesis_risk,
            self.profile.complete_block,
            min(self.skin_margin_c, 50.0),
            -self.freeze_s,
        )


def region_of_interest(phantom: Phantom, half_mm: float = 14.0):
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
    """The planned protocol: freeze, passive thaw, freeze (two freeze–thaw cycles)."""
    return [Phase("freeze", freeze_s), Phase("thaw-passive", thaw_s), Phase("freeze", freeze_s)]


class Level:
    """The anatomy on one grid (screening at 1 mm, confirmation at 0.5 mm) and its masks.

    Picklable (arrays and dataclasses only), so a Dask worker can evaluate candidates on it.
    """

    def __init__(self, phantom: Phantom, anat, voxel_mm: float, bounds):
        if (
            tuple(anat.spacing_mm) != (voxel_mm,) * 3
        ):  # the region of interest may already be on this grid
            anat = anat.resample_to(voxel_mm, bounds)
        self.anat = anat
        self.grid, self.labels, self.materials = anat.to_model_inputs(
            {**phantom.tissue_map, "background": "air"}
        )
        lab = anat.labels
        self.lab = lab
        self.nerve = np.isin(lab, [phantom.nerve_label, phantom.neuroma_label])
        self.target = lab == phantom.neuroma_label
        self.structures = {
            "skin": lab == phantom.skin_label,
            "artery": np.isin(lab, phantom.artery_labels),
            "bone": np.isin(lab, phantom.bone_labels),
        }

    def model(
        self, geometry: ProbeGeometry, tip_c: float, materials=None, device=None
    ) -> ThermalModel:
        """The thermal model of one probe placement (``materials`` overrides the tissue table;
        ``device``: a DeviceDrive that replaces the held temperature)."""
        return ThermalModel(
            self.grid,
            self.labels,
            list(materials or self.materials),
            [geometry],
            [constant(tip_c)],
            probe_devices=None if device is None else [device],
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
            tissue_mask=tissue,
            block_proximal_to_mm=block_proximal_to_mm,
        )
        safety = injury.structure_safety(
            res.min_temperature_c, self.grid, {k: m & tissue for k, m in self.structures.items()}
        )
        skin = next((x for x in safety if x.name == "skin"), None)
        return prof, safety, skin.margin_c if skin else np.inf

    def evaluate(self, phantom, spec: tuple, traj) -> Candidate:
        offset, shift, gas, tip_c, freeze, geometry, device = spec
        res = simulate(self.model(geometry, tip_c, device=device), protocol(freeze))
        prof, safety, margin = self.judge(
            res, phantom.centreline_mm, getattr(phantom, "block_proximal_to_mm", None)
        )
        return Candidate(offset, shift, freeze, res, prof, safety, margin, traj, gas, tip_c, device)


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
    phantom: Phantom, profile: injury.NerveInjuryProfile, procedure_date: dt.date | None = None
) -> dict:
    """Relief (regrowth from the lesion's proximal edge; the mechanism by the neuroma type) and
    what published series observed (:func:`cryoneuro.regrowth.relief_summary`), or {} without a
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
    level: Level, centreline_mm: np.ndarray, spec: tuple, block_proximal_to_mm=None
) -> Candidate:
    """One screening simulation on a Dask worker: one Numba thread (one core per worker, as in
    :func:`cryoneuro.sweep.run_sample`); the thermal result stays on the worker (only the
    verdict comes back), the trajectory is attached by the caller."""
    import numba

    numba.set_num_threads(1)
    cand = level.evaluate(_Centreline(centreline_mm, block_proximal_to_mm), spec, None)
    cand.result = None
    return cand


def _screen(coarse: Level, phantom: Phantom, specs: list, client, progress, total: int) -> list:
    """Screen every candidate on the coarse level, in process or through a Dask client.

    Each candidate is an independent deterministic simulation (the stencil has no reductions
    across cells), so the verdicts do not depend on where or in which order they ran.
    """
    screened = []
    if client is None:
        for n, (spec, traj) in enumerate(specs, start=1):
            screened.append((coarse.evaluate(phantom, spec, traj), spec, traj))
            if progress:
                progress(n / total, f"screening {n}/{len(specs)} (1 mm)")
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
        done[i].trajectory = specs[i][1]
        if progress:
            progress(n / total, f"screening {n}/{len(specs)} (1 mm, Dask)")
    return [(done[i], spec, traj) for i, (spec, traj) in enumerate(specs)]


#: Screening grid (mm) and how many of the best screened candidates are confirmed at 0.5 mm.
SCREEN_VOXEL_MM = 1.0
CONFIRM_TOP = 3


def plan_phantom(
    phantom: Phantom,
    out_dir: str | Path,
    *,
    gases=GASES,
    offsets_mm=OFFSETS_MM,
    shifts_mm=SHIFTS_MM,
    freezes_s=FREEZE_S,
    procedure_date: dt.date | None = None,
    progress: Callable[[float, str], None] | None = None,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    drive: str = DRIVE,
) -> Plan:
    """Plan the phantom's neuroma with a vertical (dorsal) approach.

    Every candidate is screened on a 1 mm grid (a reduced model: ~8x fewer voxels and 4x longer
    steps), the best ``CONFIRM_TOP`` are re-simulated at 0.5 mm, and the choice is made on the
    confirmed results only.

    Screening runs in process by default; with a Dask ``client``, a ``scheduler`` address, or
    ``workers`` (a local cluster of that many single-threaded workers) the candidates are
    screened in parallel there. The Plan is the same either way (only ``created_at`` differs).

    ``drive="device"`` (default) drives the probe by the device energy balance of
    :data:`PROBE_MODEL` run with each gas; ``"held"`` holds it at the gas's boiling point.
    """
    if drive not in ("device", "held"):
        raise GeometryError(f"drive must be 'device' or 'held' (got '{drive}')")
    if client is None and (scheduler or workers):
        from cryoneuro.parallel import dask_client

        with dask_client(scheduler=scheduler, workers=workers or 2) as own:
            return plan_phantom(
                phantom,
                out_dir,
                gases=gases,
                offsets_mm=offsets_mm,
                shifts_mm=shifts_mm,
                freezes_s=freezes_s,
                procedure_date=procedure_date,
                progress=progress,
                client=own,
                drive=drive,
            )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    anat, target = region_of_interest(phantom)
    bounds = anat.bounds_mm()
    fine = Level(phantom, anat, 0.5, bounds)
    coarse = Level(phantom, anat, SCREEN_VOXEL_MM, bounds)
    names = fine.anat.label_names
    tips = {g: probe_physics.tip_state(g).tip_temperature_c for g in gases}
    devices = {g: device_for(g) if drive == "device" else None for g in gases}
    top = fine.grid.origin_mm[2] + fine.grid.size_mm[2] - 0.25
    avoid = {
        "bone": [names[v] for v in phantom.bone_labels],
        "artery": [names[v] for v in phantom.artery_labels],
    }
    specs = []
    for offset in offsets_mm:
        aim = target + np.array([offset, 0.0, 0.0])
        entry = np.array([aim[0], aim[1], top])
        direction = (entry - aim) / np.linalg.norm(entry - aim)  # tip -> handle
        for shift in shifts_mm:
            tip = tip_for_target(entry, aim + shift * direction, ACTIVE_LENGTH_MM)
            traj = assess_trajectory(
                entry, tip, fine.lab, fine.grid, names, skin=names[phantom.skin_label], avoid=avoid
            )
            if not traj.ok:
                continue  # the needle cannot go there: no need to simulate it
            geometry = ProbeGeometry(
                tuple(tip), tuple(direction), PROBE_DIAMETER_MM, ACTIVE_LENGTH_MM, name="probe 1"
            )
            specs += [
                ((offset, shift, g, t, f, geometry, devices[g]), traj)
                for g, t in tips.items()
                for f in freezes_s
            ]
    if not specs:
        raise GeometryError(
            f"{phantom.name}: every candidate needle path crosses bone or an artery"
        )
    total = len(specs) + min(CONFIRM_TOP, len(specs))
    screened = _screen(coarse, phantom, specs, client, progress, total)
    screened.sort(key=lambda item: item[0].rank(), reverse=True)
    confirmed = []
    for n, (_, spec, traj) in enumerate(screened[:CONFIRM_TOP], start=1):
        confirmed.append(fine.evaluate(phantom, spec, traj))
        if progress:
            progress(
                (len(specs) + n) / total, f"confirming {n}/{min(CONFIRM_TOP, len(specs))} (0.5 mm)"
            )
    best = max(confirmed, key=Candidate.rank)
    return _assemble(
        phantom,
        fine.anat,
        best,
        [c for c, _, _ in screened],
        fine.target,
        names,
        fine.lab,
        best.tip_c,
        out,
        procedure_date,
        fine.structures,
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
    out: Path,
    procedure_date,
    structures,
) -> Plan:
    from cryoneuro.planning.figures import plot_plan_overlays
    from cryoneuro.planning.report import REPORT_HTML, REPORT_PDF, write_report

    res = best.result
    grid = res.grid
    probe = res.model.probes[0]
    cov = injury.target_coverage(res.min_temperature_c, grid, target_mask & res.tissue_mask)
    structures = {k: m & res.tissue_mask for k, m in structures.items()}
    reasons = []
    if not best.profile.complete_block:
        reasons.append(
            "no candidate freezes the whole nerve cross-section to the axonotmesis threshold "
            f"({injury.NEURAPRAXIA_C:g} °C)"
        )
    if best.profile.complete_block and not best.skin_margin_c > 0:
        reasons.append(
            f"the skin reaches {best.skin_margin_c:.1f} °C (limit 0 °C) with the smallest iceball "
            f"that blocks the nerve: protect the skin (warm saline) or change the approach"
        )
    relief = relief_for(phantom, best.profile, procedure_date)
    traj = best.trajectory
    overlay = plot_plan_overlays(
        res,
        anat.image,
        {"nerve": np.isin(lab, [phantom.nerve_label]), "target": target_mask, **structures},
        out / "plan_overlay.png",
        title=f"{phantom.name}: planned iceball (minimum temperature)",
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6), constrained_layout=True)
    best.profile.plot(ax=ax)
    fig.savefig(out / "nerve_profile.png", dpi=110)
    plt.close(fig)
    warn = injury.warnings(best.safety) + traj.warnings
    from cryoneuro.thermal.summary import probe_summary

    probe_state = probe_summary(res)[0]
    model_used = probe_model_for(best.gas)
    if best.device is not None:
        perfused = any(m.perfusion > 0 for m in res.model.materials)
        warn += [
            f"device model: {w}"
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
            "voxel_mm": grid.voxel_mm,
            "grid_shape": list(grid.shape),
            "tip_temperature_c": tip_c,
            "drive": "held" if best.device is None else "device",
            "device": model_used.name,
            "screened_at_1mm": [
                {
                    "gas": c.gas,
                    "offset_mm": c.offset_mm,
                    "shift_mm": c.shift_mm,
                    "freeze_s": c.freeze_s,
                    "complete_block": c.profile.complete_block,
                    "neurotmesis_risk": c.profile.neurotmesis_risk,
                    "skin_margin_c": round(float(c.skin_margin_c), 2),
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
                wall_temperature_end_c=probe_state["wall_temperature_end_of_freeze_c"],
                mean_cooling_w=round(probe_state["mean_cooling_during_freezes_w"], 3),
            )
        ],
        protocol=[
            ProtocolPhase(kind=p.kind, duration_s=p.duration_s, temperature_c=p.temperature_c)
            for p in res.phases
        ],
        trajectories=[
            TrajectorySummary(**{k: getattr(traj, k) for k in TrajectorySummary.model_fields})
        ],
        isotherms={k: Isotherm(**v) for k, v in isotherms(res, [0, -20, -40]).items()},
        min_tissue_temperature_c=float(np.nanmin(res.min_temperature_c[res.tissue_mask])),
        nerve=best.profile.summary(),
        coverage={
            "target_volume_ml": cov.volume_ml,
            **{f"fraction_at_or_below_{k:g}_c": v for k, v in cov.fractions.items()},
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
            }
            for s in best.safety
        ],
        relief=relief,
        feasible=not reasons,
        reasons=reasons,
        warnings=warn,
    )
    # the image and iceball as NIfTI for viewers (the registry's Niivue view), then one bundle
    from cryoneuro.planning.volumes import BUNDLE_NAME, bundle_plan, write_plan_volumes

    volumes = write_plan_volumes(out, anat.image, res.min_temperature_c, grid)
    plan.files = {
        "report_html": str(out / REPORT_HTML),
        "report_pdf": str(out / REPORT_PDF),
        "overlay": str(overlay),
        "nerve_profile": str(out / "nerve_profile.png"),
        **{name.removesuffix(".nii.gz"): str(path) for name, path in volumes.items()},
        "bundle": str(out / BUNDLE_NAME),
    }
    plan.save(out / "plan.json")
    write_report(plan, out, {"overlay": overlay, "nerve profile": out / "nerve_profile.png"})
    bundle_plan(out)
    return plan
