"""`cryoneuro demo`: the README's first command — a bundled case, end to end."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import typer

from cryoneuro.cli._app import app, emit_json, out, user_errors


@app.command("demo")
@user_errors
def demo_cmd(
    out_dir: Path = typer.Option(Path("out/demo"), "--out", help="Where to write the results."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on stdout and nothing else."),
) -> None:
    """Simulate the bundled design case (one 1.5 mm probe at -150 C in muscle, 300 s) and write
    its isotherm images and summary."""
    from cryoneuro.case import load_case
    from cryoneuro.cli.simulate_cmd import progress_bar, write_outputs
    from cryoneuro.thermal import simulate
    from cryoneuro.thermal.summary import summarise

    case_path = Path(str(files("cryoneuro") / "data" / "cases" / "homogeneous_muscle.toml"))
    case = load_case(case_path)
    with progress_bar(not json_output) as bar:
        task = bar.add_task("simulating", total=1.0)
        result = simulate(case.model(), case.phases(), **case.simulate_options(),
                          progress=lambda f, label: bar.update(task, completed=f, description=label))
    summary = summarise(result, case.output.isotherms_c)
    summary["files"] = write_outputs(result, summary, out_dir, case.output.isotherms_c)
    if json_output:
        emit_json(summary)
        return
    for level, m in summary["isotherms"].items():
        out.print(f"{level:>4} °C isotherm: {m['diameter_mm']:.1f} mm × {m['length_mm']:.1f} mm, {m['volume_ml']:.2f} ml")
    out.print(f"Images and summary in [bold]{out_dir}[/bold] (open {out_dir / 'isotherms_min.png'})")
