"""The plan report: one self-contained HTML page (images embedded) and a PDF of the same.

What a clinician checks before freezing, in order: is the plan feasible and why not; the
iceball on the image along and across the probe; the nerve injury profile; target coverage;
the margin of every adjacent structure; the predicted duration of relief; the needle path;
and, for reproducibility, every input and the software version.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape

from cryoneuro.planning.plan import Plan

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>cryoneuro plan — {{ plan.case }}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1a1a1a;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.2rem;border-bottom:2px solid #0057b8;padding-bottom:.2rem;margin-top:2rem}
.verdict{padding:.8rem 1rem;border-radius:6px;font-weight:600;margin:1rem 0}
.ok{background:#e7f6ec;border:1px solid #2e7d32}.no{background:#fdecea;border:1px solid #c62828}
.warn{background:#fff8e1;border:1px solid #f9a825;padding:.5rem 1rem;border-radius:6px}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th{background:#f2f5fa}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd;border-radius:4px}
.small{color:#555;font-size:.85rem} pre{background:#f6f8fa;padding:.8rem;overflow:auto;font-size:.8rem}
</style></head><body>
<h1>Cryoablation plan — {{ plan.case }}</h1>
<div class="small">cryoneuro {{ plan.software_version }} · plan schema {{ plan.schema_version }} · {{ plan.created_at.strftime("%Y-%m-%d %H:%M UTC") }} · research use only (NICE HTG652)</div>
<div class="verdict {{ 'ok' if plan.feasible else 'no' }}">
{% if plan.feasible %}Feasible: complete nerve block predicted with all adjacent structures within their limits.
{% else %}Not feasible as planned:<ul>{% for r in plan.reasons %}<li>{{ r }}</li>{% endfor %}</ul>{% endif %}
</div>
{% macro table(t) %}<table><tr>{% for c in t.columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in t.rows %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>
{% if t.note %}<p class="small">{{ t.note }}</p>{% endif %}{% endmacro %}
{% if plan.warnings %}<div class="warn"><b>Warnings</b>{{ table(tables.warnings) }}</div>{% endif %}

<h2>Iceball on the image</h2>
{% for name, src in images.items() %}<p><img src="{{ src }}" alt="{{ name }}"></p>{% endfor %}
<table><tr><th>isotherm</th><th>diameter (mm)</th><th>length (mm)</th><th>volume (ml)</th></tr>
{% for level, m in plan.isotherms.items() %}<tr><td>{{ level }} °C</td><td>{{ "%.1f"|format(m.diameter_mm) }}</td><td>{{ "%.1f"|format(m.length_mm) }}</td><td>{{ "%.2f"|format(m.volume_ml) }}</td></tr>{% endfor %}
</table>

<h2>Block along the nerve</h2>
{{ table(tables.nerve) }}

<h2>Target coverage</h2>
{{ table(tables.coverage) }}

<h2>Adjacent structures</h2>
{{ table(tables.structures) }}

<h2>Duration of relief</h2>
{% set r = plan.relief %}{% if not r %}<p>No complete block: no relief estimate.</p>
{% elif r.regrowth_limited_estimate is defined %}{% set e = r.regrowth_limited_estimate %}{% set o = r.observed_in_published_series %}
<table><tr><th></th><th>median (days)</th><th>interval (days)</th><th>basis</th></tr>
<tr><td>regrowth-limited estimate</td><td>{{ "%.0f"|format(e.median_days) }}</td><td>{{ "%.0f"|format(e.interval_days[0]) }}–{{ "%.0f"|format(e.interval_days[1]) }} ({{ "%.0f"|format(100 * e.level) }} %)</td><td>{{ e.mechanism }}; {{ "%.1f"|format(r.distance_mm) }} mm from the {{ r.distance_from }}</td></tr>
<tr><td>observed in published series</td><td>–</td><td>{% if o.interval_days is defined %}{{ o.interval_days[0] }}–{{ o.interval_days[1] }}{% else %}none{% endif %}</td><td>{{ o.meaning }}{% for x in o.series %}<br>{{ x.study }} (n = {{ x.n }}): {{ "%g"|format(x.months) }} months{% if x.pain_baseline %}, pain {{ x.pain_baseline }} → {{ x.pain_follow_up }}{% elif x.pain_follow_up %}, pain {{ x.pain_follow_up }} at follow-up{% endif %}{% endfor %}{% for u in o.unverified %}<br><i>{{ u }}</i>{% endfor %}</td></tr></table>
<p class="{{ 'warn' if r.agreement == 'contradiction' else 'small' }}">{{ r.statement }}</p>
{% else %}<table>{% for k, v in r.items() %}<tr><td>{{ k|replace("_", " ") }}</td><td>{{ fmt(v) }}</td></tr>{% endfor %}</table>{% endif %}

<h2>Probes, protocol and needle path</h2>
<table><tr><th>probe</th><th>device</th><th>tip (mm)</th><th>direction</th><th>diameter (mm)</th><th>active length (mm)</th><th>probe wall</th></tr>
{% for p in plan.probes %}<tr><td>{{ p.name }}</td><td>{% if p.device %}{{ p.device }} ({{ p.gas }}, device model){% else %}{{ p.gas or "" }} (held temperature){% endif %}</td><td>{{ vec(p.tip_mm) }}</td><td>{{ vec(p.direction) }}</td><td>{{ p.diameter_mm }}</td><td>{{ p.active_length_mm }}</td><td>{% if p.drive == "device" %}{{ fmt(p.wall_temperature_end_c) }} °C at the end of the freeze (gas {{ fmt(p.tip_temperature_c) }} °C; mean cooling {{ fmt(p.mean_cooling_w) }} W){% else %}held at {{ fmt(p.tip_temperature_c) }} °C{% endif %}</td></tr>{% endfor %}</table>
<p>{% for ph in plan.protocol %}{{ ph.kind }} {{ "%g"|format(ph.duration_s) }} s{% if not loop.last %} → {% endif %}{% endfor %}</p>
{% for t in plan.trajectories %}<p>Entry {{ vec(t.entry_mm) }} → tip {{ vec(t.tip_mm) }}: depth {{ "%.1f"|format(t.depth_mm) }} mm{% if t.angle_to_skin_normal_deg is not none %}, {{ "%.0f"|format(t.angle_to_skin_normal_deg) }}° from the skin normal{% endif %}; passes {{ t.path|map(attribute=0)|join(" → ") }}.
{% for v in t.violations %}<br><b>✗ {{ v }}</b>{% endfor %}{% for w in t.warnings %}<br>⚠ {{ w }}{% endfor %}</p>{% endfor %}

<h2>Inputs (for reproducibility)</h2>
<pre>{{ inputs }}</pre>
</body></html>
"""


