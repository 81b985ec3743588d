"""`cryoneuro sweep CASE.toml --vary PATH=LO:HI …` (a homogeneous case) or
`cryoneuro sweep --plan PLAN.json …` (the uncertainty of a saved plan): sweeps on Dask."""

from __future__ import annotations

import tomllib
from pathlib import Path

import typer

from cryoneuro.cli._app import app, emit_json, out, require_extra, user_errors
from cryoneuro.errors import CaseFileError, InputError

#: --hifi-samples default: 24 pairs of 200 were worth a plain 0.5 mm sweep of 55–85 samples
#: at the measured 1 mm / 0.5 mm agreement (docs/sweep.md, multi-fidelity).
MF_DEFAULT_HIFI = 24


@app.command("sweep")
@user_errors
def sweep_cmd(
    case_file: Path = typer.Argument(None, help="Case file (TOML); or give --plan instead."),
    vary: list[str] = typer.Option(
        None,
        "--vary",
        help="PATH=LO:HI, e.g. domain.tissue.perfusion=1000:8000 (repeatable; case files).",
    ),
    plan_file: Path = typer.Option(
        None, "--plan", help="A saved plan.json: sweep the uncertainty of that plan."
    ),
    samples: int = typer.Option(50, "--samples", help="Latin-hypercube samples."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (same seed, same samples)."),
    scheduler: str = typer.Option(
        None, "--scheduler", help="Address of a running dask scheduler (default: a local cluster)."
    ),
    workers: int = typer.Option(2, "--workers", help="Workers of the local cluster."),
    voxel_mm: float = typer.Option(
        None,
        "--voxel-mm",
        help="Case: override domain.voxel_mm. Plan: 1.0 (default, the fast screening grid) or 0.5.",
    ),
    position_sd_mm: float = typer.Option(
        1.0, "--position-sd-mm", help="Plan: SD of the probe-tip error per axis (mm)."
    ),
    tip_temperature_sd_c: float = typer.Option(
        5.0,
        "--tip-temperature-sd-c",
        help="Plan: SD of the tip-temperature offset (°C; never colder than planned).",
    ),
    perfusion_scale: str = typer.Option(
        "0.5:2",
        "--perfusion-scale",
        help="Plan: perfusion multiplier LO:HI (log-uniform) or a fixed value.",
    ),
    conductivity_scale: str = typer.Option(
        "1", "--conductivity-scale", help="Plan: unfrozen-conductivity multiplier LO:HI or a value."
    ),
    frozen_conductivity_scale: str = typer.Option(
        "1",
        "--frozen-conductivity-scale",
        help="Plan: frozen-conductivity multiplier LO:HI or a value.",
    ),
    freeze_scale: str = typer.Option(
        "1", "--freeze-scale", help="Plan: freeze-duration multiplier LO:HI or a value."
    ),
    multifidelity: bool = typer.Option(
        False,
        "--multifidelity",
        help="Plan: every sample on the 1 mm grid, --hifi-samples of them also at 0.5 mm; the "
        "1 mm runs are a control variate for the 0.5 mm estimate (docs/sweep.md).",
    ),
    hifi_samples: int = typer.Option(
        None,
        "--hifi-samples",
        help="Plan, with --multifidelity: samples also run at 0.5 mm (default 24; 3 to --samples).",
    ),
    out_dir: Path = typer.Option(
        Path("out/sweep"),
        "--out",
        help="Results: sweep.parquet, sweep.csv, plots (and summary.json for a plan).",
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print one JSON object on stdout and nothing else."
    ),
) -> None:
    """Vary case fields over ranges — or perturb a saved plan — run every sample on Dask, and
    summarise the spread."""
    require_extra("scale")  # every sweep runs on Dask
    if workers < 1:
        raise InputError("--workers must be at least 1")
    if samples < 1:
        raise InputError("--samples must be at least 1")
    if hifi_samples is not None and not multifidelity:
        raise InputError("--hifi-samples needs --multifidelity")
    if multifidelity:
        if plan_file is None:
            raise InputError("--multifidelity sweeps a saved plan: give --plan PLAN.json")
        if voxel_mm is not None:
            raise InputError(
                "--multifidelity runs every sample at 1 mm and --hifi-samples of them at 0.5 mm: "
                "leave out --voxel-mm"
            )
        hifi_samples = MF_DEFAULT_HIFI if hifi_samples is None else hifi_samples
        if not 3 <= hifi_samples <= samples:
            raise InputError(
                f"--hifi-samples must be between 3 and --samples ({samples}) (got {hifi_samples})"
            )
    if plan_file is not None:
        if case_file is not None or vary:
            raise InputError("give either CASE.toml with --vary or --plan PLAN.json, not both")
        _plan_sweep(
            plan_file,
            samples=samples,
            seed=seed,
            scheduler=scheduler,
            workers=workers,
            voxel_mm=1.0 if voxel_mm is None else voxel_mm,
            position_sd_mm=position_sd_mm,
            tip_temperature_sd_c=tip_temperature_sd_c,
            scales=(perfusion_scale, conductivity_scale, frozen_conductivity_scale, freeze_scale),
            out_dir=out_dir,
            json_output=json_output,
            hifi_samples=hifi_samples if multifidelity else None,
        )
        return
    if case_file is None:
        raise InputError("give a case file (CASE.toml --vary PATH=LO:HI …) or --plan PLAN.json")
    if not vary:
        raise InputError("a case sweep needs at least one --vary PATH=LO:HI")
    _case_sweep(
        case_file,
        vary,
        samples=samples,
        seed=seed,
        scheduler=scheduler,
        workers=workers,
        voxel_mm=voxel_mm,
        out_dir=out_dir,
        json_output=json_output,
    )


def _prepare_out(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out_dir}: cannot create the folder ({exc.strerror})") from None
    (out_dir / "partial.csv").unlink(missing_ok=True)


def _case_sweep(
    case_file: Path,
    vary: list[str],
    *,
    samples: int,
    seed: int,
    scheduler: str | None,
    workers: int,
    voxel_mm: float | None,
    out_dir: Path,
    json_output: bool,
) -> None:
    from cryoneuro.cli.simulate_cmd import progress_bar
    from cryoneuro.sweep import Variation, plot_sweep, run_sweep

    try:
        data = tomllib.loads(case_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CaseFileError(f"{case_file}: no such case file") from None
    except tomllib.TOMLDecodeError as exc:
        raise CaseFileError(f"{case_file}: not valid TOML ({exc})") from None
    variations = [Variation.parse(v) for v in vary]
    overrides = {"domain.voxel_mm": voxel_mm} if voxel_mm else {}
    _prepare_out(out_dir)
    with progress_bar(not json_output) as bar:
        task = bar.add_task("sweeping", total=samples)
        table = run_sweep(
            data,
            variations,
            samples=samples,
            seed=seed,
            scheduler=scheduler,
            workers=workers,
            out_dir=out_dir,
            overrides=overrides,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    table.to_parquet(out_dir / "sweep.parquet", index=False)
    table.to_csv(out_dir / "sweep.csv", index=False)
    plot_sweep(table, variations, out_dir / "sweep.png")
    stats = {
        c: {
            "mean": float(table[c].mean()),
            "sd": float(table[c].std(ddof=1)) if len(table) > 1 else 0.0,
            "p05": float(table[c].quantile(0.05)),
            "p95": float(table[c].quantile(0.95)),
        }
        for c in table.columns
        if c != "sample" and c not in [v.path for v in variations]
    }
    result = {
        "samples": len(table),
        "variations": [v.__dict__ for v in variations],
        "outputs": stats,
        "files": {
            k: str(out_dir / f)
            for k, f in (("parquet", "sweep.parquet"), ("csv", "sweep.csv"), ("plot", "sweep.png"))
        },
    }
    if json_output:
        emit_json(result)
        return
    for name, s in stats.items():
        out.print(
            f"{name:>28}: {s['mean']:8.2f} ± {s['sd']:.2f}  (5–95 %: {s['p05']:.2f}–{s['p95']:.2f})"
        )
    out.print(f"results in [bold]{out_dir}[/bold]")


def _plan_sweep(
    plan_file: Path,
    *,
    samples: int,
    seed: int,
    scheduler: str | None,
    workers: int,
    voxel_mm: float,
    position_sd_mm: float,
    tip_temperature_sd_c: float,
    scales: tuple[str, str, str, str],
    out_dir: Path,
    json_output: bool,
    hifi_samples: int | None = None,
) -> None:
    from cryoneuro.cli.simulate_cmd import progress_bar
    from cryoneuro.planning.plan import Plan
    from cryoneuro.planning.replay import check_voxel, context_for, replay
    from cryoneuro.sweep import (
        PlanUncertainty,
        parse_scale,
        run_plan_sweep,
        summarise_plan_sweep,
        write_plan_sweep,
    )

    names = (
        "--perfusion-scale",
        "--conductivity-scale",
        "--frozen-conductivity-scale",
        "--freeze-scale",
    )
    perf, cond, fcond, freeze = (parse_scale(t, n) for t, n in zip(scales, names, strict=True))
    spec = PlanUncertainty(
        position_sd_mm=position_sd_mm,
        tip_temperature_sd_c=tip_temperature_sd_c,
        perfusion_scale=perf,
        conductivity_scale=cond,
        frozen_conductivity_scale=fcond,
        freeze_scale=freeze,
    )
    check_voxel(voxel_mm)
    if plan_file.is_dir():
        raise InputError(f"--plan {plan_file}: is a folder; give its plan.json")
    plan = Plan.load(plan_file)
    ctx = context_for(plan, voxel_mm)  # an unknown phantom fails here, before any worker starts
    _prepare_out(out_dir)
    if hifi_samples is not None:
        _multifidelity_sweep(
            plan,
            spec,
            samples=samples,
            hifi_samples=hifi_samples,
            seed=seed,
            scheduler=scheduler,
            workers=workers,
            out_dir=out_dir,
            json_output=json_output,
        )
        return
    nominal = replay(plan, voxel_mm=voxel_mm, context=ctx).as_dict()
    with progress_bar(not json_output) as bar:
        task = bar.add_task(f"replaying {plan.case}", total=samples)
        table = run_plan_sweep(
            plan,
            spec,
            samples=samples,
            seed=seed,
            voxel_mm=voxel_mm,
            scheduler=scheduler,
            workers=workers,
            out_dir=out_dir,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    summary = summarise_plan_sweep(
        table, spec=spec, seed=seed, voxel_mm=voxel_mm, nominal=nominal, plan_name=plan.case
    )
    write_plan_sweep(table, summary, out_dir)
    if json_output:
        emit_json(summary)
        return
    pb, ps = summary["p_complete_block"], summary["p_skin_safe"]
    out.print(f"{plan.case}: {len(table)} samples on the {voxel_mm:g} mm grid")
    out.print(
        f"  P(complete block) {pb['p']:.3f} (95 % CI {pb['ci95'][0]:.3f}–{pb['ci95'][1]:.3f}); "
        f"P(skin safe) {ps['p']:.3f} ({ps['ci95'][0]:.3f}–{ps['ci95'][1]:.3f})"
    )
    for key, label in (
        ("coverage_20", "target ≤ −20 °C"),
        ("skin_min_c", "skin minimum °C"),
        ("warmest_min_c", "warmest nerve section °C"),
    ):
        d = summary["distributions"][key]
        out.print(f"  {label:>26}: mean {d['mean']:.2f} (5–95 %: {d['p05']:.2f}–{d['p95']:.2f})")
    out.print(f"results in [bold]{out_dir}[/bold]")


#: Metrics printed for a multi-fidelity sweep: (key, label, probability).
MF_PRINTED = (
    ("complete_block", "P(complete block)", True),
    ("skin_safe", "P(skin safe)", True),
    ("coverage_20", "target ≤ −20 °C", False),
    ("skin_min_c", "skin minimum °C", False),
)


def _multifidelity_sweep(
    plan,
    spec,
    *,
    samples: int,
    hifi_samples: int,
    seed: int,
    scheduler: str | None,
    workers: int,
    out_dir: Path,
    json_output: bool,
) -> None:
    """All samples at 1 mm, ``hifi_samples`` of them also at 0.5 mm
    (:func:`cryoneuro.sweep_multifidelity.run_plan_sweep_multifidelity`). Writes the plain
    sweep's files for the 1 mm table (sweep.parquet/.csv, uncertainty.png, summary.json) plus
    sweep_hifi.parquet/.csv (the 0.5 mm runs); summary.json gains ``multifidelity``: per metric
    the estimate of the 0.5 mm mean, its 95 % interval and standard error beside plain Monte
    Carlo's (σ/√n for the same 0.5 mm runs, σ/√N for all samples at 0.5 mm)."""
    from cryoneuro.cli.simulate_cmd import progress_bar
    from cryoneuro.planning.replay import replay
    from cryoneuro.sweep import plot_plan_sweep, summarise_plan_sweep, write_results
    from cryoneuro.sweep_multifidelity import run_plan_sweep_multifidelity

    nominal = replay(plan, voxel_mm=0.5).as_dict()  # the grid the estimate targets
    with progress_bar(not json_output) as bar:
        task = bar.add_task(f"replaying {plan.case} (1 mm + 0.5 mm)", total=samples + hifi_samples)
        low, high, estimates = run_plan_sweep_multifidelity(
            plan,
            spec,
            samples=samples,
            high_samples=hifi_samples,
            seed=seed,
            scheduler=scheduler,
            workers=workers,
            out_dir=out_dir,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    hifi_files = {
        "hifi_parquet": out_dir / "sweep_hifi.parquet",
        "hifi_csv": out_dir / "sweep_hifi.csv",
    }
    high.to_parquet(hifi_files["hifi_parquet"], index=False)
    high.to_csv(hifi_files["hifi_csv"], index=False)
    summary = summarise_plan_sweep(
        low, spec=spec, seed=seed, voxel_mm=1.0, nominal=nominal, plan_name=plan.case
    )
    summary["multifidelity"] = {
        "method": "control variate: 1 mm (all samples) for 0.5 mm (a random subset); "
        "Peherstorfer, Willcox & Gunzburger 2016, two-model MFMC",
        "low_voxel_mm": 1.0,
        "high_voxel_mm": 0.5,
        "samples": samples,
        "hifi_samples": hifi_samples,
        "hifi_sample_numbers": [int(x) for x in high["sample"]],
        "estimates": {k: v.as_dict() for k, v in estimates.items()},
        "files": {k: str(v) for k, v in hifi_files.items()},
    }
    title = f"{plan.case}: {samples} samples at 1 mm ({hifi_samples} also at 0.5 mm)"
    # the plain sweep's tables and figure, of the 1 mm table; numbers before the plot
    write_results(
        low,
        summary,
        out_dir,
        "sweep",
        "uncertainty.png",
        lambda path: plot_plan_sweep(low, path, title=title),
    )
    if json_output:
        emit_json(summary)
        return
    out.print(
        f"{plan.case}: {samples} samples on the 1 mm grid, {hifi_samples} of them also at 0.5 mm "
        "(multi-fidelity estimate of the 0.5 mm answer)"
    )
    for key, label, prob in MF_PRINTED:
        e = estimates[key]
        plain = e.plain_standard_errors()
        fmt = ".3f" if prob else ".2f"
        out.print(
            f"  {label:>26}: {e.estimate:{fmt}} (95 % CI {e.ci95[0]:{fmt}}–{e.ci95[1]:{fmt}}); "
            f"SE {e.standard_error:.3f} vs plain {hifi_samples} at 0.5 mm "
            f"{plain['plain_mc_standard_error_same_hifi']:.3f}"
        )
    out.print(f"results in [bold]{out_dir}[/bold]")
