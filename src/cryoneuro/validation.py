"""The device probe model held against measured ice: calibration and held-out validation.

Data: ``data/validation/measured_iceballs.csv`` — one row per published figure with its exact
source sentence and a ``role`` declared before any prediction was looked at (README there):
``calibration`` (at most one figure per device class), ``validation`` (held out) and
``context`` (not simulable from what the source reports).

The one fitted parameter, :data:`cryoneuro.probe.DISCHARGE_FRACTION`, is found by
:func:`calibrate` on the calibration row alone (Brent's method on the −30 °C diameter of one
2.4 mm argon probe after 15 min in 39 °C agar). :func:`validation_table` then predicts every
row — the calibration row as a check of the fit, the validation rows with nothing refitted —
with the *same* per-probe model for single probes and arrays.

The phantoms are modelled as reported: agar as a water gel (``tissue.gel``: water/ice
properties, −0.5 to 0 °C freezing range, no perfusion), a uniform start at the phantom's
baseline temperature, which the outer faces keep (a large, warm phantom), probes parallel,
tips level, 20 mm apart. Where the source leaves a choice open it is stated here and in the
output: three probes on an equilateral triangle and four on a square (Littrup 2009 gives the
2 cm spacing, not the arrangement); the lethal-ice *diameter* of an array is the largest extent
perpendicular to the probes (the ``simulate`` contract); the lethal *area fraction* is the
area inside −30 °C over the area inside 0 °C in the cross-section through the middle of the
active length (the CT plane of the source). Rows measured in vivo are excluded by an explicit
rule (no lung tissue model), and the output lists them.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import numpy as np

from cryoneuro import probe as probe_physics
from cryoneuro.errors import InputError
from cryoneuro.thermal import Grid, Phase, ProbeGeometry, ThermalModel, constant, simulate
from cryoneuro.thermal.summary import isotherms
from cryoneuro.tissue import get_tissue

DATA_FILE = "data/validation/measured_iceballs.csv"
#: Tolerance of each kind of row (the issue's bar: diameters within 2 mm on average and 4 mm at
#: most; fractions and ratios within 0.10 absolute).
TOLERANCE = {"diameter": 4.0, "area_fraction": 0.10, "diameter_ratio": 0.10, "area_ratio": 0.10}
SIMULATED_QUANTITIES = tuple(TOLERANCE)
#: Device class of the data set → catalogue entry.
DEVICE_FOR_CLASS = {"argon-2.4mm": "argon-2.4mm-class", "argon-1.7mm": "argon-1.7mm-class"}
#: RKL2 step (s). In gel (0.5 K mushy range) a 1 s step put isotherms 0.08 mm from forward Euler
#: on a 40 s freeze (solver.DEFAULT_TIME_STEP_S); far below the tolerances here, and it halves
#: the cost of the validation runs.
TIME_STEP_S = 1.0
#: Margin around the probes (mm) and below the tips: the predicted 0 °C iceball of one 2.4 mm
#: probe after 15 min in 39 °C gel is 27 mm across (53 mm for four), so 26 mm of gel beyond the
#: outermost probe keeps the held outer faces about 12 mm from the iceball's edge; the
#: sensitivity to this margin has not been measured (a limitation, docs/validation.md).
MARGIN_MM = 26.0
TIP_DEPTH_MM = 20.0
FREEZE_S_DEFAULT = 900.0


@dataclass(frozen=True)
class MeasuredRow:
    """One published figure (a row of measured_iceballs.csv)."""

    id: str
    source: str
    device_class: str
    probe_diameter_mm: float
    n_probes: int | None
    spacing_mm: float | None
    medium: str
    medium_temperature_c: float | None
    setting: str
    freeze_s: float | None
    isotherm_c: float | None
    quantity: str
    measured: float
    unit: str
    role: str
    source_sentence: str


def _num(text: str) -> float | None:
    text = (text or "").strip()
    return float(text) if text else None


def load_rows(path: str | Path | None = None) -> list[MeasuredRow]:
    """The calibration and validation figures (context rows are not simulated and not
    loaded); a malformed row is refused with its line."""
    if path is None:
        text = files("cryoneuro").joinpath(DATA_FILE).read_text("utf-8")
        name = DATA_FILE
    else:
        name = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise InputError(f"{name}: cannot read ({exc.strerror})") from None
    rows = []
    for line, r in enumerate(csv.DictReader(text.splitlines()), start=2):
        if r.get("role") == "context":  # free-form by design (README); never simulated
            continue
        try:
            n = _num(r["n_probes"]) if r["n_probes"].strip().isdigit() else None
            rows.append(
                MeasuredRow(
                    id=r["id"],
                    source=r["source"],
                    device_class=r["device_class"],
                    probe_diameter_mm=float(r["probe_diameter_mm"] or "nan"),
                    n_probes=int(n) if n is not None else None,
                    spacing_mm=_num(r["spacing_mm"]),
                    medium=r["medium"],
                    medium_temperature_c=_num(r["medium_temperature_c"]),
                    setting=r["setting"],
                    freeze_s=_num(r["freeze_s"]),
                    isotherm_c=_num(r["isotherm_c"]),
                    quantity=r["quantity"],
                    measured=float(r["measured_value"]),
                    unit=r["unit"],
                    role=r["role"],
                    source_sentence=r["source_sentence"],
                )
            )
        except (KeyError, ValueError) as exc:
            raise InputError(f"{name}: line {line}: {exc}") from None
    return rows


def layout_mm(n_probes: int, spacing_mm: float) -> list[tuple[float, float]]:
    """Probe positions (x, y) centred on the origin: line of 2, equilateral triangle, square."""
    s = spacing_mm
    if n_probes == 1:
        return [(0.0, 0.0)]
    if n_probes == 2:
        return [(-s / 2, 0.0), (s / 2, 0.0)]
    if n_probes == 3:
        r = s / math.sqrt(3.0)
        return [(r * math.cos(a), r * math.sin(a)) for a in np.deg2rad([90, 210, 330])]
    if n_probes == 4:
        return [(-s / 2, -s / 2), (s / 2, -s / 2), (s / 2, s / 2), (-s / 2, s / 2)]
    raise InputError(f"layout: {n_probes} probes has no stated arrangement (1-4 are modelled)")


@dataclass
class PhantomRun:
    """What one simulated phantom experiment gives."""

    diameters_mm: dict[str, float]
    lethal_area_fraction: float
    lethal_area_mm2: float
    wall_temperature_end_c: float
    heat_w_mean: float
    wall_time_s: float
    extra: dict = field(default_factory=dict)


def run_phantom(
    device: str,
    n_probes: int,
    spacing_mm: float,
    medium_c: float,
    freeze_s: float,
    *,
    voxel_mm: float = 1.0,
    discharge_fraction: float | None = None,
    h_gas_w_m2k: float | None = None,
    lethal_c: float = -30.0,
    time_step_s: float = TIME_STEP_S,
) -> PhantomRun:
    """Simulate one gel-phantom experiment with the device model (see the module docstring)."""
    model_entry = probe_physics.get_probe_model(device)
    pos = layout_mm(n_probes, spacing_mm)
    span = max(max(abs(x), abs(y)) for x, y in pos)
    half = span + MARGIN_MM
    length = model_entry.active_length_mm
    size = [2 * half, 2 * half, TIP_DEPTH_MM + length + MARGIN_MM / 2]
    size = [math.ceil(s / voxel_mm) * voxel_mm for s in size]
    grid = Grid.from_size(tuple(size), voxel_mm)
    cx, cy = size[0] / 2, size[1] / 2
    probes = [
        ProbeGeometry(
            (cx + x, cy + y, TIP_DEPTH_MM),
            (0, 0, 1),
            model_entry.diameter_mm,
            length,
            name=f"probe{i + 1}",
        )
        for i, (x, y) in enumerate(pos)
    ]
    drives = [
        probe_physics.device_drive(
            model_entry, discharge_fraction=discharge_fraction, h_gas_w_m2k=h_gas_w_m2k, name=p.name
        )
        for p in probes
    ]
    thermal = ThermalModel(
        grid=grid,
        labels=np.zeros(grid.shape, np.uint8),
        materials=[get_tissue("gel")],
        probes=probes,
        probe_temperature=[constant(d.gas_temperature_c) for d in drives],
        body_temperature_c=medium_c,
        probe_devices=drives,
    )
    res = simulate(
        thermal,
        [Phase("freeze", freeze_s)],
        thresholds_c=(0.0, lethal_c),
        sample_interval_s=5.0,
        time_step_s=time_step_s,
    )
    iso = isotherms(res, (0.0, -20.0, lethal_c, -40.0))
    k_mid = round((TIP_DEPTH_MM + length / 2) / voxel_mm - 0.5)
    plane = res.min_temperature_c[:, :, k_mid]
    iceball = np.count_nonzero(plane <= 0.0)
    lethal = np.count_nonzero(plane <= lethal_c)
    walls = res.probe_wall_temperature_c
    return PhantomRun(
        diameters_mm={k: v["diameter_mm"] for k, v in iso.items()},
        lethal_area_fraction=lethal / iceball if iceball else math.nan,
        lethal_area_mm2=lethal * voxel_mm**2,
        wall_temperature_end_c=float(np.nanmean(walls[-1])),
        heat_w_mean=float(abs(np.sum(res.probe_heat_j)) / freeze_s),
        wall_time_s=res.wall_time_s,
        extra={
            "wall_temperature_trace_c": walls[:, 0].tolist(),
            "wall_trace_times_s": res.point_times_s.tolist(),
        },
    )


def calibrate(
    voxel_mm: float = 1.0, h_gas_w_m2k: float | None = None, rows: list[MeasuredRow] | None = None
) -> tuple[float, MeasuredRow]:
    """Fit :data:`~cryoneuro.probe.DISCHARGE_FRACTION` on the 2.4 mm calibration row."""
    from scipy.optimize import brentq

    rows = load_rows() if rows is None else rows
    cal = [r for r in rows if r.role == "calibration" and r.device_class == "argon-2.4mm"]
    if len(cal) != 1:
        raise InputError("measured_iceballs.csv: expected exactly one argon-2.4mm calibration row")
    row = cal[0]
    key = f"{row.isotherm_c:g}"

    def error(kappa: float) -> float:
        run = run_phantom(
            DEVICE_FOR_CLASS[row.device_class],
            row.n_probes or 1,
            20.0,
            row.medium_temperature_c or 37.0,
            row.freeze_s or FREEZE_S_DEFAULT,
            voxel_mm=voxel_mm,
            discharge_fraction=kappa,
            h_gas_w_m2k=h_gas_w_m2k,
        )
        return run.diameters_mm[key] - row.measured

    kappa = brentq(error, 5e-4, 5e-2, xtol=2e-5, rtol=1e-3)
    return float(kappa), row


def exclusion_reason(row: MeasuredRow) -> str | None:
    """Why a validation row is not simulated (None: it is)."""
    if row.setting != "phantom":
        return f"setting '{row.setting}': no tissue model for it here (only gel phantoms)"
    if row.quantity not in SIMULATED_QUANTITIES:
        return f"quantity '{row.quantity}' is not a simulated output"
    if row.device_class not in DEVICE_FOR_CLASS:
        return f"device class '{row.device_class}' has no catalogue entry"
    return None


def validation_table(
    *,
    voxel_mm: float = 1.0,
    discharge_fraction: float | None = None,
    h_gas_w_m2k: float | None = None,
    rows: list[MeasuredRow] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Predict every calibration and validation row; list excluded rows with their reason."""
    rows = load_rows() if rows is None else rows
    cache: dict[tuple, PhantomRun] = {}

    def run(device: str, n: int, spacing: float, medium_c: float, freeze_s: float) -> PhantomRun:
        key = (device, n, spacing, medium_c, freeze_s)
        if key not in cache:
            if progress is not None:
                progress(f"{device}, {n} probe(s), {medium_c:g} C, {freeze_s:g} s")
            cache[key] = run_phantom(
                device,
                n,
                spacing,
                medium_c,
                freeze_s,
                voxel_mm=voxel_mm,
                discharge_fraction=discharge_fraction,
                h_gas_w_m2k=h_gas_w_m2k,
            )
        return cache[key]

    out, excluded = [], []
    for row in rows:
        if row.role == "context":
            continue
        reason = exclusion_reason(row)
        if reason is not None:
            excluded.append({"id": row.id, "role": row.role, "reason": reason})
            continue
        medium_c = row.medium_temperature_c if row.medium_temperature_c is not None else 39.0
        freeze = row.freeze_s or FREEZE_S_DEFAULT
        spacing = row.spacing_mm or 20.0
        device = DEVICE_FOR_CLASS[row.device_class]
        if row.quantity == "diameter":
            predicted = run(device, row.n_probes or 1, spacing, medium_c, freeze).diameters_mm[
                f"{row.isotherm_c:g}"
            ]
            condition = f"{row.n_probes} probe(s), {medium_c:g} C gel, {freeze / 60:g} min"
        elif row.quantity == "area_fraction":
            predicted = run(
                device, row.n_probes or 1, spacing, medium_c, freeze
            ).lethal_area_fraction
            condition = f"{row.n_probes} probe(s), {medium_c:g} C gel, {freeze / 60:g} min"
        else:  # 1.7 mm relative to 2.4 mm, mean over the 1-4 probe arrangements
            ratios = []
            for n in (1, 2, 3, 4):
                small = run("argon-1.7mm-class", n, spacing, medium_c, freeze)
                big = run("argon-2.4mm-class", n, spacing, medium_c, freeze)
                if row.quantity == "diameter_ratio":
                    ratios.append(small.diameters_mm["-30"] / big.diameters_mm["-30"])
                else:
                    ratios.append(small.lethal_area_mm2 / big.lethal_area_mm2)
            predicted = float(np.mean(ratios))
            condition = f"1.7 vs 2.4 mm, mean of 1-4 probes, {medium_c:g} C gel"
        error = predicted - row.measured
        tol = TOLERANCE[row.quantity]
        out.append(
            {
                "id": row.id,
                "role": row.role,
                "source": row.source.split(",")[0],
                "device": device,
                "condition": condition,
                "quantity": row.quantity,
                "isotherm_c": row.isotherm_c,
                "measured": row.measured,
                "predicted": round(float(predicted), 3),
                "error": round(float(error), 3),
                "tolerance": tol,
                "within": bool(abs(error) <= tol),
                "unit": row.unit,
            }
        )
    held = [r for r in out if r["role"] == "validation" and r["quantity"] == "diameter"]
    errs = [abs(r["error"]) for r in held]
    return {
        "voxel_mm": voxel_mm,
        "discharge_fraction": (
            probe_physics.DISCHARGE_FRACTION if discharge_fraction is None else discharge_fraction
        ),
        "rows": out,
        "excluded": excluded,
        "held_out_diameter_mae_mm": float(np.mean(errs)) if errs else None,
        "held_out_diameter_max_mm": float(np.max(errs)) if errs else None,
        "held_out_rows": sum(r["role"] == "validation" for r in out),
        "held_out_sources": sorted({r["source"] for r in out if r["role"] == "validation"}),
        "runs": {
            f"{k[0]} x{k[1]} {k[3]:g}C {k[4]:g}s": {
                "diameters_mm": v.diameters_mm,
                "lethal_area_fraction": v.lethal_area_fraction,
                "wall_temperature_end_c": v.wall_temperature_end_c,
                "heat_w_mean": v.heat_w_mean,
            }
            for k, v in cache.items()
        },
    }


