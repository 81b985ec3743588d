"""`cryoneuro design`: sample size of a trial (continuous, binary, non-inferiority)."""

from __future__ import annotations

import typer
from rich.table import Table

from cryoneuro.cli._app import app, emit_json, out, user_errors
from cryoneuro.errors import InputError


@app.command("design")
@user_errors
def design_cmd(
    kind: str = typer.Argument(..., help="continuous, binary or non-inferiority."),
    difference: float = typer.Option(
        None, "--difference", help="continuous: difference to detect (outcome units)."
    ),
    sd: float = typer.Option(None, "--sd", help="continuous / non-inferiority: outcome SD."),
    correlation: float = typer.Option(
        0.0, "--correlation", help="continuous: baseline–follow-up correlation (ANCOVA); 0 = none."
    ),
    p_treated: float = typer.Option(None, "--p-treated", help="binary: proportion, treated."),
    p_control: float = typer.Option(None, "--p-control", help="binary: proportion, control."),
    margin: float = typer.Option(None, "--margin", help="non-inferiority margin (units)."),
    true_difference: float = typer.Option(
        0.0, "--true-difference", help="non-inferiority: assumed true difference."
    ),
    alpha: float = typer.Option(
        None,
        "--alpha",
        help="significance level (two-sided 0.05; one-sided 0.025 for non-inferiority).",
    ),
    power: float = typer.Option(0.9, "--power", help="power (default 0.9)."),
    dropout: float = typer.Option(0.0, "--dropout", help="expected dropout fraction."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Participants per arm for a randomised trial of cryoablation (NICE HTG652 research)."""
    from cryoneuro.analysis import design

    kind = kind.strip().lower()

    def need(**values: float | None) -> None:
        missing = [k for k, v in values.items() if v is None]
        if missing:
            raise InputError(f"{kind} needs --{', --'.join(m.replace('_', '-') for m in missing)}")

    if kind == "continuous":
        need(difference=difference, sd=sd)
        result = design.continuous(
            difference,
            sd,
            alpha=alpha or 0.05,
            power=power,
            correlation=correlation,
            dropout=dropout,
        )
    elif kind == "binary":
        need(p_treated=p_treated, p_control=p_control)
        result = design.binary(
            p_treated, p_control, alpha=alpha or 0.05, power=power, dropout=dropout
        )
    elif kind in ("non-inferiority", "noninferiority", "ni"):
        need(margin=margin, sd=sd)
        result = design.non_inferiority(
            margin,
            sd,
            true_difference=true_difference,
            alpha=alpha or 0.025,
            power=power,
            dropout=dropout,
        )
    else:
        raise InputError(f"design '{kind}': use continuous, binary or non-inferiority")
    if json_output:
        emit_json(result.to_dict())
        return
    table = Table(title=f"Sample size: {result.design}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in result.to_dict().items():
        table.add_row(key.replace("_", " "), str(value))
    out.print(table)
