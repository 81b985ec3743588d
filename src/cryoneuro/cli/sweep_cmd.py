"""`cryoneuro sweep CASE.toml --vary PATH=LO:HI …`: uncertainty sweeps on Dask."""

from __future__ import annotations

import tomllib
from pathlib import Path

import typer

from cryoneuro.cli._app import app, emit_json, out, user_errors
from cryoneuro.errors import CaseFileError, InputError


@app.command("sweep")
@user_errors
def sweep_cmd(
    case_file: Path = typer.Argument(..., help="Case file (TOML)."),
    vary: list[str] = typer.Option(..., "--vary", help="PATH=LO:HI, e.g. domain.tissue.perfusion=1000:8000 (repeatable)."),
    samples: int = typer.Option(50, "--samples", help="Latin-hypercube samples."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (same seed, same samples)."),
    scheduler: str = typer.Option(None, "--scheduler", help="Address of a running dask scheduler (default: a local cluster)."),
    workers: int = typer.Option(2, "--workers", help="Workers of the local cluster."),
    voxel_mm: float = typer.Option(None, "--voxel-mm", help="Override domain.voxel_mm for every sample (coarser = faster)."),
    out_dir: Path = typer.Option(Path("out/sweep"), "--out", help="Results: sweep.parquet, sweep.csv, sweep.png."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on stdout and nothing else."),
) -> None:
    """Vary case fields over ranges, run every sample on Dask, and summarise the spread."""
    from cryoneuro.cli.simulate_cmd import progress_bar
    from cryoneuro.sweep import Variation, plot_sweep, run_sweep

    try:
        data = tomllib.loads(case_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CaseFileError(f"{case_file}: no such case file") from None
    except tomllib.TOMLDecodeError as exc:
        raise CaseFileError(f"{case_file}: not valid TOML ({exc})") from None
    variations = [Variation.parse(v) for v in vary]
    if workers < 1:
        raise InputError("--workers must be at least 1")
    overrides = {"domain.voxel_mm": voxel_mm} if voxel_mm else {}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "partial.csv").unlink(missing_ok=True)
    with progress_bar(not json_output) as bar:
        task = bar.add_task("sweeping", total=samples)
        table = run_sweep(data, variations, samples=samples, seed=seed, scheduler=scheduler, workers=workers,
                          out_dir=out_dir, overrides=overrides,
                          progress=lambda done, total: bar.update(task, completed=done))
    table.to_parquet(out_dir / "sweep.parquet", index=False)
    table.to_csv(out_dir / "sweep.csv", index=False)
    plot_sweep(table, variations, out_dir / "sweep.png")
    stats = {c: {"mean": float(table[c].mean()), "sd": float(table[c].std(ddof=1)) if len(table) > 1 else 0.0,
                 "p05": float(table[c].quantile(0.05)), "p95": float(table[c].quantile(0.95))}
             for c in table.columns if c != "sample" and c not in [v.path for v in variations]}
    result = {"samples": len(table), "variations": [v.__dict__ for v in variations], "outputs": stats,
              "files": {k: str(out_dir / f) for k, f in (("parquet", "sweep.parquet"), ("csv", "sweep.csv"),
                                                           ("plot", "sweep.png"))}}
    if json_output:
        emit_json(result)
        return
    for name, s in stats.items():
        out.print(f"{name:>28}: {s['mean']:8.2f} ± {s['sd']:.2f}  (5–95 %: {s['p05']:.2f}–{s['p95']:.2f})")
    out.print(f"results in [bold]{out_dir}[/bold]")
