"""`cryoneuro probe GAS`: tip temperature and cooling per unit mass flow; `cryoneuro probes`."""

from __future__ import annotations

import typer
from rich.table import Table

from cryoneuro.cli._app import app, emit_json, out, user_errors
from cryoneuro.errors import InputError


def _catalogue(json_output: bool) -> None:
    from cryoneuro.probe import CATALOGUE, cooling_capacity_w, mass_flow_g_s

    if json_output:
        emit_json([m.to_dict() for m in CATALOGUE.values()])
        return
    table = Table(title="Probe catalogue (generic device classes)")
    table.add_column("name", no_wrap=True)
    for col in ("status", "gauge", "Ø mm", "active mm", "gas", "flow g/s", "capacity W"):
        table.add_column(col, justify="right" if ("mm" in col or " " in col) else "left")
    for m in CATALOGUE.values():
        table.add_row(
            m.name,
            m.status,
            m.gauge,
            f"{m.diameter_mm:g}",
            f"{m.active_length_mm:g}",
            m.gas,
            f"{mass_flow_g_s(m):.3f}",
            f"{cooling_capacity_w(m):.1f}",
        )
    out.print(table)
    out.print("[dim]sources, published iceballs and assumptions: cryoneuro probes --json[/dim]")


@app.command("probe")
@user_errors
def probe_cmd(
    gas: str = typer.Argument(
        None, help="argon, nitrogen, nitrous-oxide, carbon-dioxide or helium."
    ),
    supply_bar: float = typer.Option(
        None, "--supply-bar", help="Supply pressure, bar absolute (default per gas)."
    ),
    exhaust_bar: float = typer.Option(
        1.01325, "--exhaust-bar", help="Exhaust pressure, bar absolute."
    ),
    supply_temperature_c: float = typer.Option(
        20.0, "--supply-temperature-c", help="Supply temperature, C."
    ),
    precooled: bool = typer.Option(
        True,
        "--precooled/--single-pass",
        help="Ideal counter-flow recuperator (default) or single pass.",
    ),
    supply_phase: str = typer.Option(
        "liquid", "--supply-phase", help="liquid|vapour: what a saturated cylinder delivers."
    ),
    list_models: bool = typer.Option(False, "--list", help="List the probe catalogue instead."),
    json_output: bool = typer.Option(
        False, "--json", help="Print one JSON object on stdout and nothing else."
    ),
) -> None:
    """Steady J-T tip temperature and cooling per unit mass flow (W per g/s) of a gas probe."""
    if list_models:
        _catalogue(json_output)
        return
    if gas is None:
        raise InputError(
            "GAS: give a gas (argon, nitrogen, nitrous-oxide, carbon-dioxide, helium) or --list"
        )
    from cryoneuro.probe import tip_state

    state = tip_state(
        gas,
        supply_bar=supply_bar,
        exhaust_bar=exhaust_bar,
        supply_temperature_c=supply_temperature_c,
        precooled=precooled,
        supply_phase=supply_phase,
    )
    if json_output:
        emit_json(state.to_dict())
        return
    table = Table(title=f"{state.gas}, {state.mode}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row(
        "supply",
        f"{state.supply_bar:.1f} bar, {state.supply_temperature_c:g} °C ({state.supply_phase})",
    )
    table.add_row("exhaust", f"{state.exhaust_bar:.3f} bar")
    table.add_row("tip temperature", f"{state.tip_temperature_c:.1f} °C")
    table.add_row("cooling per unit mass flow", f"{state.cooling_power_w_per_g_s:.1f} W per g/s")
    table.add_row("isothermal (Linde) Δh", f"{state.linde_w_per_g_s:.1f} kJ/kg")
    quality = "" if state.quality is None else f", vapour fraction {state.quality:.2f}"
    table.add_row("tip phase", state.exhaust_phase + quality)
    table.add_row("warms on expansion", "yes" if state.warms else "no")
    out.print(table)
    for note in state.notes:
        out.print(f"[dim]- {note}[/dim]")


@app.command("probes")
@user_errors
def probes_cmd(
    json_output: bool = typer.Option(
        False, "--json", help="Print one JSON list on stdout and nothing else."
    ),
) -> None:
    """List the probe catalogue (same as `cryoneuro probe --list`)."""
    _catalogue(json_output)
