"""`cryoneuro meta [DATA.csv] --out DIR`: random-effects meta-analysis of the published evidence.

A thin shell over :mod:`cryoneuro.analysis.meta`: parse options, run, print a Rich summary or
one JSON object (docs/contracts.md), and write the HTML/PDF/CSV report when ``--out`` is given.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.table import Table

from cryoneuro.cli._app import app, console, emit_json, out, user_errors
from cryoneuro.errors import InputError


def _fmt(value: float | None, proportion: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f} %" if proportion else f"{value:.2f}"


@app.command("meta")
@user_errors
def meta_cmd(
    data: Path = typer.Argument(
        None, help="Evidence CSV (default: the bundled data set).", show_default=False
    ),
    out_dir: Path = typer.Option(
        None, "--out", help="Write meta.html, meta.pdf, tables/, figures/ here."
    ),
    outcome: list[str] = typer.Option(
        None,
        "--outcome",
        help="pain, pain_nrs, pain_vas, "
        "pain_md, responder or complication (repeatable; default: "
        "every outcome in the file).",
    ),
    method: str = typer.Option(
        "all",
        "--method",
        help="Random-effects τ² estimator(s): dl, pm, reml, a comma list, both (dl,pm) or all.",
    ),
    measure: str = typer.Option(
        None,
        "--measure",
        help="Generic input (a CSV with yi,vi / "
        "yi,sei / ai,bi,ci,di / ai,n1i,ci,n2i): RR, OR, RD or GEN.",
    ),
    moderator: list[str] = typer.Option(
        None,
        "--moderator",
        help="Generic input: a numeric column for a REML meta-regression (repeatable).",
    ),
    r: float = typer.Option(
        0.5, "--r", help="Pre/post correlation used to impute a missing SD of the change."
    ),
    r_sensitivity: str = typer.Option(
        "0.2,0.5,0.8", "--r-sensitivity", help="Comma-separated r values for the sensitivity table."
    ),
    include_unverified: bool = typer.Option(
        False, "--include-unverified", help="Also pool rows not verified against the abstract."
    ),
    proportion_scale: str = typer.Option(
        "logit", "--proportion-scale", help="logit (default) or ft (Freeman–Tukey)."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print one JSON object on stdout and nothing else."
    ),
) -> None:
    """Pool the published evidence or a generic effects file (DL, PM and REML random effects)."""
    from cryoneuro.analysis.meta_io import is_generic, write_meta_report
    from cryoneuro.analysis.meta_run import METHODS, analyse_effects, parse_r_grid, run_meta

    method = method.strip().lower()
    methods = (
        METHODS
        if method == "all"
        else ("dl", "pm")
        if method == "both"
        else tuple(m.strip() for m in method.split(",") if m.strip())
    )
    if not methods or any(m not in METHODS for m in methods):
        raise InputError(f"--method '{method}': use dl, pm, reml, a comma list, both or all")
    if data is not None and data.is_file() and is_generic(data):
        result = analyse_effects(data, measure, methods, moderator or ())
    else:
        if measure is not None or moderator:
            raise InputError(
                "--measure and --moderator apply to a generic effects file (columns yi,vi or 2×2 "
                "counts ai,bi,ci,di); the evidence CSV has its own outcomes"
            )
        result = run_meta(
            data,
            outcomes=outcome or None,
            methods=methods,
            r=r,
            r_grid=parse_r_grid(r_sensitivity),
            include_unverified=include_unverified,
            transform=proportion_scale.strip().lower(),
        )
    payload = result.to_dict()
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise InputError(f"--out {out_dir}: exists and is not a directory; give a folder")
        if not json_output:
            console.print(f"[dim]writing report to {out_dir} …[/dim]")
        written = write_meta_report(result, out_dir)
        payload["files"] = {"html": str(written["html"]), "pdf": str(written["pdf"])}
    if json_output:
        emit_json(payload)
        return
    table = Table(title="Evidence synthesis (cryoablation of peripheral neuromas)")
    for col in ("outcome", "method", "k", "estimate [95 % CI]", "95 % PI", "τ²", "I²"):
        table.add_column(
            col,
            justify="left" if col in ("outcome", "method") else "right",
            no_wrap=col.startswith(("estimate", "outcome")),
        )
    not_pooled = []
    for name, res in result.outcomes.items():
        if not res.pooled:
            not_pooled.append(f"{name}: {res.reason}")
            continue
        prop = res.kind == "proportion"
        from cryoneuro.analysis.meta_spec import natural

        for m, p in res.pooled.items():
            d = res.display.get(m, {})
            est, lo, hi, pil, piu = (
                natural(d, key, getattr(p, key))
                for key in ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper")
            )
            table.add_row(
                name,
                m.upper(),
                str(p.k),
                f"{_fmt(est, prop)} [{_fmt(lo, prop)}, {_fmt(hi, prop)}]",
                "–" if math.isnan(pil) else f"{_fmt(pil, prop)}, {_fmt(piu, prop)}",
                f"{p.tau2:.3g}",
                f"{100 * p.i2:.0f} %",
            )
    out.print(table)
    for line in not_pooled:
        out.print(f"[dim]not pooled — {line}[/dim]")
    if "effects" in result.outcomes:
        out.print(f"[dim]{result.outcomes['effects'].axis_label}; τ² CI: Q-profile[/dim]")
    else:
        out.print(
            f"[dim]pain: mean change (points, negative = less pain); r = {result.r:g}; "
            f"{'all rows' if include_unverified else 'verified rows only'}; "
            "research use only (NICE HTG652)[/dim]"
        )
    if out_dir is not None:
        out.print(f"report: {payload['files']['html']}")
