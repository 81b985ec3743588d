"""The full 3D plan of one placement chosen by the user (the workspace's "Run full plan").

Why: in the planning workspace (issue 18) the radiologist moves the probe with the live
preview (:mod:`cryoneuro.planning.preview`) and then wants the confirmed 3D simulation of
*that* placement, not a new search that may put the probe elsewhere. This runs the planner's
own steps on one candidate — the needle path checked against skin, bone and arteries
(:func:`cryoneuro.planning.trajectory.assess_trajectory`), the 3D simulation with the device's
wall (:meth:`cryoneuro.planning.pipeline.Level.evaluate`), the same judgement and the same plan
bundle (:func:`cryoneuro.planning.pipeline._assemble`) — so a workspace plan and a searched plan
read alike and differ only in who chose the pose.

Coordinates: LPS mm, as the preview. ``direction`` points from the tip to the handle (the
preview's convention); the active length is centred ``active_length / 2`` behind the tip, as
:func:`cryoneuro.planning.trajectory.tip_for_target` places it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cryoneuro.anatomy.patient_anatomy import PatientAnatomy
from cryoneuro.errors import GeometryError, InputError
from cryoneuro.planning.pipeline import (
    CONFIRM_VOXEL_MM,
    DRIVE,
    PROBE_MODEL,
    THAW_S,
    Boundaries,
    Level,
    _assemble,
    _Builder,
    region_of_interest,
)
from cryoneuro.planning.plan import Plan

__all__ = ["plan_placement"]


def plan_placement(
    phantom: PatientAnatomy,
    out_dir: str | Path,
    *,
    tip_mm,
    direction,
    gas: str = "argon",
    freeze_s: float = 120.0,
    protocol: str | None = None,
    drive: str = DRIVE,
    voxel_mm: float = CONFIRM_VOXEL_MM,
    boundaries: Boundaries | None = None,
    policy: str = "reversible-block",
    procedure_date: dt.date | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> Plan:
    """Simulate and judge the probe at ``tip_mm`` pointing along ``direction`` (tip → handle).

    ``protocol``: a preset name (:mod:`cryoneuro.planning.protocols`) whose option
    (``gas``, ``freeze_s``) is used; without one, ``gas`` and ``freeze_s`` run as the planner's
    two freeze–thaw cycles on the 17G sphere-class probe. ``voxel_mm``: the simulation grid
    (0.5 mm as the planner's confirmation; coarser is faster and less exact).
    Raises :class:`~cryoneuro.errors.GeometryError` (one line) when the needle path is refused.
    """
    from cryoneuro.planning import protocols as presets

    tip = np.asarray(tip_mm, float).reshape(-1)
    d = np.asarray(direction, float).reshape(-1)
    if (
        tip.shape != (3,)
        or d.shape != (3,)
        or not (np.isfinite(tip).all() and np.isfinite(d).all())
    ):
        raise InputError("tip_mm and direction must be three finite numbers each")
    if np.linalg.norm(d) < 1e-9:
        raise InputError("direction must be a non-zero vector (tip → handle)")
    d = d / np.linalg.norm(d)
    if drive not in ("device", "held"):
        raise GeometryError(f"drive must be 'device' or 'held' (got '{drive}')")
    if protocol:
        preset = presets.get_preset(protocol)
    else:
        preset = presets.custom_preset([gas], [freeze_s], device=PROBE_MODEL, thaw_s=THAW_S)
    options = [(g, float(f)) for g, f in preset.options]
    if (gas, float(freeze_s)) not in options:
        offered = ", ".join(f"{g} {f:g} s" for g, f in options)
        raise InputError(
            f"protocol '{preset.name}' offers {offered}; not {gas} {float(freeze_s):g} s"
        )
    option = options.index((gas, float(freeze_s)))
    if progress:
        progress(0.05, f"building the {voxel_mm:g} mm grid")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    anat, target = region_of_interest(phantom)
    fine = Level(phantom, anat, voxel_mm, anat.bounds_mm(), boundaries or Boundaries())
    builder = _Builder(phantom, anat, target, preset, drive, 1)
    centre = tip + 0.5 * builder.model.active_length_mm * d
    spec, trajs = builder.build(
        d,
        [centre],
        option,
        describe={
            "search": "workspace placement",
            "tip_mm": [round(float(v), 3) for v in tip],
            "direction": [round(float(v), 4) for v in d],
        },
    )
    if spec is None:
        raise GeometryError(f"{phantom.name}: the chosen needle path is refused ({trajs})")
    if progress:
        progress(0.1, f"simulating the placement ({voxel_mm:g} mm)")
    best = fine.evaluate(phantom, spec, trajs, policy)
    if progress:
        progress(0.9, "writing the plan bundle")
    context = {
        "protocol_preset": preset.describe(),
        "search": {
            "method": "workspace placement (chosen by the user, not searched)",
            "n_probes": 1,
            "policy": policy,
            "confirm_voxel_mm": voxel_mm,
            "chosen": spec.describe,
        },
        "boundaries": (boundaries or Boundaries()).as_dict(),
        "vessel": fine.vessel_info,
    }
    return _assemble(
        phantom,
        fine.anat,
        best,
        [best],
        fine.target,
        fine.anat.label_names,
        fine.lab,
        best.tip_c,
        Path(out_dir),
        procedure_date,
        fine.structures,
        context=context,
        level=fine,
    )
