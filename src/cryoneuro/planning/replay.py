"""Replay a saved Plan: rebuild its thermal model and simulate it again, optionally perturbed.

Why: a plan is one deterministic prediction, but the needle lands within about a millimetre of
where it was aimed, the tip runs warmer than the boiling cryogen under heat load, and tissue
properties are uncertain (docs/domain-facts.md: perfusion, and everything below −40 °C). Replaying
the plan under sampled perturbations (:mod:`cryoneuro.sweep`) turns its verdict into probabilities;
replaying it unperturbed with the current software re-checks a stored plan
(:mod:`cryoneuro.cohort`).

Model rebuilt: phantom plans (``plan.inputs["phantom"]`` names a bundled phantom) are regenerated
with :mod:`cryoneuro.anatomy.phantoms` (seeded, so identical), cut to the same region of interest
and discretised by the same :class:`~cryoneuro.planning.pipeline.Level` as the planner, so an
unperturbed replay at 0.5 mm is the plan's own confirmation simulation. ``voxel_mm = 1.0`` is
the planner's screening grid: the fast *reduced* model (8× fewer voxels, 4× longer stable steps);
on the Morton demo plan it reproduces the block, no-neurotmesis and skin-safe verdicts, but the
warmest nerve section is 13 K warmer (−34.8 vs −47.6 °C), blocked length 7.25 vs 8.25 mm,
coverage at −20 °C 0.93 vs 0.98, skin minimum 5.2 vs 6.9 °C; over 200 perturbed samples the two
grids agree on the block verdict in 94 % and on skin safety in 90 %, disagreeing both ways
(docs/sweep.md): explore at 1 mm, report at 0.5 mm.

Perturbations (:class:`Perturbation`), with how each enters the model:

* ``tip_offset_mm`` — a rigid translation of every probe (targeting error; direction kept);
* ``tip_temperature_offset_c`` — added to each probe's surface temperature during freezes,
  clipped so it is never colder than the plan's tip (the recuperated probe's tip is the exhaust
  saturation temperature of its gas, the coldest a Joule–Thomson probe reaches;
  docs/domain-facts.md);
* ``perfusion_scale`` — Pennes ``ω_b ρ_b c_b`` of every tissue multiplied (not blood, whose
  "perfusion" is the lumped flow of a vessel lumen, and not air);
* ``conductivity_scale`` / ``frozen_conductivity_scale`` — ``k_unfrozen`` / ``k_frozen`` of every
  tissue multiplied (blood and air excepted, as above);
* ``freeze_scale`` — every freeze phase lengthened or shortened (thaws unchanged).

Metrics (:class:`ReplayMetrics`) follow the planner's rules (:mod:`cryoneuro.injury`): complete
block = the warmest point of some nerve cross-section ≤ −20 °C; neurotmesis risk = any nerve
point ≤ −100 °C; coverage = fraction of the target ≤ −20 / −40 °C; skin safe = skin minimum
> 0 °C; relief as :func:`cryoneuro.planning.pipeline.relief_for`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryoneuro import injury
from cryoneuro.errors import InputError
from cryoneuro.planning.plan import Plan

#: Grids a plan can be replayed on: 0.5 mm (the planner's confirmation grid) or 1.0 mm (its
#: screening grid, the fast reduced model).
VOXEL_CHOICES_MM = (0.5, 1.0)
#: Materials whose properties are not tissue properties and are never scaled.
UNSCALED_MATERIALS = ("blood", "air")


def _phantom_makers() -> dict[str, Any]:
    from cryoneuro.anatomy.phantoms import amputation_stump, morton_forefoot

    return {"morton_forefoot": morton_forefoot, "amputation_stump": amputation_stump}


@dataclass(frozen=True)
class Perturbation:
    """What differs from the plan in one replay (all zero / one = the plan itself)."""

    tip_offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tip_temperature_offset_c: float = 0.0
    perfusion_scale: float = 1.0
    conductivity_scale: float = 1.0
    frozen_conductivity_scale: float = 1.0
    freeze_scale: float = 1.0

    def __post_init__(self) -> None:
        if len(self.tip_offset_mm) != 3 or not all(math.isfinite(v) for v in self.tip_offset_mm):
            raise InputError(
                f"tip_offset_mm must be three finite numbers (got {self.tip_offset_mm})"
            )
        if not math.isfinite(self.tip_temperature_offset_c):
            raise InputError("tip_temperature_offset_c must be finite")
        for key in (
            "perfusion_scale",
            "conductivity_scale",
            "frozen_conductivity_scale",
            "freeze_scale",
        ):
            v = getattr(self, key)
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"{key} must be a positive number (got {v})")


@dataclass(frozen=True)
class ReplayMetrics:
    """What one replay predicts (°C, mm, days)."""

    complete_block: bool
    warmest_min_c: float
    coldest_min_c: float
    blocked_length_mm: float
    neurotmesis_risk: bool
    coverage_20: float  # fraction of the target at or below −20 °C
    coverage_40: float  # ... at or below −40 °C
    skin_min_c: float
    skin_safe: bool
    artery_min_c: float
    relief_median_days: float  # NaN without a block
    tip_temperature_c: float  # the surface temperature applied (after the offset and clip)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ReplayContext:
    """A plan's phantom, region of interest and grid: built once, replayed many times."""

    def __init__(self, plan: Plan, voxel_mm: float = 1.0) -> None:
        from cryoneuro.planning.pipeline import Level, boundaries_for, region_of_interest

        check_voxel(voxel_mm)
        self.plan = plan
        self.voxel_mm = float(voxel_mm)
        self.phantom = phantom_for(plan)
        anat, _ = region_of_interest(self.phantom)
        # the plan's skin and artery boundaries (plans before issue 12: adiabatic, perfused)
        self.level = Level(
            self.phantom, anat, self.voxel_mm, anat.bounds_mm(), boundaries_for(plan.inputs)
        )
        if not plan.probes:
            raise InputError(f"plan '{plan.case}' has no probes to replay")
        if not any(p.kind == "freeze" for p in plan.protocol):
            raise InputError(f"plan '{plan.case}' has no freeze phase to replay")


