"""`cryoneuro simulate CASE.toml`: run the thermal engine on a case file."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cryoneuro import input_checks as limits
from cryoneuro.cli._app import app, console, emit_json, out, user_errors
from cryoneuro.errors import CaseFileError, InputError


def progress_bar(enabled: bool = True) -> Progress:
    """The bar every long command shows (on stderr, so --json output stays clean)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )


@app.command("simulate")
@user_errors
def simulate_cmd(
    case_file: Path = typer.Argument(..., help="Case file (TOML); see docs/case-file.md."),
    out_dir: Path = typer.Option(
        None, "--out", help="Write summary.json, slice and history PNGs and arrays here."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print one JSON object on stdout and nothing else."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Simulate the iceball of a case: isotherm volumes and extents, minimum temperatures."""
    from cryoneuro.case import load_case
    from cryoneuro.thermal import simulate
    from cryoneuro.thermal.summary import summarise

    case = load_case(case_file)  # refuses too large a grid or protocol before allocating
    levels = case.output.isotherms_c
    try:
        model = case.model()
        with progress_bar(not quiet) as bar:
            task = bar.add_task("simulating", total=1.0)
            result = simulate(
                model,
                case.phases(),
                **case.simulate_options(),
                progress=lambda f, label: bar.update(task, completed=f, description=label),
            )
    except MemoryError:  # within solver.max_cells, but more than this machine has
        cells = limits.cells_for(case.domain.size_mm, case.domain.voxel_mm)
        raise CaseFileError(
            f"{case_file.name}: domain: not enough memory for {cells:,} cells (about "
            f"{cells * 190 / 1e9:.1f} GB); use larger domain.voxel_mm or a smaller "
            "domain.size_mm"
        ) from None
    summary = summarise(result, levels)
    summary["case"] = str(case_file)
    summary["warnings"] = case.validity_warnings()
    if out_dir is not None:
        summary["files"] = write_outputs(result, summary, out_dir, levels)
    if json_output:
        emit_json(summary)
        return
    table = Table(title=f"Iceball — {case_file.name}")
    for col in ("isotherm", "volume (ml)", "diameter (mm)", "length (mm)"):
        table.add_column(col, justify="right")
    for level, m in summary["isotherms"].items():
        table.add_row(
            f"{level} °C",
            f"{m['volume_ml']:.2f}",
            f"{m['diameter_mm']:.1f}",
            f"{m['length_mm']:.1f}",
        )
    out.print(table)
    out.print(
        f"minimum tissue temperature {summary['min_temperature_c']:.1f} °C; "
        f"{result.steps} steps of up to {result.time_step_s * 1e3:.1f} ms in "
        f"{result.wall_time_s:.1f} s"
    )
    for p in summary["probes"]:
        if p["wall_temperature_end_of_freeze_c"] is not None:
            out.print(
                f"{p['name']}: {p['drive']} drive, wall "
                f"{p['wall_temperature_end_of_freeze_c']:.1f} °C "
                f"at the end of the freeze, mean cooling {p['mean_cooling_during_freezes_w']:.1f} W"
            )
    for w in summary["warnings"]:
        out.print(f"[yellow]outside the validated range:[/yellow] {w}")
    if out_dir is not None:
        out.print(f"outputs in [bold]{out_dir}[/bold]")


def write_outputs(result, summary: dict, out_dir: Path, levels) -> dict[str, str]:
    """Write the pictures, the summary and the arrays; returns the paths written."""
    import json

    import numpy as np

    from cryoneuro.thermal.figures import plot_point_histories, plot_slices

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out_dir}: cannot create the folder ({exc.strerror})") from None
    files = {
        "slices_min": str(
            plot_slices(result, out_dir / "isotherms_min.png", field="min", isotherms_c=levels)
        ),
        "slices_final": str(
            plot_slices(
                result,
                out_dir / "isotherms_final.png",
                field="final",
                isotherms_c=levels,
                title="Temperature at the end of the protocol",
            )
        ),
    }
    hist = plot_point_histories(result, out_dir / "point_histories.png")
    if hist is not None:
        files["point_histories"] = str(hist)
    arrays = out_dir / "fields.npz"
    np.savez_compressed(
        arrays,
        min_temperature_c=result.min_temperature_c.astype(np.float32),
        final_temperature_c=result.temperature_c.astype(np.float32),
        time_below_s=result.time_below_s,
        thresholds_c=result.thresholds_c,
        voxel_mm=result.grid.voxel_mm,
    )
    files["fields"] = str(arrays)
    summary_path = out_dir / "summary.json"
    tmp = summary_path.with_suffix(".json.tmp")
    tmp.write_text(
        json.dumps({**summary, "files": files}, indent=2, default=float), encoding="utf-8"
    )
    tmp.replace(summary_path)  # atomic: never a half-written summary
    files["summary"] = str(summary_path)
    return files
