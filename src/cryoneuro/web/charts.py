"""Small inline SVG charts for the dashboard (no JavaScript, no charting library).

Each chart carries a <title> per point (read by screen readers and shown on hover) and a
data table is rendered next to it in the template, so the numbers are never only in pixels.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

from markupsafe import Markup

PALETTE = ["#005eb8", "#d5281b", "#007f3b", "#ffb81c", "#330072", "#00a499"]
W, H = 560, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 130, 14, 40


def _frame(
    title: str, y_label: str, y_max: float, ticks: list[float], x_ticks: list[tuple[float, str]]
) -> list[str]:
    plot_h = H - TOP - BOTTOM
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" '
            f'height="{H}" role="img" aria-label="{escape(title)}" class="chart">'
        ),
        f"<title>{escape(title)}</title>",
        (
            f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{plot_h}" '
            'fill="#fff" stroke="#999"/>'
        ),
    ]
    for t in ticks:
        y = TOP + plot_h * (1 - t / y_max)
        out.append(
            f'<line x1="{LEFT - 4}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{t:g}</text>'
        )
    for x, label in x_ticks:
        out.append(
            f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" font-size="11" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    out.append(
        f'<text x="12" y="{TOP + plot_h / 2:.1f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {TOP + plot_h / 2:.1f})">{escape(y_label)}</text>'
    )
    return out


def _legend(names: list[str]) -> list[str]:
    out = []
    for i, name in enumerate(names):
        y = TOP + 12 + 18 * i
        colour = PALETTE[i % len(PALETTE)]
        out.append(
            f'<line x1="{W - RIGHT + 10}" x2="{W - RIGHT + 28}" y1="{y}" y2="{y}" '
            f'stroke="{colour}" stroke-width="3"/>'
        )
        out.append(
            f'<text x="{W - RIGHT + 32}" y="{y + 4}" font-size="11">{escape(name[:18])}</text>'
        )
    return out


def pain_chart(study: dict[str, Any]) -> Markup:
    """Mean NRS pain by visit (x: visits in schedule order) with 95 % CI bars, one line per arm."""
    visits = [
        v for v in study["visits"] if any(r["visit_code"] == v["code"] for r in study["pain"])
    ]
    if not visits:
        return Markup("")
    plot_w = W - LEFT - RIGHT
    step = plot_w / len(visits)
    xpos = {v["code"]: LEFT + step * (i + 0.5) for i, v in enumerate(visits)}
    plot_h = H - TOP - BOTTOM

    def y(value: float) -> float:
        return TOP + plot_h * (1 - max(0.0, min(10.0, value)) / 10.0)

    out = _frame(
        f"{study['study']}: mean pain (NRS) by visit, 95% CI",
        "pain (NRS 0–10)",
        10,
        [0, 2, 4, 6, 8, 10],
        [(xpos[v["code"]], v["code"]) for v in visits],
    )
    arms = sorted({r["arm_label"] for r in study["pain"]})
    for i, arm in enumerate(arms):
        colour = PALETTE[i % len(PALETTE)]
        rows = [r for r in study["pain"] if r["arm_label"] == arm]
        offset = (i - (len(arms) - 1) / 2) * 6  # keep CI bars of different arms apart
        points = [(xpos[r["visit_code"]] + offset, y(r["mean"])) for r in rows]
        if len(points) > 1:
            out.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                + " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
                + '"/>'
            )
        for r, (px, py) in zip(rows, points, strict=True):
            ci = ""
            if r["ci_low"] is not None:
                lo, hi = y(r["ci_low"]), y(r["ci_high"])
                out.append(
                    f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{lo:.1f}" y2="{hi:.1f}" '
                    f'stroke="{colour}"/>'
                )
                for yy in (lo, hi):
                    out.append(
                        f'<line x1="{px - 3:.1f}" x2="{px + 3:.1f}" y1="{yy:.1f}" '
                        f'y2="{yy:.1f}" stroke="{colour}"/>'
                    )
                ci = f" (95% CI {r['ci_low']:.2f}–{r['ci_high']:.2f})"
            out.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{colour}" '
                f'class="pain-point" data-arm="{escape(r["arm"])}" '
                f'data-visit="{escape(r["visit_code"])}" data-mean="{r["mean"]:.4f}">'
                f"<title>{escape(arm)}, {escape(r['visit_code'])}: mean "
                f"{r['mean']:.2f}{ci}, n={r['n']}</title></circle>"
            )
    out += _legend(arms)
    out.append("</svg>")
    return Markup("".join(out))


def recruitment_chart(study: dict[str, Any]) -> Markup:
    """Cumulative participants enrolled over time, one step line per site."""
    series: dict[str, list[tuple[str, int]]] = study["recruitment"]
    if not series:
        return Markup("")
    dates = [dt.date.fromisoformat(d) for s in series.values() for d, _ in s]
    first, last = min(dates), max(max(dates), dt.date.today())
    span = max((last - first).days, 1)
    top = max(n for s in series.values() for _, n in s)
    y_max = max(5, int(top * 1.15) + 1)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(day: dt.date) -> float:
        return LEFT + plot_w * (day - first).days / span

    def y(n: float) -> float:
        return TOP + plot_h * (1 - n / y_max)

    step = max(1, y_max // 5)
    out = _frame(
        f"{study['study']}: recruitment by site",
        "participants",
        y_max,
        list(range(0, y_max + 1, step)),
        [(x(first), first.isoformat()), (x(last), last.isoformat())],
    )
    names = sorted(series)
    for i, site in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        pts: list[tuple[float, float]] = [(x(first), y(0))]
        previous = 0
        for day_text, n in series[site]:
            day = dt.date.fromisoformat(day_text)
            pts += [(x(day), y(previous)), (x(day), y(n))]
            previous = n
        pts.append((x(last), y(previous)))
        out.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
            f'class="recruitment-line" data-site="{escape(site)}" data-total="{previous}" '
            'points="' + " ".join(f"{px:.1f},{py:.1f}" for px, py in pts) + '">'
            f"<title>{escape(site)}: {previous} participants</title></polyline>"
        )
    out += _legend(names)
    out.append("</svg>")
    return Markup("".join(out))
