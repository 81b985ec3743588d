"""The plan report's tables — one definition for the HTML page and the PDF.

Why: a radiologist reads a plan as a set of short tables (the probes and the protocol, the
iceball's isotherms, each structure's temperature against its limit, the block along the
nerve, the relief estimate beside what published series observed, the warnings with their
sources), each quantity with its unit, not as ``key=value`` lines. :func:`report_tables` builds
them from a :class:`~cryoneuro.planning.plan.Plan` alone (so a stored plan can be re-reported);
:func:`pdf_pages` lays them out on A4 pages with matplotlib tables, a new page when one is full.

Unknown keys (a newer planner may add fields) are not dropped: they are shown with a label made
from the key and the unit its suffix names (``_mm``, ``_c``, ``_s``, ``_ml``, ``_w``).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

from cryoneuro.planning.plan import Plan


@dataclass
class Table:
    """A titled table of strings (the first column names the row)."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""
    #: relative column widths (default: from the content)
    widths: list[float] = field(default_factory=list)


#: Known keys → (label, unit). Units are those of the value as stored in the plan.
LABELS: dict[str, tuple[str, str]] = {
    "complete_block": ("complete block (whole cross-section at or below the threshold)", ""),
    "blocked_length_mm": ("blocked length along the nerve", "mm"),
    "neurotmesis_risk": ("neurotmesis risk (a point at or below the neurotmesis range)", ""),
    "lesion_proximal_end_mm": ("lesion's proximal edge (arc length; regrowth starts here)", "mm"),
    "lesion_distal_end_mm": ("lesion's distal edge (arc length)", "mm"),
    "warmest_min_c": ("warmest point of the coldest cross-section", "°C"),
    "coldest_min_c": ("coldest point on the nerve", "°C"),
    "unsampled_stations": ("stations without a temperature (not counted)", ""),
    "stations_not_counted": ("stations not counted (section, sampling or bulb rule)", ""),
    "block_proximal_to_mm": ("block counts proximal to (bulb's widest section, arc length)", "mm"),
    "target_volume_ml": ("target volume", "ml"),
    "min_temperature_c": ("minimum temperature", "°C"),
    "max_temperature_c": ("maximum of the minimum temperature", "°C"),
    "limit_c": ("limit", "°C"),
    "margin_c": ("margin to the limit", "°C"),
    "distance_from_0c_mm": ("distance from the 0 °C isotherm", "mm"),
    "distance_from_-20c_mm": ("distance from the −20 °C isotherm", "mm"),
}
_UNIT_SUFFIX = {"_mm": "mm", "_c": "°C", "_s": "s", "_ml": "ml", "_w": "W", "_days": "days"}


def label(key: str) -> tuple[str, str]:
    """(label, unit) of a plan key: the known label, else one made from the key and its suffix."""
    if key in LABELS:
        return LABELS[key]
    m = re.fullmatch(r"fraction_at_or_below_(-?[\d.]+)_c", key)
    if m:
        return (f"fraction of the target at or below {fmt(float(m.group(1)), '°C')}", "%")
    for suffix, unit in _UNIT_SUFFIX.items():
        if key.endswith(suffix):
            return key[: -len(suffix)].replace("_", " "), unit
    return key.replace("_", " "), ""


