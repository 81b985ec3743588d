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


def _format_frame(frame: pd.DataFrame) -> str:
    def fmt(value: Any) -> str:
        if isinstance(value, float):
            if value != value:  # NaN
                return "–"
            return f"{value:.3g}" if abs(value) >= 1000 or (0 < abs(value) < 0.01) else f"{value:.2f}"
        return str(value)

    return frame.to_html(index=False, border=0, na_rep="–", formatters={
        c: fmt for c in frame.columns}, escape=True)


def write_report(out_dir: str | Path, title: str, sections: list[Section], *, subtitle: str = "",
                 stem: str = "report") -> dict[str, Path]:
    """Write ``<stem>.html``, ``<stem>.pdf``, ``tables/*.csv`` and ``figures/*.png``.

    Returns the paths written, keyed ``html``, ``pdf`` and ``table:<name>`` / ``figure:<name>``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
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
                items.append({"kind": "table", "name": item.name, "title": item.title,
                              "note": item.note, "html": _format_frame(item.frame)})
            else:
                buffer = io.BytesIO()
                item.figure.savefig(buffer, format="png", dpi=130, bbox_inches="tight")
                png = buffer.getvalue()
                path = out / "figures" / f"{item.name}.png"
                atomic_write(path, png)
                written[f"figure:{item.name}"] = path
                items.append({"kind": "figure", "title": item.title, "caption": item.caption,
                              "src": "data:image/png;base64," + base64.b64encode(png).decode()})
        rendered.append({"title": section.title, "text": section.text, "entries": items})
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = Environment(autoescape=select_autoescape(default=True)).from_string(_TEMPLATE).render(
        title=title, subtitle=subtitle, version=__version__, created=created, sections=rendered)
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
                    lines += item.frame.head(25).to_string(index=False, max_colwidth=28,
                                                           float_format=lambda v: f"{v:.3g}"
                                                           ).splitlines()
        _text_pages(pdf, lines)
        for section in sections:
            for item in section.items:
                if isinstance(item, Figure):
                    item.figure.suptitle(item.title, fontsize=10)
                    pdf.savefig(item.figure)
    tmp_pdf.replace(pdf_path)
    written["pdf"] = pdf_path
    for section in sections:
        for item in section.items:
            if isinstance(item, Figure):
                plt.close(item.figure)
    return written


def _text_pages(pdf: Any, lines: list[str], per_page: int = 60) -> None:
    import matplotlib.pyplot as plt

    for start in range(0, max(len(lines), 1), per_page):
        fig = plt.figure(figsize=(8.27, 11.69))
        fig.text(0.06, 0.97, "\n".join(lines[start:start + per_page]), va="top",
                 family="monospace", fontsize=6.5)
        pdf.savefig(fig)
        plt.close(fig)
