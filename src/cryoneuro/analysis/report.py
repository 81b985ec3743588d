"""Analysis reports: one self-contained HTML page, a PDF of the same, every table as CSV.

Trial teams read the page, statisticians re-use the CSVs, and the PDF goes into the trial
master file. Every table and figure gets a stable file name so that a re-run overwrites
exactly what it wrote before; files are written to a temporary name and renamed, so an
interrupted run never leaves a half-written table.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, select_autoescape

from cryoneuro import __version__


@dataclass
class Table:
    """A result table; written to ``tables/<name>.csv`` and shown in the report."""

    name: str
    title: str
    frame: pd.DataFrame
    note: str = ""


@dataclass
class Figure:
    """A matplotlib figure; written to ``figures/<name>.png`` and embedded in the report."""

    name: str
    title: str
    figure: Any
    caption: str = ""


@dataclass
class Section:
    """A heading with a paragraph and its tables and figures, in order."""

    title: str
    text: str = ""
    items: list[Table | Figure] = field(default_factory=list)


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1a1a1a;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.2rem;border-bottom:2px solid #0057b8;padding-bottom:.2rem;margin-top:2rem}
h3{font-size:1rem;margin-bottom:.3rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}
th{background:#f2f5fa}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd;border-radius:4px}
.small{color:#555;font-size:.85rem} .note{color:#444;font-size:.85rem;margin-top:0}
</style></head><body>
<h1>{{ title }}</h1>
<div class="small">{{ subtitle }} · cryoneuro {{ version }} · {{ created }} · research use only (NICE HTG652)</div>
{% for s in sections %}<h2>{{ s.title }}</h2>{% if s.text %}<p>{{ s.text }}</p>{% endif %}
{% for it in s.entries %}{% if it.kind == "table" %}<h3>{{ it.title }}</h3>{{ it.html|safe }}
<p class="note">{% if it.note %}{{ it.note }} · {% endif %}CSV: <a href="tables/{{ it.name }}.csv">tables/{{ it.name }}.csv</a></p>
{% else %}<h3>{{ it.title }}</h3><p><img src="{{ it.src }}" alt="{{ it.title }}"></p>{% if it.caption %}<p class="note">{{ it.caption }}</p>{% endif %}{% endif %}
{% endfor %}{% endfor %}
</body></html>
"""


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary name, then rename: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


#: Column names shown to a reader (the CSV files keep the machine names).
LABELS = {
    "ci_lower": "95 % CI lower",
    "ci_upper": "95 % CI upper",
    "n_treated": "n (treated)",
    "n_control": "n (control)",
    "p_value": "p",
    "df": "df (Satterthwaite)",
    "se": "SE",
    "rd_ci_lower": "RD 95 % CI lower",
    "rd_ci_upper": "RD 95 % CI upper",
    "rr_ci_lower": "RR 95 % CI lower",
    "rr_ci_upper": "RR 95 % CI upper",
    "or_ci_lower": "OR 95 % CI lower",
    "or_ci_upper": "OR 95 % CI upper",
    "hk_ci_lower": "HK 95 % CI lower",
    "hk_ci_upper": "HK 95 % CI upper",
    "pi_lower": "95 % PI lower",
    "pi_upper": "95 % PI upper",
    "tau2": "τ²",
    "tau2_ci_lower": "τ² 95 % CI lower",
    "tau2_ci_upper": "τ² 95 % CI upper",
    "I2_percent": "I² (%)",
    "Q_df": "Q df",
    "Q_p": "Q p",
    "fisher_p": "Fisher exact p",
    "median_days": "median, days",
    "median_ci_lower": "median 95 % CI lower",
    "median_ci_upper": "median 95 % CI upper",
    "logrank_p": "log-rank p",
    "wtp_gbp_per_qaly": "willingness to pay, £/QALY",
    "cost_gbp": "cost, £",
}


def column_label(name: str) -> str:
    """A readable column heading: known names from :data:`LABELS`, else underscores to spaces."""
    return LABELS.get(name, str(name).replace("_", " "))


def _format_frame(frame: pd.DataFrame) -> str:
    def fmt(value: Any) -> str:
        if isinstance(value, float):
            if value != value:  # NaN
                return "–"
            return (
                f"{value:.3g}" if abs(value) >= 1000 or (0 < abs(value) < 0.01) else f"{value:.2f}"
            )
        return str(value)

    shown = frame.rename(columns=column_label)
    return shown.to_html(
        index=False, border=0, na_rep="–", formatters={c: fmt for c in shown.columns}, escape=True
    )