def fmt(value: Any, unit: str = "") -> str:
    """A value as a clinician reads it: yes/no, 3 significant figures, − for minus, – for none."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if unit == "%" and isinstance(value, int | float):
        return f"{100 * value:.0f} %"
    if isinstance(value, float):
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        if "e" in text:
            text = f"{value:.1f}"
    elif isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    else:
        text = str(value)
    text = text.replace("-", "−") if re.fullmatch(r"-[\d.]+", text) else text
    return f"{text} {unit}".strip() if unit and unit != "%" else text


def _vec(v) -> str:
    return "(" + ", ".join(f"{x:.1f}" for x in v) + ")"


def probes_table(plan: Plan) -> Table:
    rows = []
    for p in plan.probes:
        if p.drive == "device":
            wall = (
                f"device model: {fmt(p.wall_temperature_end_c, '°C')} at the end of the freeze; "
                f"gas {fmt(p.tip_temperature_c, '°C')}; {fmt(p.mean_cooling_w, 'W')} mean"
            )
        else:
            wall = f"held at {fmt(p.tip_temperature_c, '°C')}"
        rows.append(
            [
                p.name,
                f"{p.device or '–'} ({p.gas or '–'})",
                _vec(p.tip_mm),
                _vec(p.direction),
                f"{p.diameter_mm:g} mm × {p.active_length_mm:g} mm",
                wall,
            ]
        )
    return Table(
        "Probes",
        [
            "probe",
            "device (gas)",
            "tip, LPS (mm)",
            "direction (tip → handle)",
            "Ø × active",
            "wall",
        ],
        rows,
        widths=[0.8, 2.2, 1.4, 1.5, 1.3, 3.0],
    )


def protocol_table(plan: Plan) -> Table:
    rows, t = [], 0.0
    for i, ph in enumerate(plan.protocol, start=1):
        t += ph.duration_s
        rows.append(
            [
                str(i),
                ph.kind,
                f"{ph.duration_s:g} s",
                f"{t:g} s",
                "–" if ph.temperature_c is None else fmt(ph.temperature_c, "°C"),
            ]
        )
    return Table("Protocol", ["step", "phase", "duration", "ends at", "set temperature"], rows)


def isotherms_table(plan: Plan) -> Table:
    rows = [
        [
            fmt(float(level), "°C"),
            fmt(m.volume_ml, "ml"),
            fmt(m.diameter_mm, "mm"),
            fmt(m.length_mm, "mm"),
        ]
        for level, m in plan.isotherms.items()
    ]
    return Table(
        "Iceball: isotherms of the minimum temperature",
        ["isotherm", "volume", "diameter (across the probe)", "length (along it)"],
        rows,
    )


def structures_table(plan: Plan) -> Table:
    keys: list[str] = []
    for row in plan.safety:
        keys += [k for k in row if k != "structure" and k not in keys]
    columns = ["structure"] + [" ".join(x for x in label(k) if x) for k in keys]
    rows = [
        [str(row.get("structure", "–"))] + [fmt(row.get(k), label(k)[1]) for k in keys]
        for row in plan.safety
    ]
    return Table("Adjacent structures: minimum temperature against the limit", columns, rows)


def _quantity_table(title: str, values: dict) -> Table:
    rows = []
    for k, v in values.items():
        if isinstance(v, dict):
            continue  # nested detail stays in plan.json
        name, unit = label(k)
        rows.append([name, fmt(v, unit)])
    return Table(title, ["quantity", "value"], rows, widths=[3.0, 1.0])


def boundaries_table(plan: Plan) -> Table:
    """How the skin and the arteries were modelled, and whether the plan needs skin warming."""
    b = plan.inputs.get("boundaries") or {}
    protection = plan.inputs.get("skin_protection") or {}
    skin = {
        "convective": f"room air (h = {b.get('skin_h_w_m2k', 0):g} W/m²/K at "
        f"{b.get('room_c', 0):g} °C)",
        "warm-saline": f"warm saline held at {b.get('saline_c', 0):g} °C within "
        f"{b.get('saline_radius_mm', 0):g} mm of each entry",
        "adiabatic": "adiabatic (no heat exchange: the model before issue 12)",
    }.get(b.get("skin", ""), "not recorded (plan made before boundaries were recorded)")
    rows = [["skin", skin]]
    if protection.get("tried"):
        applied = protection.get("applied")
        rows.append(
            [
                "skin protection",
                ("applied: " if applied else "tried, not enough: ")
                + f"skin minimum {protection['unprotected_skin_min_c']:.1f} °C without, "
                f"{protection['protected_skin_min_c']:.1f} °C with warm saline",
            ]
        )
    arteries = {
        "flowing": f"flowing blood at 37 °C ({b.get('artery_velocity_m_s', 0):g} m/s), open "
        "while the model runs",
        "perfused": "perfusion sink that stops once frozen",
    }.get(b.get("arteries", ""), "not recorded")
    rows.append(["arteries", arteries])
    return Table("Thermal boundaries", ["surface", "model"], rows, widths=[1.6, 6.0])


def nerve_table(plan: Plan) -> Table:
    return _quantity_table("Block along the nerve", plan.nerve)


def coverage_table(plan: Plan) -> Table:
    return _quantity_table("Target (neuroma) coverage", plan.coverage)


def relief_table(plan: Plan) -> Table:
    r = plan.relief
    if not r:
        return Table("Duration of relief", ["", ""], [["no complete block", "no relief estimate"]])
    if "regrowth_limited_estimate" not in r:  # plans made before the published-series check
        return _quantity_table("Duration of relief", r)
    e, o = r["regrowth_limited_estimate"], r["observed_in_published_series"]
    rows = [
        [
            "regrowth-limited estimate",
            f"{e['median_days']:.0f} days",
            f"{e['interval_days'][0]:.0f}–{e['interval_days'][1]:.0f} days ({e['level']:.0%})",
            f"{e['mechanism']}; {r.get('distance_mm', 0):.1f} mm from the "
            f"{r.get('distance_from', 'lesion')}",
        ]
    ]
    if "interval_days" in o:
        rows.append(
            [
                "observed in published series",
                "–",
                f"{o['interval_days'][0]}–{o['interval_days'][1]} days",
                o.get("meaning", ""),
            ]
        )
        for s in o.get("series", []):
            pain = ""
            if s.get("pain_baseline") is not None:
                pain = f"; pain {s['pain_baseline']} → {s.get('pain_follow_up')}"
            elif s.get("pain_follow_up") is not None:
                pain = f"; pain {s['pain_follow_up']} at follow-up"
            rows.append(
                ["  " + str(s["study"]), "–", f"{s['months']:g} months", f"n = {s['n']}{pain}"]
            )
    else:
        rows.append(["observed in published series", "–", "none in the evidence set", ""])
    return Table(
        "Duration of relief",
        ["", "median", "interval", "basis"],
        rows,
        note=r.get("statement", ""),
        widths=[1.8, 0.8, 1.6, 4.0],
    )


_SOURCE = re.compile(r"^(?P<text>.*?)\s*[\[(](?:source|sources|ref)s?:\s*(?P<src>[^\])]+)[\])]\s*$")


def split_warning(item: Any) -> tuple[str, str]:
    """(warning, source) of a plan warning: a dict with text/message and source, or a string
    ending in ``(source: …)`` / ``[source: …]``; otherwise the source is "–"."""
    if isinstance(item, dict):
        text = item.get("text") or item.get("message") or str(item)
        return str(text), str(item.get("source") or "–")
    m = _SOURCE.match(str(item))
    return (m.group("text"), m.group("src")) if m else (str(item), "–")


def warnings_table(plan: Plan) -> Table:
    rows = [[str(i), *split_warning(w)] for i, w in enumerate(plan.warnings, start=1)]
    return Table(
        "Warnings",
        ["#", "warning", "source"],
        rows or [["–", "none", "–"]],
        widths=[0.3, 5.0, 2.2],
    )


def trajectory_table(plan: Plan) -> Table:
    rows = []
    for i, t in enumerate(plan.trajectories, start=1):
        rows.append(
            [
                str(i),
                _vec(t.entry_mm),
                f"{t.depth_mm:.1f} mm",
                "–" if t.angle_to_skin_normal_deg is None else f"{t.angle_to_skin_normal_deg:.0f}°",
                " → ".join(str(p[0]) for p in t.path),
                "; ".join(f"{k} {v:.1f} mm" for k, v in t.clearance_mm.items()) or "–",
            ]
        )
    return Table(
        "Needle path",
        ["probe", "skin entry, LPS (mm)", "depth", "from skin normal", "passes", "clearance"],
        rows,
        widths=[0.5, 1.5, 0.7, 0.9, 2.8, 2.0],
    )


def report_tables(plan: Plan) -> list[Table]:
    """All tables of the report, in reading order."""
    return [
        probes_table(plan),
        protocol_table(plan),
        trajectory_table(plan),
        boundaries_table(plan),
        isotherms_table(plan),
        nerve_table(plan),
        coverage_table(plan),
        structures_table(plan),
        relief_table(plan),
        warnings_table(plan),
    ]


# --- PDF layout ----------------------------------------------------------------------------------
PAGE_IN = (8.27, 11.69)  # A4 portrait
MARGIN_IN = 0.5
FONT_PT = 7.5
LINE_IN = FONT_PT * 1.45 / 72  # one text line with leading
CHARS_PER_IN = 72 / (FONT_PT * 0.55)  # average glyph width ≈ 0.55 em


def _wrapped(table: Table, width_in: float) -> tuple[list[list[str]], list[float], list[int]]:
    """Cells wrapped to their column widths; (rows incl. header, width fractions, lines/row)."""
    n = len(table.columns)
    rows = table.rows or [["none"] + ["–"] * (n - 1)]
    if table.widths:
        w = list(table.widths)
    else:
        w = [
            max(
                1.2 * max((len(word) for word in table.columns[j].split()), default=0) + 2,  # bold
                0.5 * len(table.columns[j]),
                *(min(len(r[j]), 40) for r in rows),
                4,
            )
            for j in range(n)
        ]
    frac = [x / sum(w) for x in w]
    chars = [max(4, int(f * width_in * CHARS_PER_IN) - 1) for f in frac]
    out, lines = [], []
    for row in [table.columns, *rows]:
        cells = ["\n".join(textwrap.wrap(str(c), chars[j]) or [""]) for j, c in enumerate(row)]
        out.append(cells)
        lines.append(max(c.count("\n") + 1 for c in cells))
    return out, frac, lines


def draw_table(fig, table: Table, top_in: float) -> float:
    """Draw ``table`` on ``fig`` from ``top_in`` (inches from the page top); returns its height."""
    width = PAGE_IN[0] - 2 * MARGIN_IN
    cells, frac, lines = _wrapped(table, width)
    title_h = 0.28
    note = textwrap.wrap(table.note, int(width * CHARS_PER_IN)) if table.note else []
    body_h = sum(n * LINE_IN + 0.06 for n in lines)
    height = title_h + body_h + len(note) * LINE_IN + (0.1 if note else 0.0)
    fig.text(
        MARGIN_IN / PAGE_IN[0],
        1 - (top_in + 0.18) / PAGE_IN[1],
        table.title,
        fontsize=10,
        weight="bold",
        color="#0b3d91",
    )
    ax = fig.add_axes(
        (
            MARGIN_IN / PAGE_IN[0],
            1 - (top_in + title_h + body_h) / PAGE_IN[1],
            width / PAGE_IN[0],
            body_h / PAGE_IN[1],
        )
    )
    ax.axis("off")
    tab = ax.table(
        cellText=cells[1:],
        colLabels=cells[0],
        colWidths=frac,
        cellLoc="left",
        colLoc="left",
        loc="upper left",
        bbox=(0, 0, 1, 1),
    )
    tab.auto_set_font_size(False)
    tab.set_fontsize(FONT_PT)
    for (r, _), cell in tab.get_celld().items():
        cell.set_height((lines[r] * LINE_IN + 0.06) / body_h)
        cell.set_edgecolor("#c8ced8")
        cell.set_linewidth(0.5)
        cell.PAD = 0.02
        if r == 0:
            cell.set_facecolor("#eef2f8")
            cell.get_text().set_weight("bold")
        cell.get_text().set_va("center")
    for i, text in enumerate(note):
        fig.text(
            MARGIN_IN / PAGE_IN[0],
            1 - (top_in + title_h + body_h + 0.08 + (i + 0.8) * LINE_IN) / PAGE_IN[1],
            text,
            fontsize=FONT_PT,
            style="italic",
            color="#5a2a00" if plan_contradiction(table.note) else "#333333",
        )
    return height


def plan_contradiction(text: str) -> bool:
    return text.startswith("Contradiction")


def pdf_pages(plan: Plan, header: list[str]):
    """Matplotlib figures (A4) carrying ``header`` lines then every table; new page when full."""
    from matplotlib.figure import Figure

    figs = []
    fig = Figure(figsize=PAGE_IN)
    y = MARGIN_IN
    for i, line in enumerate(header):
        fig.text(
            MARGIN_IN / PAGE_IN[0],
            1 - (y + 0.2) / PAGE_IN[1],
            line,
            fontsize=14 if i == 0 else 8.5,
            weight="bold" if i in (0, 2) else "normal",
            color=("#1b5e20" if plan.feasible else "#b71c1c") if i == 2 else "#111111",
            wrap=True,
        )
        y += 0.34 if i == 0 else 0.2
    y += 0.15
    bottom = PAGE_IN[1] - MARGIN_IN
    for table in report_tables(plan):
        _, _, lines = _wrapped(table, PAGE_IN[0] - 2 * MARGIN_IN)
        need = 0.28 + sum(n * LINE_IN + 0.06 for n in lines) + (0.5 if table.note else 0)
        if y + need > bottom and y > MARGIN_IN + 0.5:
            figs.append(fig)
            fig = Figure(figsize=PAGE_IN)
            y = MARGIN_IN
        y += draw_table(fig, table, y) + 0.22
    figs.append(fig)
    return figs
