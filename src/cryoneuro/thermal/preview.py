"""A live single-probe iceball: one r–z solve per device and protocol, placed anywhere in 3D.

Why: a planner's user drags a probe and wants the iceball to follow within half a second; a 3D
enthalpy solve takes seconds to minutes. Around **one** probe in **homogeneous** tissue the
temperature field is axisymmetric about the probe axis, so it is a function ``T(r, s)`` of the
distance ``r`` from the axis and the position ``s`` along it. That function is computed once by
the r–z finite-volume solver (:func:`cryoneuro.thermal.axisymmetric.solve_axisymmetric`, the
same device energy balance as the 3D engine; cross-checked against it in
``tests/test_device_probe.py``) and stored as a :class:`SingleProbeTable`. Placing a probe is
then a coordinate change and a bilinear interpolation per voxel (:func:`place_field`):

    s = (p − tip) · û,    r = |(p − tip) − s û|,    T₃D(p) = T_rz(r, s)

with ``û`` the unit vector from the tip towards the handle (the convention of
:class:`~cryoneuro.thermal.geometry.ProbeGeometry`). Points beyond the table's domain are at
body temperature (the r–z domain edge is held there); points inside the probe are NaN (not
tissue), as in the 3D engine.

What it leaves out, and so where it is an approximation (stated by :func:`limits`): tissue
heterogeneity (skin, bone, fat, air at the body surface), perfusion differences between
tissues, vessels, and a second probe (two iceballs interact: the field of two probes is colder
than the minimum of two single-probe fields). The plan's full 3D simulation stays the answer;
the preview is for moving the probe. Its error against the 3D engine on the bundled phantoms is
measured by ``benchmarks/preview.py`` and reported in ``docs/benchmarks.md``.

Tables are cached on disk (``.npz``, keyed by a hash of every input) in a per-user cache
directory, so a planning session builds each device/protocol table once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import RegularGridInterpolator

from cryoneuro.errors import GeometryError, InputError
from cryoneuro.thermal.axisymmetric import Phase, parse_protocol, solve_axisymmetric
from cryoneuro.thermal.drive import DeviceDrive
from cryoneuro.thermal.geometry import Grid
from cryoneuro.tissue import ThermalProperties

__all__ = [
    "SingleProbeTable",
    "build_table",
    "cached_table",
    "limits",
    "place_field",
    "place_on_grid",
]

#: Bump when the table's content or meaning changes (old cache files are then ignored).
TABLE_VERSION = 1
#: Defaults of :func:`build_table`, shared with :func:`cached_table`'s cache key.
CELL_MM, DT_S, REACH_MM, BODY_C = 0.4, 3.0, 16.0, 37.0


@dataclass(frozen=True)
class SingleProbeTable:
    """``T(r, s)`` around one probe: ``r`` from the axis, ``s`` from the tip towards the handle
    (mm, cell centres of the r–z grid); fields in °C, NaN inside the probe and its shaft."""

    r_mm: NDArray
    s_mm: NDArray
    final_c: NDArray  #: (len(s), len(r)) temperature at the end of the protocol
    minimum_c: NDArray  #: (len(s), len(r)) lowest temperature over the protocol
    probe_diameter_mm: float
    active_length_mm: float
    body_temperature_c: float
    build_s: float  #: wall time of the r–z solve that made it (s)
    inputs: dict  #: everything the table depends on (JSON-able), for provenance

    def field(self, which: str) -> NDArray:
        if which == "minimum":
            return self.minimum_c
        if which == "final":
            return self.final_c
        raise InputError(f"which must be 'minimum' or 'final' (got {which!r})")


def _phases(protocol: Sequence[object]) -> list[Phase]:
    """Phases from tuples or from any phase object with ``kind``/``duration_s``/``temperature_c``
    (the 3D engine's :class:`cryoneuro.thermal.Phase` included)."""
    items: list = []
    for p in protocol:
        if hasattr(p, "kind") and not isinstance(p, Phase):
            t = getattr(p, "temperature_c", None)
            items.append((p.kind, p.duration_s, *(() if t is None else (t,))))  # type: ignore[attr-defined]
        else:
            items.append(p)
    return parse_protocol(items)


def _inputs(
    tissue: ThermalProperties,
    probe_diameter_mm: float,
    active_length_mm: float,
    phases: list[Phase],
    device: DeviceDrive | None,
    tip_temperature_c: float | None,
    body_temperature_c: float,
    cell_mm: float,
    dt_s: float,
    reach_mm: float,
) -> dict:
    return {
        "version": TABLE_VERSION,
        "tissue": {
            k: float(v) if isinstance(v, int | float) else str(v) for k, v in asdict(tissue).items()
        },
        "probe_diameter_mm": float(probe_diameter_mm),
        "active_length_mm": float(active_length_mm),
        "protocol": [[p.kind, float(p.duration_s), p.temperature_c] for p in phases],
        "device": None
        if device is None
        else {
            k: (float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v)
            for k, v in asdict(device).items()
        },
        "tip_temperature_c": tip_temperature_c,
        "body_temperature_c": float(body_temperature_c),
        "cell_mm": float(cell_mm),
        "dt_s": float(dt_s),
        "reach_mm": float(reach_mm),
    }


def build_table(
    tissue: ThermalProperties,
    *,
    probe_diameter_mm: float,
    active_length_mm: float,
    protocol: Sequence[Sequence[object] | Phase],
    device: DeviceDrive | None = None,
    tip_temperature_c: float | None = None,
    body_temperature_c: float = BODY_C,
    cell_mm: float = CELL_MM,
    dt_s: float = DT_S,
    reach_mm: float = REACH_MM,
) -> SingleProbeTable:
    """Solve the r–z problem once and keep ``T(r, s)`` (see the module docstring).

    Parameters
    ----------
    tissue : ThermalProperties
        The homogeneous tissue around the probe.
    probe_diameter_mm, active_length_mm : float
        Probe geometry (mm), as in :class:`~cryoneuro.thermal.geometry.ProbeGeometry`.
    protocol : sequence of phases
        ``[("freeze", 150), ("thaw-passive", 30), …]`` (s), as for the 3D engine.
    device : DeviceDrive, optional
        Drive the wall by the device energy balance (the planner's default); otherwise the
        wall is held at ``tip_temperature_c`` (°C) during freezes.
    cell_mm, dt_s : float
        r–z resolution near the probe (mm) and time step (s). The default 0.4 mm / 3 s is the
        r–z solver's coarse mode, within about 0.15 mm of its converged isotherm sizes
        (docs/validation.md) — finer than the 0.5 mm grid the preview is placed on — and
        solves in seconds; 0.2 mm / 2 s costs minutes for a twice-120 s protocol.
    reach_mm : float
        How far from the active part the table extends (mm); beyond it the tissue is at body
        temperature. Must exceed the 0 °C isotherm's reach.
    """
    if device is None and tip_temperature_c is None:
        raise InputError("give a device (DeviceDrive) or a tip_temperature_c (°C)")
    if not (np.isfinite(reach_mm) and reach_mm > 2.0):
        raise InputError(f"reach_mm must be > 2 mm (got {reach_mm})")
    phases = _phases(protocol)
    tip_z = reach_mm
    res = solve_axisymmetric(
        tissue,
        probe_diameter_mm=probe_diameter_mm,
        active_length_mm=active_length_mm,
        tip_temperature_c=tip_temperature_c if tip_temperature_c is not None else 0.0,
        protocol=phases,
        radius_mm=reach_mm + probe_diameter_mm,
        z_extent_mm=(0.0, tip_z + active_length_mm + reach_mm),
        tip_z_mm=tip_z,
        body_temperature_c=body_temperature_c,
        cell_mm=cell_mm,
        dt_s=dt_s,
        fine_margin_mm=reach_mm,
        device=device,
    )
    frozen_edge = np.nanmax(np.where(res.min_temperature_c <= 0.0, res.r_centres_mm[None, :], 0))
    if frozen_edge > reach_mm - 2.0:
        raise InputError(
            f"the 0 °C isotherm reaches {frozen_edge:.1f} mm from the axis, within 2 mm of the "
            f"table's reach ({reach_mm} mm): build the table with a larger reach_mm"
        )
    return SingleProbeTable(
        r_mm=res.r_centres_mm.copy(),
        s_mm=res.z_centres_mm - tip_z,
        final_c=res.temperature_c.copy(),
        minimum_c=res.min_temperature_c.copy(),
        probe_diameter_mm=float(probe_diameter_mm),
        active_length_mm=float(active_length_mm),
        body_temperature_c=float(body_temperature_c),
        build_s=float(res.wall_time_s),
        inputs=_inputs(
            tissue,
            probe_diameter_mm,
            active_length_mm,
            phases,
            device,
            tip_temperature_c,
            body_temperature_c,
            cell_mm,
            dt_s,
            reach_mm,
        ),
    )


def _cache_dir() -> Path:
    """``$CRYONEURO_CACHE_DIR`` or ``$XDG_CACHE_HOME/cryoneuro`` (``~/.cache/cryoneuro``)."""
    env = os.environ.get("CRYONEURO_CACHE_DIR")
    if env:
        return Path(env) / "preview"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cryoneuro" / "preview"


def cached_table(
    tissue: ThermalProperties,
    *,
    cache_dir: str | Path | None = None,
    **kwargs,
) -> SingleProbeTable:
    """:func:`build_table`, memoised on disk by a SHA-256 of every input.

    A cache file that cannot be read (truncated, another version) is rebuilt; the new file is
    written to a temporary name and renamed, so a reader never sees half a table.
    """
    phases = _phases(kwargs.get("protocol", ()))
    key_inputs = _inputs(
        tissue,
        kwargs["probe_diameter_mm"],
        kwargs["active_length_mm"],
        phases,
        kwargs.get("device"),
        kwargs.get("tip_temperature_c"),
        kwargs.get("body_temperature_c", BODY_C),
        kwargs.get("cell_mm", CELL_MM),
        kwargs.get("dt_s", DT_S),
        kwargs.get("reach_mm", REACH_MM),
    )
    key = hashlib.sha256(json.dumps(key_inputs, sort_keys=True).encode()).hexdigest()[:32]
    directory = Path(cache_dir) if cache_dir is not None else _cache_dir()
    path = directory / f"table-{key}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("inputs") == json.loads(json.dumps(key_inputs)):
                    return SingleProbeTable(
                        r_mm=z["r_mm"],
                        s_mm=z["s_mm"],
                        final_c=z["final_c"],
                        minimum_c=z["minimum_c"],
                        probe_diameter_mm=meta["probe_diameter_mm"],
                        active_length_mm=meta["active_length_mm"],
                        body_temperature_c=meta["body_temperature_c"],
                        build_s=meta["build_s"],
                        inputs=meta["inputs"],
                    )
        except (OSError, ValueError, KeyError):
            pass  # unreadable: rebuild below
    table = build_table(tissue, **kwargs)
    meta = {
        "probe_diameter_mm": table.probe_diameter_mm,
        "active_length_mm": table.active_length_mm,
        "body_temperature_c": table.body_temperature_c,
        "build_s": table.build_s,
        "inputs": json.loads(json.dumps(table.inputs)),
    }
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez_compressed(
        tmp,
        r_mm=table.r_mm,
        s_mm=table.s_mm,
        final_c=table.final_c,
        minimum_c=table.minimum_c,
        meta=json.dumps(meta),
    )
    os.replace(tmp, path)
    return table


def place_field(
    table: SingleProbeTable,
    points_mm: NDArray,
    tip_mm: Sequence[float],
    direction: Sequence[float],
    which: str = "minimum",
) -> NDArray:
    """Temperature (°C) at ``points_mm`` (N, 3) for the probe with this tip and direction
    (towards the handle; need not be unit length). NaN inside the probe; body temperature
    beyond the table."""
    pts = np.asarray(points_mm, dtype=float).reshape(-1, 3)
    u = np.asarray(direction, dtype=float)
    norm = float(np.linalg.norm(u))
    if not np.isfinite(norm) or norm == 0.0:
        raise GeometryError(f"probe direction must be a non-zero vector (got {tuple(direction)})")
    u = u / norm
    d = pts - np.asarray(tip_mm, dtype=float)
    s = d @ u
    r = np.linalg.norm(d - s[:, None] * u, axis=1)
    f = table.field(which)
    interp = RegularGridInterpolator(
        (table.s_mm, table.r_mm), f, bounds_error=False, fill_value=table.body_temperature_c
    )
    # Between the outermost cell centres and the domain's edge the field is taken from the
    # outermost centres (clamped); beyond the domain the tissue is at body temperature (the
    # r–z edges are held there). The tolerance keeps round-off of the coordinate change from
    # moving a point at an outermost centre outside.
    eps = 1e-9
    beyond = (r > table.r_mm[-1] + eps) | (s < table.s_mm[0] - eps) | (s > table.s_mm[-1] + eps)
    inner = np.column_stack(
        [np.clip(s, table.s_mm[0], table.s_mm[-1]), np.clip(r, table.r_mm[0], table.r_mm[-1])]
    )
    out = interp(inner)
    out[beyond] = table.body_temperature_c
    # The probe itself (capsule + shaft) is not tissue: NaN, as the r–z field has there.
    a = 0.5 * table.probe_diameter_mm
    inside = (r < a) & (s >= a)
    inside |= (s < a) & (np.linalg.norm(d - a * u, axis=1) < a)
    out[inside] = np.nan
    return out


def place_on_grid(
    table: SingleProbeTable,
    grid: Grid,
    tip_mm: Sequence[float],
    direction: Sequence[float],
    which: str = "minimum",
) -> NDArray:
    """:func:`place_field` on every voxel centre of ``grid``; an array of ``grid.shape``."""
    xx, yy, zz = np.broadcast_arrays(*grid.centres_mm())
    pts = np.column_stack([xx.ravel(), yy.ravel(), zz.ravel()])
    return place_field(table, pts, tip_mm, direction, which).reshape(grid.shape)


def limits(n_probes: int = 1, homogeneous: bool = True) -> list[str]:
    """What the preview leaves out for this scene, in words a user reads beside the result."""
    out = [
        "preview: one probe in homogeneous tissue (r–z model); skin, bone, air and vessels "
        "change the real iceball — run the full 3D plan before deciding"
    ]
    if n_probes > 1:
        out.append(
            f"preview: {n_probes} probes shown as the coldest of single-probe fields; probes "
            "close together make a larger, colder iceball than shown"
        )
    if not homogeneous:
        out.append("preview: the tissue around the probe is not homogeneous here")
    return out