#: File names of the report inside its folder (known before it is written, so a plan can list them).
REPORT_HTML, REPORT_PDF = "report.html", "report.pdf"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    return html.escape(str(value))


def _embed(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def write_report(plan: Plan, out_dir: str | Path, images: dict[str, Path]) -> dict[str, Path]:
    """Write ``report.html`` (images embedded) and ``report.pdf``; returns their paths."""
    import json

    out = Path(out_dir)
    env = Environment(autoescape=select_autoescape(default=True))
    from cryoneuro.planning import report_tables as rt

    page = env.from_string(_TEMPLATE).render(
        plan=plan,
        tables={
            "nerve": rt.nerve_table(plan),
            "coverage": rt.coverage_table(plan),
            "structures": rt.structures_table(plan),
            "warnings": rt.warnings_table(plan),
        },
        images={k: _embed(Path(p)) for k, p in images.items() if Path(p).is_file()},
        fmt=_fmt,
        vec=lambda v: "(" + ", ".join(f"{x:.1f}" for x in v) + ")",
        inputs=json.dumps(plan.inputs, indent=2, default=str),
    )
    html_path = out / REPORT_HTML
    tmp = html_path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(html_path)
    return {"html": html_path, "pdf": _write_pdf(plan, out / REPORT_PDF, images)}


def _write_pdf(plan: Plan, path: Path, images: dict[str, Path]) -> Path:
    """A PDF of the same content: the verdict and the report's tables
    (:mod:`cryoneuro.planning.report_tables`, matplotlib tables on A4), then one page per image."""
    import matplotlib
    import matplotlib.image as mpimg
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    from cryoneuro.planning.report_tables import pdf_pages

    header = [
        f"Cryoablation plan — {plan.case}",
        f"cryoneuro {plan.software_version}, plan schema {plan.schema_version}, "
        f"{plan.created_at:%Y-%m-%d %H:%M} UTC — research use only (NICE HTG652)",
        "Feasible: complete nerve block with all adjacent structures within their limits"
        if plan.feasible
        else "Not feasible: " + "; ".join(plan.reasons),
    ]
    tmp = path.with_suffix(".pdf.tmp")
    # Type 3 fonts (matplotlib's default): embedding TrueType (Type 42) subsets every font
    # with fontTools, a third of the PDF's time (issue 17 item 4); the text stays selectable
    with (
        matplotlib.rc_context({"pdf.fonttype": 3}),
        PdfPages(tmp, metadata={"Title": f"cryoneuro plan {plan.case}"}) as pdf,
    ):
        for fig in pdf_pages(plan, [html.unescape(h) for h in header]):
            pdf.savefig(fig)
        for title, p in images.items():
            if Path(p).is_file():
                fig = Figure(figsize=(11.69, 8.27))
                fig.text(0.02, 0.97, title, fontsize=11, weight="bold", va="top")
                ax = fig.add_axes((0.01, 0.01, 0.98, 0.92))
                # "none": the PNG's own pixels go into the PDF, not a resampled copy
                ax.imshow(mpimg.imread(p), interpolation="none")
                ax.axis("off")
                pdf.savefig(fig)
    tmp.replace(path)
    return path
