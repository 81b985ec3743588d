"""`cryoneuro analyse DATA --out DIR`: the study analysis from tidy tables, as a report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cryoneuro.cli._app import app, emit_json, out, user_errors
from cryoneuro.errors import InputError

_STEPS = [
    "scoring",
    "participant flow",
    "change from baseline",
    "mixed model (ITT)",
    "estimands and sensitivity",
    "between-arm effects, every outcome",
    "cost-utility",
    "time to recurrence and re-intervention",
    "safety",
    "calibration of predicted relief",
    "writing the report",
]


@app.command("analyse")
@user_errors
def analyse_cmd(
    data: Path = typer.Argument(
        None,
        help="Tidy data: a folder of <table>.csv/.parquet or the registry's tidy export (.zip).",
    ),
    out_dir: Path = typer.Option(
        Path("out/analysis"),
        "--out",
        help="analysis.html, analysis.pdf, tables/*.csv, figures/*.png.",
    ),
    primary_visit: str = typer.Option(
        None, "--primary-visit", help="Visit code of the primary end point (default m3)."
    ),
    control: str = typer.Option(
        None, "--control", help="Control arm code of an RCT (default: recognised by name)."
    ),
    synthetic: str = typer.Option(
        None,
        "--synthetic",
        help="Analyse a generated study instead: rct or case-series "
        "(its tables are written to OUT/data).",
    ),
    seed: int = typer.Option(
        1, "--seed", help="Seed of the --synthetic study and of the cost-utility bootstrap."
    ),
    duplicates: str = typer.Option(
        "refuse",
        "--duplicates",
        help="refuse (default) or drop-identical: drop rows that repeat "
        "another row in every column, listed in the report; "
        "conflicting duplicates are always refused.",
    ),
    arms: str = typer.Option(
        None,
        "--arms",
        help="The protocol's arm codes, comma-separated: any other arm in the data is refused.",
    ),
    sites: str = typer.Option(
        None,
        "--sites",
        help="The protocol's site codes, comma-separated: any other site in the data is refused.",
    ),
    df_method: str = typer.Option(
        "satterthwaite",
        "--df",
        help="MMRM degrees of freedom: satterthwaite (default) or kenward-roger (us and cs).",
    ),
    covariance: str = typer.Option(
        "us",
        "--covariance",
        help="MMRM covariance across visits: us (unstructured, "
        "default), cs (compound symmetry) or ar1.",
    ),
    economics: Path = typer.Option(
        None,
        "--economics",
        help="Unit-cost CSV (item, unit_cost_gbp, source): add the "
        "cost-utility analysis (QALYs, ICER, NMB, CEAC).",
    ),
    bootstrap: int = typer.Option(
        2000, "--bootstrap", help="Bootstrap replicates of the cost-utility analysis."
    ),
    schema: bool = typer.Option(False, "--schema", help="Print the tidy format and exit."),
    json_output: bool = typer.Option(
        False, "--json", help="Print one JSON object on stdout and nothing else."
    ),
) -> None:
    """Pain, QoL and mobility change, responders, ITT effect, survival, safety, calibration."""
    from cryoneuro.analysis.tidy import load_tidy, schema_markdown, write_tidy

    if schema:
        typer.echo(schema_markdown())
        return
    if synthetic is not None:
        from cryoneuro.analysis.synthetic import SyntheticStudy, generate

        design = synthetic.replace("-", "_")
        if design not in ("rct", "case_series"):
            raise InputError(f"--synthetic must be rct or case-series (got '{synthetic}')")
        spec = (
            SyntheticStudy(seed=seed)
            if design == "rct"
            else SyntheticStudy(
                design="case_series",
                n_per_arm=40,
                effect=-3.5,
                relief_median_days=150,
                prediction_spread=0.7,
                seed=seed,
            )
        )
        dataset = generate(spec)
        write_tidy(dataset, out_dir / "data")
    elif data is None:
        raise InputError("DATA: give a tidy data folder or .zip, or --synthetic rct")
    else:
        dataset = load_tidy(data)

    from cryoneuro.analysis import rct
    from cryoneuro.analysis.study import analyse
    from cryoneuro.analysis.validate import check
    from cryoneuro.cli.simulate_cmd import progress_bar

    # check the data and the options before the bar starts, so an error stays one line
    df_method = df_method.strip().lower()
    if df_method not in ("satterthwaite", "kenward-roger"):
        raise InputError(f"--df '{df_method}': use satterthwaite or kenward-roger")
    if df_method == "kenward-roger" and covariance.strip().lower() == "ar1":
        raise InputError("--df kenward-roger is available with --covariance us or cs")
    covariance = covariance.strip().lower()
    if covariance not in ("us", "cs", "ar1"):
        raise InputError(f"--covariance '{covariance}': use us, cs or ar1")
    unit_costs = None
    if economics is not None:
        from cryoneuro.analysis.economics import load_unit_costs

        if bootstrap < 100:
            raise InputError(f"--bootstrap {bootstrap}: use at least 100 replicates")
        unit_costs = load_unit_costs(economics)

    def codes(text: str | None) -> tuple[str, ...] | None:
        return tuple(c.strip() for c in text.split(",") if c.strip()) if text else None

    checked = check(
        dataset,
        duplicates=duplicates.strip().lower().replace("-", "_"),
        arms=codes(arms),
        sites=codes(sites),
    )
    dataset = checked.data
    rct.primary_visit(dataset, primary_visit)
    if dataset.design == "rct":
        rct.arms(dataset, control)

    with progress_bar(not json_output) as bar:
        task = bar.add_task("analysing", total=len(_STEPS))
        results = analyse(
            checked,
            out_dir,
            primary_visit=primary_visit,
            control=control,
            covariance=covariance,
            df_method=df_method,
            unit_costs=unit_costs,
            bootstrap=bootstrap,
            seed=seed,
            progress=lambda msg: bar.update(
                task, completed=_STEPS.index(msg) if msg in _STEPS else 0, description=msg
            ),
        )
        bar.update(task, completed=len(_STEPS), description="done")
    if json_output:
        emit_json(results)
        return
    _summary(results)


def _summary(results: dict) -> None:
    table = Table(title=f"Study analysis ({results['design'].replace('_', ' ')})")
    table.add_column("result")
    table.add_column("value", justify="right")
    for row in results.get("change", {}).get(results["pain_outcome"], []):
        table.add_row(
            f"pain change at {row['visit']} ({row['arm']}, n={row['n']})",
            f"{row['mean_change']:.2f} ({row['ci_lower']:.2f} to {row['ci_upper']:.2f})",
        )
    for row in results.get("treatment_effect", []):
        if row["visit"] == results["primary_visit"]:
            table.add_row(
                f"{row['method']} effect at {row['visit']}",
                f"{row['effect']:.2f} ({row['ci_lower']:.2f} to {row['ci_upper']:.2f})",
            )
    for row in results.get("survival", {}).get("recurrence", []):
        table.add_row(f"median relief, days ({row['arm']})", f"{row['median_days']:.0f}")
    primary = results.get("primary_visit") or "primary visit"
    for arm, counts in results.get("flow", {}).get("arms", {}).items():
        # why primary values are absent, as in the CONSORT flow (analysis/missing.py)
        for key, label in (
            ("primary_not_done_reasons", f"{primary} not done"),
            ("primary_item_missing_codes", f"{primary} outcome item coded missing"),
        ):
            for reason, n in counts.get(key, {}).items():
                table.add_row(f"{label} ({arm}): {reason.replace('_', ' ')}", str(n))
        if counts.get("primary_no_reason"):
            table.add_row(
                f"no {primary} value, no reason recorded ({arm})", str(counts["primary_no_reason"])
            )
    out.print(table)
    out.print(f"report: {results['files']['html']}")
