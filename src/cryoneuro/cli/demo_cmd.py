"""`cryoneuro demo`: the README's first command — plan a Morton's neuroma cryoablation on the
bundled forefoot phantom, end to end."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoneuro.cli._app import app, emit_json, out, require_extra, user_errors


@app.command("demo")
@user_errors
def demo_cmd(
    out_dir: Path = typer.Option(
        Path("out/demo"), "--out", help="Where to write the plan and its report."
    ),
    phantom: str = typer.Option(
        "morton", "--phantom", help="morton (forefoot) or stump (transtibial)."
    ),
    scheduler: str = typer.Option(
        None, "--scheduler", help="Screen the candidates on this running dask scheduler."
    ),
    workers: int = typer.Option(
        None,
        "--workers",
        help="Screen the candidates on a local Dask cluster of N workers "
        "(default: in process). The plan is the same either way.",
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print the plan as one JSON object and nothing else."
    ),
    via_segmentation: bool = typer.Option(
        False,
        "--via-segmentation",
        help="Go the way a patient's case goes: write the phantom as a 3D Slicer segmentation "
        "(input/phantom.seg.nrrd + image.nrrd + <phantom>.toml), read it back, extract the nerve "
        "centreline from the nerve segment, and plan on that.",
    ),
) -> None:
    """Plan a cryoablation on a bundled phantom: candidate placements and cryogens, full 3D
    simulation of each, nerve block, skin and artery safety, predicted relief, HTML/PDF report
    of tables, and the plan for 3D Slicer (isotherms .seg.nrrd, probe .mrk.json)."""
    from cryoneuro.anatomy.phantoms import amputation_stump, morton_forefoot
    from cryoneuro.cli.simulate_cmd import progress_bar
    from cryoneuro.errors import InputError
    from cryoneuro.planning.pipeline import plan_phantom

    makers = {"morton": morton_forefoot, "stump": amputation_stump}
    if phantom not in makers:
        raise InputError(f"--phantom must be one of {sorted(makers)} (got '{phantom}')")
    if workers is not None and workers < 1:
        raise InputError("--workers must be at least 1")
    if workers is not None or scheduler:
        require_extra("scale")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out_dir}: cannot create the folder ({exc.strerror})") from None
    from cryoneuro.planning.export_seg import export_plan
    from cryoneuro.planning.volumes import bundle_plan

    subject = makers[phantom]()
    if via_segmentation:
        from cryoneuro.anatomy.patient import write_segmentation_case
        from cryoneuro.cli.plan_cmd import load_plan_case

        case_file = write_segmentation_case(subject, out_dir / "input")
        subject = load_plan_case(case_file)[0].phantom
    with progress_bar(not json_output) as bar:
        task = bar.add_task("planning", total=1.0)
        plan = plan_phantom(
            subject,
            out_dir,
            scheduler=scheduler,
            workers=workers,
            progress=lambda f, label: bar.update(task, completed=f, description=label),
        )
    export_plan(plan, out_dir)  # isotherms and probes for 3D Slicer
    bundle_plan(out_dir)
    if json_output:
        emit_json(plan.model_dump(mode="json"))
        return
    verdict = (
        "[green]feasible[/green]"
        if plan.feasible
        else "[red]not feasible[/red]: " + "; ".join(plan.reasons)
    )
    p = plan.probes[0]
    out.print(f"Plan for {plan.case}: {verdict}")
    wall = (
        f"device model {p.device}: wall {p.wall_temperature_end_c:.1f} °C at the end of the freeze "
        f"(gas {p.tip_temperature_c:.1f} °C, {p.mean_cooling_w:.1f} W)"
        if p.drive == "device"
        else f"held at {p.tip_temperature_c:.1f} °C"
    )
    found = plan.inputs.get("search", {})
    if found:
        chosen = found.get("chosen", {})
        out.print(
            f"  search: {found['method']}, approach {found['approach']['name']}"
            + (f" (needle tilted {chosen['tilt_deg']:g}°)" if "tilt_deg" in chosen else "")
            + f", {found['simulated']} candidates simulated, protocol "
            f"{plan.inputs['protocol_preset']['name']}",
            markup=False,
        )
    out.print(
        f"  probe {p.diameter_mm} mm, {p.active_length_mm:g} mm active, {p.gas}, {wall}; "
        + " → ".join(f"{ph.kind} {ph.duration_s:g} s" for ph in plan.protocol)
    )
    out.print(
        f"  nerve: complete block {plan.nerve.get('complete_block')}, blocked "
        f"{plan.nerve.get('blocked_length_mm', 0):.1f} mm, "
        f"neurotmesis risk {plan.nerve.get('neurotmesis_risk')}"
    )
    skin = next((s for s in plan.safety if s["structure"] == "skin"), None)
    if skin:
        out.print(f"  skin minimum {skin['min_temperature_c']:.1f} °C (limit 0 °C)")
    protection = plan.inputs.get("skin_protection") or {}
    if protection.get("tried"):
        out.print(
            "  skin protection: warm saline on the skin "
            + ("applied" if protection["applied"] else "tried, not enough")
            + f" (skin {protection['unprotected_skin_min_c']:.1f} °C without, "
            f"{protection['protected_skin_min_c']:.1f} °C with)"
        )
    if plan.relief:
        r = plan.relief
        out.print(
            f"  regrowth-limited estimate of relief: median {r['median_days']:.0f} days "
            f"({r['interval_days'][0]:.0f}–{r['interval_days'][1]:.0f})"
        )
        obs = r.get("observed_in_published_series", {})
        if "interval_days" in obs:
            out.print(
                f"  observed in published series: relief still present at "
                f"{obs['interval_days'][0]}–"
                f"{obs['interval_days'][1]} days"
            )
        if r.get("statement"):
            out.print(f"  {r['statement']}", markup=False)
    from rich.markup import escape

    for w in plan.warnings:  # each ends with its rule tag in brackets: not rich markup
        out.print(f"  [yellow]warning[/yellow]: {escape(w)}")
    if via_segmentation:
        line = plan.inputs.get("case", {}).get("centreline", {})
        out.print(
            f"  centreline from the nerve segment: {line.get('length_mm', 0):.1f} mm "
            f"({line.get('method', '?')}; distal end: {line.get('distal_end_rule', '?')})"
        )
    out.print(
        f"Report: [bold]{plan.files['report_html']}[/bold] (PDF beside it); plan: "
        f"{out_dir / 'plan.json'}"
    )
    out.print(
        f"3D Slicer: drag {plan.files['isotherms_seg_nrrd']} and "
        f"{plan.files['probe_1_markups']} onto {out_dir / 'image.nii.gz'}"
    )