def plot_measured_vs_predicted(table: dict, ax=None):
    """Measured against predicted, one panel per kind of quantity (calibration filled), on
    ``ax`` (three Axes; default a new pyplot-free Figure). Returns the three Axes."""
    from cryoneuro.plotting import figure_and_axes_row

    kinds = [
        ("diameter", "−30 °C lethal-ice diameter (mm)"),
        ("area_fraction", "lethal / iceball area"),
        ("ratio", "1.7 mm / 2.4 mm probe"),
    ]
    _, ax = figure_and_axes_row(ax, 3, (12, 4))
    for a, (kind, label) in zip(ax, kinds, strict=True):
        rows = [r for r in table["rows"] if r["quantity"].endswith(kind) or r["quantity"] == kind]
        if not rows:
            a.set_visible(False)
            continue
        m = np.array([r["measured"] for r in rows])
        p = np.array([r["predicted"] for r in rows])
        lo, hi = min(m.min(), p.min()), max(m.max(), p.max())
        pad = 0.1 * (hi - lo or 1.0)
        a.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", lw=1)
        tol = TOLERANCE["diameter" if kind == "diameter" else "area_fraction"]
        a.fill_between(
            [lo - pad, hi + pad],
            [lo - pad - tol, hi + pad - tol],
            [lo - pad + tol, hi + pad + tol],
            color="0.9",
            label=f"±{tol:g}",
        )
        for r, mx, px in zip(rows, m, p, strict=True):
            cal = r["role"] == "calibration"
            a.scatter(
                mx,
                px,
                s=45,
                marker="o" if cal else "s",
                facecolor="C1" if cal else "none",
                edgecolor="C1" if cal else "C0",
                label="calibration" if cal else "held out",
            )
        handles, labels = a.get_legend_handles_labels()
        uniq = dict(zip(labels, handles, strict=True))
        a.legend(uniq.values(), uniq.keys(), fontsize=8, loc="upper left")
        a.set_xlabel(f"measured: {label}")
        a.set_ylabel("predicted")
        a.set_title(label, fontsize=10)
    return ax