def write_report(
    out_dir: str | Path,
    title: str,
    sections: list[Section],
    *,
    subtitle: str = "",
    stem: str = "report",
) -> dict[str, Path]:
    """Write ``<stem>.html``, ``<stem>.pdf``, ``tables/*.csv`` and ``figures/*.png``.

    Returns the paths written, keyed ``html``, ``pdf`` and ``table:<name>`` / ``figure:<name>``.
    """
    from matplotlib.backends.backend_pdf import PdfPages

    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    rendered = []
    for section in sections:
        items = []
        for item in section.items:
            if isinstance(item, Table):
                path = out / "tables" / f"{item.name}.csv"
                atomic_write(path, item.frame.to_csv(index=False).encode("utf-8"))
                written[f"table:{item.name}"] = path
                items.append(
                    {
                        "kind": "table",
                        "name": item.name,
                        "title": item.title,
                        "note": item.note,
                        "html": _format_frame(item.frame),
                    }
                )
            else:
                buffer = io.BytesIO()
                item.figure.savefig(buffer, format="png", dpi=130, bbox_inches="tight")
                png = buffer.getvalue()
                path = out / "figures" / f"{item.name}.png"
                atomic_write(path, png)
                written[f"figure:{item.name}"] = path
                items.append(
                    {
                        "kind": "figure",
                        "title": item.title,
                        "caption": item.caption,
                        "src": "data:image/png;base64," + base64.b64encode(png).decode(),
                    }
                )
        rendered.append({"title": section.title, "text": section.text, "entries": items})
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        Environment(autoescape=select_autoescape(default=True))
        .from_string(_TEMPLATE)
        .render(
            title=title, subtitle=subtitle, version=__version__, created=created, sections=rendered
        )
    )
    html_path = out / f"{stem}.html"
    atomic_write(html_path, page.encode("utf-8"))
    written["html"] = html_path

    pdf_path = out / f"{stem}.pdf"
    tmp_pdf = pdf_path.with_name(pdf_path.name + ".tmp")
    with PdfPages(tmp_pdf) as pdf:
        lines = [title, subtitle, f"cryoneuro {__version__}, {created} — research use only", ""]
        for section in sections:
            lines += ["", section.title.upper()] + ([section.text] if section.text else [])
            for item in section.items:
                if isinstance(item, Table):
                    lines += ["", item.title]
                    lines += _pdf_table(item.frame)
        _text_pages(pdf, lines)
        for section in sections:
            for item in section.items:
                if isinstance(item, Figure):
                    item.figure.suptitle(item.title, fontsize=10)
                    pdf.savefig(item.figure)
    tmp_pdf.replace(pdf_path)
    written["pdf"] = pdf_path
    return written


#: Characters per line of a PDF text page (A4 portrait, 6.5 pt monospace).
PDF_WIDTH = 118


def _pdf_table(frame: pd.DataFrame) -> list[str]:
    """Every row of a table as text; columns split into blocks that fit the page width."""
    if frame.empty:
        return ["(no rows)"]
    shown = frame.rename(columns=column_label)
    text = shown.to_string(index=False, max_colwidth=40, float_format=lambda v: f"{v:.4g}")
    lines = text.splitlines()
    if max(len(line) for line in lines) <= PDF_WIDTH:
        return lines
    # too wide: print the columns in blocks, the first column repeated in each block
    out: list[str] = []
    columns = list(shown.columns)
    block: list[str] = []
    for column in columns[1:]:
        trial = shown[[columns[0], *block, column]].to_string(
            index=False, max_colwidth=40, float_format=lambda v: f"{v:.4g}"
        )
        if block and max(len(line) for line in trial.splitlines()) > PDF_WIDTH:
            out += (
                shown[[columns[0], *block]]
                .to_string(index=False, max_colwidth=40, float_format=lambda v: f"{v:.4g}")
                .splitlines()
            )
            out.append("")
            block = []
        block.append(column)
    out += (
        shown[[columns[0], *block]]
        .to_string(index=False, max_colwidth=40, float_format=lambda v: f"{v:.4g}")
        .splitlines()
    )
    return out


def _text_pages(pdf: Any, lines: list[str], per_page: int = 60) -> None:
    """Monospace text pages; long lines are wrapped at :data:`PDF_WIDTH`, never cut."""
    import textwrap

    from matplotlib.figure import Figure as MplFigure

    wrapped: list[str] = []
    for line in lines:
        wrapped += textwrap.wrap(
            line, PDF_WIDTH, subsequent_indent="  ", replace_whitespace=False, drop_whitespace=False
        ) or [""]
    lines = wrapped
    for start in range(0, max(len(lines), 1), per_page):
        fig = MplFigure(figsize=(8.27, 11.69))
        fig.text(
            0.06,
            0.97,
            "\n".join(lines[start : start + per_page]),
            va="top",
            family="monospace",
            fontsize=6.5,
        )
        pdf.savefig(fig)
