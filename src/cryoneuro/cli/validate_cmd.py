"""`cryoneuro validate`: the device probe model against measured ice (calibration + held-out)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cryoneuro.cli._app import app, console, emit_json, out, user_errors


@app.command("validate")
@user_errors
def validate_cmd(
    out_dir: Path = typer.Option(
        None,
        "--out",
        help="Write validation.json, validation.csv, "
        "validation.md and measured_vs_predicted.png here.",
    ),
    voxel_mm: float = typer.Option(1.0, "--voxel-mm", help="Voxel size of every phantom run."),
    calibrate: bool = typer.Option(
        False,
        "--calibrate",
        help="Refit DISCHARGE_FRACTION on the "
        "calibration row first and validate with the refitted value.",
    ),
    h_gas: float = typer.Option(
        None,
        "--h-gas",
        help="Gas-side coefficient W/m2/K for every "
        "device (sensitivity runs); default: the catalogue's.",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Predict every measured iceball of the validation data set and compare."""
    from cryoneuro import validation

    if not (0.1 <= voxel_mm <= 2.4):
        raise validation.InputError(f"--voxel-mm: {voxel_mm} must be between 0.1 and 2.4 mm")
    if h_gas is not None and not h_gas > 0:
        raise validation.InputError(f"--h-gas: {h_gas} must be a positive W/m2/K")
    kappa = None
    if calibrate:
        console.print("calibrating DISCHARGE_FRACTION on the calibration row ...")
        kappa, row = validation.calibrate(voxel_mm=voxel_mm, h_gas_w_m2k=h_gas)
        console.print(f"fitted {kappa:.5f} on {row.id}")
    with console.status("simulating the phantoms") as status:
        table = validation.validation_table(
            voxel_mm=voxel_mm,
            discharge_fraction=kappa,
            h_gas_w_m2k=h_gas,
            progress=lambda msg: status.update(f"simulating: {msg}"),
        )
    if out_dir is not None:
        table["files"] = validation.write_outputs(table, out_dir)
    if json_output:
        emit_json(table)
        return
    t = Table(title="Device probe model against measured ice")
    for col in ("row", "role", "condition", "quantity", "measured", "predicted", "error", "ok"):
        t.add_column(col)
    for r in table["rows"]:
        t.add_row(
            r["id"],
            r["role"],
            r["condition"],
            f"{r['quantity']} {r['isotherm_c'] or ''}",
            f"{r['measured']:g}",
            f"{r['predicted']:.3g}",
            f"{r['error']:+.3g}",
            "yes" if r["within"] else "[red]NO[/red]",
        )
    out.print(t)
    if table["held_out_diameter_mae_mm"] is not None:
        out.print(
            f"held-out diameters: mean |error| {table['held_out_diameter_mae_mm']:.2f} mm, "
            f"max {table['held_out_diameter_max_mm']:.2f} mm"
        )
    for e in table["excluded"]:
        out.print(f"[yellow]excluded[/yellow] {e['id']}: {e['reason']}")
    if out_dir is not None:
        out.print(f"outputs in [bold]{out_dir}[/bold]")