def markdown_table(table: dict) -> str:
    """The validation table as Markdown (docs/validation.md)."""
    header = (
        "| row | role | source | device | condition | quantity | measured | predicted "
        "| error | tolerance |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table["rows"]:
        iso = f" {r['isotherm_c']:g} °C" if r["isotherm_c"] is not None else ""
        lines.append(
            f"| {r['id']} | {r['role']} | {r['source']} | {r['device']} | "
            f"{r['condition']} | {r['quantity']}{iso} | {r['measured']:g} {r['unit']} | "
            f"{r['predicted']:.3g} | {r['error']:+.3g} | ±{r['tolerance']:g} |"
        )
    for e in table["excluded"]:
        lines.append(f"| {e['id']} | {e['role']} | | | excluded: {e['reason']} | | | | | |")
    return "\n".join(lines)


def write_outputs(table: dict, out_dir: str | Path) -> dict[str, str]:
    """validation.json / .csv / .md and the measured-vs-predicted plot, each written atomically."""
    import json

    from cryoneuro._json import json_safe

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}

    def atomic(name: str, text: str) -> None:
        tmp = out / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)
        files[name] = str(out / name)

    atomic("validation.json", json.dumps(json_safe(table), indent=2))
    cols = [
        "id",
        "role",
        "source",
        "device",
        "condition",
        "quantity",
        "isotherm_c",
        "measured",
        "predicted",
        "error",
        "tolerance",
        "within",
        "unit",
    ]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(table["rows"])
    atomic("validation.csv", buf.getvalue())
    atomic("validation.md", markdown_table(table) + "\n")
    axes = plot_measured_vs_predicted(table)
    png = out / "measured_vs_predicted.png"
    axes[0].get_figure().savefig(str(png) + ".tmp.png", dpi=110)
    Path(str(png) + ".tmp.png").replace(png)
    files["measured_vs_predicted.png"] = str(png)
    return files