def check_voxel(voxel_mm: float) -> None:
    if not any(math.isclose(voxel_mm, v) for v in VOXEL_CHOICES_MM):
        raise InputError(f"--voxel-mm must be one of {list(VOXEL_CHOICES_MM)} (got {voxel_mm})")


def phantom_for(plan: Plan):
    """Regenerate the bundled phantom a plan was made on (an error for any other plan)."""
    name = plan.inputs.get("phantom")
    makers = _phantom_makers()
    if not name:
        raise InputError(
            f"plan '{plan.case}' does not name a bundled phantom (inputs.phantom); "
            "only phantom plans can be replayed"
        )
    if name not in makers:
        raise InputError(
            f"plan '{plan.case}': unknown phantom '{name}' (known: {', '.join(sorted(makers))})"
        )
    return makers[name]()


@functools.lru_cache(maxsize=4)
def _cached_context(plan_json: str, voxel_mm: float) -> ReplayContext:
    return ReplayContext(Plan.from_json(plan_json), voxel_mm)


def context_for(plan: Plan | str, voxel_mm: float = 1.0) -> ReplayContext:
    """A (per-process cached) context: a Dask worker builds the phantom once per plan, not per
    sample."""
    text = plan if isinstance(plan, str) else plan.to_json()
    return _cached_context(text, float(voxel_mm))


def _scaled_materials(materials: list, p: Perturbation) -> list:
    if (p.perfusion_scale, p.conductivity_scale, p.frozen_conductivity_scale) == (1.0, 1.0, 1.0):
        return list(materials)
    out = []
    for m in materials:
        if m.name in UNSCALED_MATERIALS:
            out.append(m)
            continue
        out.append(
            dataclasses.replace(
                m,
                perfusion=m.perfusion * p.perfusion_scale,
                k_unfrozen=m.k_unfrozen * p.conductivity_scale,
                k_frozen=m.k_frozen * p.frozen_conductivity_scale,
            )
        )
    return out


