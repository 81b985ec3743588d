"""Live preview of one probe placement on a patient's anatomy: iceball, nerve block, skin.

Why: a radiologist moving a probe on screen needs the iceball and the verdicts to follow the
mouse (issue 17 item 4, issue 18's workspace); the confirmed 3D plan takes seconds to minutes.
The preview places a precomputed single-probe r–z field (:mod:`cryoneuro.thermal.preview`)
on the plan's 0.5 mm region-of-interest grid and judges it with **the planner's own rules**
(:meth:`cryoneuro.planning.pipeline.Level.judge`: the same nerve-block stations, neurotmesis
range and skin limit), so a preview verdict and a plan verdict differ only by the field.

The homogeneous tissue of the table is the commonest tissue within ``TISSUE_RADIUS_MM`` of the
target, nerve excluded (fat in the forefoot's intermetatarsal space). Voxels of air outside the
body are not tissue. Every readout carries :func:`cryoneuro.thermal.preview.limits`, and the
measured difference from the confirmed 3D plan on the bundled phantoms is in
``docs/benchmarks.md`` (``benchmarks/preview.py``).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from numpy.typing import NDArray

from cryoneuro import probe as probe_physics
from cryoneuro.anatomy.patient_anatomy import PatientAnatomy
from cryoneuro.errors import InputError
from cryoneuro.planning.pipeline import (
    ACTIVE_LENGTH_MM,
    PROBE_DIAMETER_MM,
    Level,
    device_for,
    protocol,
    region_of_interest,
)
from cryoneuro.thermal.preview import SingleProbeTable, cached_table, limits, place_on_grid

__all__ = ["TISSUE_RADIUS_MM", "PlacementPreview", "PreviewReadout"]

#: Radius (mm) around the target in which the preview's homogeneous tissue is chosen.
TISSUE_RADIUS_MM = 8.0


@dataclass
class PreviewReadout:
    """What the user reads beside the preview iceball (°C, mm, ml)."""

    complete_block: bool
    blocked_length_mm: float
    neurotmesis_risk: bool
    skin_min_c: float
    skin_margin_c: float  #: skin minimum minus its 0 °C limit (°C); > 0 is safe
    skin_distance_mm: float  #: from the 0 °C isotherm to the skin (mm; 0 when they touch)
    volumes_ml: dict[str, float]  #: volume inside each isotherm (ml), in tissue
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0  #: wall time of this preview (s)

    def summary(self) -> str:
        block = "complete" if self.complete_block else "incomplete"
        return (
            f"block {block} ({self.blocked_length_mm:.1f} mm); neurotmesis risk "
            f"{'yes' if self.neurotmesis_risk else 'no'}; skin min {self.skin_min_c:.1f} °C, "
            f"0 °C isotherm {self.skin_distance_mm:.1f} mm from skin"
        )


class PlacementPreview:
    """Preview placements of the planner's probe on one phantom (or patient anatomy).

    Build once (one r–z solve, cached on disk; about a second or two), then call
    :meth:`readout` per probe pose (tens to hundreds of milliseconds on the 0.5 mm grid).
    """

    def __init__(
        self,
        phantom: PatientAnatomy,
        *,
        gas: str = "argon",
        freeze_s: float = 120.0,
        drive: str = "device",
        voxel_mm: float = 0.5,
        cache_dir: str | Path | None = None,
    ):
        if drive not in ("device", "held"):
            raise InputError(f"drive must be 'device' or 'held' (got {drive!r})")
        self.phantom = phantom
        anat, self.target_mm = region_of_interest(phantom)
        self.level = Level(phantom, anat, voxel_mm, anat.bounds_mm())
        self.grid = self.level.grid
        self.tissue_name = self._local_tissue()
        materials = {m.name: m for m in self.level.materials}
        self.tissue = materials[self.tissue_name]
        self.protocol = protocol(freeze_s)
        device = device_for(gas) if drive == "device" else None
        tip_c = None if device else probe_physics.tip_state(gas).tip_temperature_c
        self.table: SingleProbeTable = cached_table(
            self.tissue,
            cache_dir=cache_dir,
            probe_diameter_mm=PROBE_DIAMETER_MM,
            active_length_mm=ACTIVE_LENGTH_MM,
            protocol=self.protocol,
            device=device,
            tip_temperature_c=tip_c,
        )
        air = [i for i, m in enumerate(self.level.materials) if m.name == "air"]
        self.body = ~np.isin(self.level.labels, air)

    def _local_tissue(self) -> str:
        x, y, z = self.grid.centres_mm()
        c = self.target_mm
        near = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= TISSUE_RADIUS_MM**2
        near = near & ~self.level.nerve
        names = [self.level.materials[i].name for i in self.level.labels[near].ravel()]
        counts = Counter(n for n in names if n != "air")
        if not counts:
            raise InputError(
                f"{self.phantom.name}: no tissue within {TISSUE_RADIUS_MM} mm of the target"
            )
        return counts.most_common(1)[0][0]

    def field(self, tip_mm, direction) -> NDArray:
        """Minimum temperature (°C) over the protocol on the grid; NaN in the probe and in air."""
        t = place_on_grid(self.table, self.grid, tip_mm, direction, which="minimum")
        t[~self.body] = np.nan
        return t

    def readout(self, tip_mm, direction) -> PreviewReadout:
        """Judge one pose (tip, direction tip → handle) with the planner's rules."""
        start = time.perf_counter()
        return self.judge(self.field(tip_mm, direction), start)

    def judge(self, t: NDArray, start: float | None = None) -> PreviewReadout:
        """The readout of a field from :meth:`field` (so a caller that also draws the field
        places it once); ``start``: the ``perf_counter`` time the pose was asked for."""
        start = time.perf_counter() if start is None else start
        res = SimpleNamespace(min_temperature_c=t, tissue_mask=np.isfinite(t))
        prof, safety, margin = self.level.judge(
            res,
            self.phantom.centreline_mm,
            getattr(self.phantom, "block_proximal_to_mm", None),
        )
        skin = next((s for s in safety if s.name == "skin"), None)
        v_cell = self.grid.voxel_mm**3 / 1000.0
        volumes = {
            f"{iso:g}": float(np.count_nonzero(np.nan_to_num(t, nan=99.0) <= iso) * v_cell)
            for iso in (0.0, -20.0, -40.0)
        }
        warnings = [s.warning for s in safety if s.warning] + limits(1)
        return PreviewReadout(
            complete_block=bool(prof.complete_block),
            blocked_length_mm=float(prof.blocked_length_mm),
            neurotmesis_risk=bool(prof.neurotmesis_risk),
            skin_min_c=float(skin.min_c) if skin else float("nan"),
            skin_margin_c=float(margin),
            skin_distance_mm=float(skin.distance_mm[0.0]) if skin else float("inf"),
            volumes_ml=volumes,
            warnings=warnings,
            elapsed_s=time.perf_counter() - start,
        )
