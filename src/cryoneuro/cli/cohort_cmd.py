"""`cryoneuro cohort resimulate PLANS_DIR | --db URL --out DIR`: re-run every stored plan with the
current model and compare with what was stored (see :mod:`cryoneuro.cohort`).

The registry is imported here, in this CLI path only (the core never imports it), and is only
read: ``procedure.plan`` of every procedure that has one.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cryoneuro.cli._app import app, emit_json, out, require_extra, user_errors
from cryoneuro.errors import InputError

cohort_app = typer.Typer(help="Cohorts of stored plans.", no_args_is_help=True)
app.add_typer(cohort_app, name="cohort")


def plans_from_registry(url: str):
    """(stored plans, skipped) from a registry database, read-only (no write, no commit)."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session

    from cryoneuro.cohort import StoredPlan
    from cryoneuro.planning.plan import Plan
    from cryoneuro.registry.db import make_engine
    from cryoneuro.registry.models import Procedure

    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        raise InputError(f"--db {url}: no such database file")
    try:
        engine = make_engine(url)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise InputError(f"--db {url}: cannot open ({str(exc).splitlines()[0]})") from None
    plans, skipped = [], []
    try:
        with Session(engine) as session:
            rows = session.execute(
                select(Procedure.id, Procedure.procedure_date, Procedure.plan)
                .where(Procedure.plan.is_not(None))
                .order_by(Procedure.id)
            ).all()
            session.rollback()
    except SQLAlchemyError as exc:
        raise InputError(
            f"--db {url}: cannot read procedures ({str(exc).splitlines()[0][:200]})"
        ) from None
    finally:
        engine.dispose()
    for pid, date, plan in rows:
        if not plan:
            continue
        text = json.dumps(plan)
        try:
            Plan.from_json(text)
        except InputError as exc:
            skipped.append({"source": f"procedure/{pid}", "reason": str(exc)})
            continue
        plans.append(
            StoredPlan(
                f"procedure/{pid}",
                text,
                procedure_id=int(pid),
                procedure_date=date.isoformat() if date else None,
            )
        )
    return plans, skipped


@cohort_app.command("resimulate")
@user_errors
def resimulate_cmd(
    source: str = typer.Argument(
        None, help="A folder of plan.json files (searched recursively), or a registry URL."
    ),
    db: str = typer.Option(
        None, "--db", help="Registry database URL (sqlite:///registry.db, postgresql://…)."
    ),
    out_dir: Path = typer.Option(
        ..., "--out", help="cohort.parquet, cohort.csv, summary.json, then_vs_now.png."
    ),
    scheduler: str = typer.Option(
        None, "--scheduler", help="Address of a running dask scheduler (default: a local cluster)."
    ),
    workers: int = typer.Option(2, "--workers", help="Workers of the local cluster."),
    voxel_mm: float = typer.Option(
        None, "--voxel-mm", help="Force the grid (0.5 or 1.0); default: each plan's own."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print one JSON object on stdout and nothing else."
    ),
) -> None:
    """Re-simulate every stored plan with the current model; then / now / difference per plan."""
    require_extra("scale")  # the plans are re-simulated on Dask
    from cryoneuro.cli.simulate_cmd import progress_bar
    from cryoneuro.cohort import plans_from_folder, resimulate, summarise, write_outputs

    if workers < 1:
        raise InputError("--workers must be at least 1")
    if source and "://" in source:
        if db:
            raise InputError("give a registry URL either as the argument or as --db, not both")
        source, db = None, source
    if bool(source) == bool(db):
        raise InputError("give a folder of plans or --db URL (one of them)")
    items, skipped = plans_from_registry(db) if db else plans_from_folder(source)
    if not items:
        raise InputError(
            f"{db or source}: no stored cryoneuro plans found"
            + (f" ({len(skipped)} not plans)" if skipped else "")
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out_dir}: cannot create the folder ({exc.strerror})") from None
    (out_dir / "partial.csv").unlink(missing_ok=True)
    with progress_bar(not json_output) as bar:
        task = bar.add_task("re-simulating", total=len(items))
        table = resimulate(
            items,
            voxel_mm=voxel_mm,
            scheduler=scheduler,
            workers=workers,
            out_dir=out_dir,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    summary = summarise(table, skipped)
    summary["source"] = db or str(source)
    write_outputs(table, summary, out_dir)
    if json_output:
        emit_json(summary)
        return
    out.print(
        f"{summary['replayed']} of {summary['plans']} plans re-simulated with cryoneuro "
        f"{summary['software_now']}; "
        f"{summary['changed']} changed, {summary['block_changed']} with a different block verdict, "
        f"{summary['errors']} could not be replayed"
    )
    for r in summary["error_rows"]:
        out.print(f"  [yellow]{r['source']}[/yellow]: {r['status']}")
    out.print(f"results in [bold]{out_dir}[/bold]")