def replay(
    plan: Plan | str,
    perturbation: Perturbation | None = None,
    *,
    voxel_mm: float = 1.0,
    context: ReplayContext | None = None,
    front_target: float | None = None,
) -> ReplayMetrics:
    """Simulate a saved plan (perturbed) on the 0.5 or 1.0 mm grid and judge the result.

    ``front_target``: the solver's step control (``simulate``); None is its accurate default.
    Only a low-fidelity model whose bias is corrected elsewhere should loosen it."""
    from cryoneuro.planning.pipeline import relief_for
    from cryoneuro.thermal import Phase, ProbeGeometry, ThermalModel, constant, simulate

    p = perturbation or Perturbation()
    ctx = context or context_for(plan, voxel_mm)
    level, phantom = ctx.level, ctx.phantom
    offset = np.asarray(p.tip_offset_mm, float)
    from cryoneuro.planning.pipeline import device_for

    geoms, temps, applied, devices = [], [], [], []
    for pr in ctx.plan.probes:
        if pr.tip_temperature_c is None:
            raise InputError(f"plan '{ctx.plan.case}': probe '{pr.name}' has no tip temperature")
        tip_c = max(pr.tip_temperature_c + p.tip_temperature_offset_c, pr.tip_temperature_c)
        geoms.append(
            ProbeGeometry(
                tuple(float(v) for v in np.asarray(pr.tip_mm) + offset),
                tuple(pr.direction),
                pr.diameter_mm,
                pr.active_length_mm,
                name=pr.name,
            )
        )
        temps.append(constant(tip_c))
        applied.append(tip_c)
        devices.append(
            device_for(pr.gas or "argon", pr.device, p.tip_temperature_offset_c)
            if pr.drive == "device" and pr.device
            else None
        )
    phases = [
        Phase(
            ph.kind,
            ph.duration_s * (p.freeze_scale if ph.kind == "freeze" else 1.0),
            ph.temperature_c,
        )
        for ph in ctx.plan.protocol
    ]
    model = ThermalModel(
        level.grid,
        level.labels,
        _scaled_materials(level.materials, p),
        geoms,
        temps,
        probe_devices=devices if any(d is not None for d in devices) else None,
        surfaces=level.surfaces([np.asarray(t.entry_mm) + offset for t in ctx.plan.trajectories]),
    )
    res = (
        simulate(model, phases)
        if front_target is None
        else simulate(model, phases, front_target=front_target)
    )
    prof, safety, _ = level.judge(
        res, phantom.centreline_mm, getattr(phantom, "block_proximal_to_mm", None)
    )
    cov = injury.target_coverage(res.min_temperature_c, level.grid, level.target & res.tissue_mask)
    by = {s.name: s.min_c for s in safety}
    skin = by.get("skin", math.inf)
    relief = relief_for(phantom, prof)
    return ReplayMetrics(
        complete_block=prof.complete_block,
        warmest_min_c=float(np.nanmin(prof.warmest_c)),
        coldest_min_c=float(np.nanmin(prof.coldest_c)),
        blocked_length_mm=prof.blocked_length_mm,
        neurotmesis_risk=prof.neurotmesis_risk,
        coverage_20=cov.fractions[-20.0],
        coverage_40=cov.fractions[-40.0],
        skin_min_c=float(skin),
        skin_safe=bool(skin > injury.SKIN_SAFE_C),
        artery_min_c=float(by.get("artery", math.nan)),
        relief_median_days=float(relief.get("median_days", math.nan)),
        tip_temperature_c=float(applied[0]),
    )


def stored_metrics(plan: Plan) -> dict[str, Any]:
    """The same metrics as :class:`ReplayMetrics`, read from what the plan stored."""
    skin = next((s for s in plan.safety if s.get("structure") == "skin"), {})
    artery = next((s for s in plan.safety if s.get("structure") == "artery"), {})
    nerve = plan.nerve
    nan = math.nan
    return {
        "complete_block": nerve.get("complete_block"),
        "warmest_min_c": nerve.get("warmest_min_c", nan),
        "coldest_min_c": nerve.get("coldest_min_c", nan),
        "blocked_length_mm": nerve.get("blocked_length_mm", nan),
        "neurotmesis_risk": nerve.get("neurotmesis_risk"),
        "coverage_20": plan.coverage.get("fraction_at_or_below_-20_c", nan),
        "coverage_40": plan.coverage.get("fraction_at_or_below_-40_c", nan),
        "skin_min_c": skin.get("min_temperature_c", nan),
        "skin_safe": (skin["min_temperature_c"] > injury.SKIN_SAFE_C)
        if "min_temperature_c" in skin
        else None,
        "artery_min_c": artery.get("min_temperature_c", nan),
        "relief_median_days": plan.relief.get("median_days", nan) if plan.relief else nan,
        "tip_temperature_c": plan.probes[0].tip_temperature_c if plan.probes else nan,
    }
