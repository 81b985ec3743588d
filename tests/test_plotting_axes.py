"""Plotting functions draw on the Axes they are given and never choose a matplotlib backend
(issue 16: ``matplotlib.use("Agg")`` at import broke notebooks).

Three checks: no library module (outside the command line) calls ``matplotlib.use`` or imports
pyplot (read from the source); a fresh interpreter with a chosen backend still has it after
importing every figures module and drawing; each plotting function, given Axes, draws on them
(artists appear on those Axes) and returns them or their figure.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import cryoneuro

SRC = Path(cryoneuro.__file__).parent

#: Every module that draws (imported in a fresh interpreter by the backend test).
FIGURE_MODULES = [
    "cryoneuro.plotting",
    "cryoneuro.thermal.figures",
    "cryoneuro.planning.figures",
    "cryoneuro.planning.plan",
    "cryoneuro.planning.writing",
    "cryoneuro.planning.report",
    "cryoneuro.planning.report_tables",
    "cryoneuro.injury",
    "cryoneuro.cohort",
    "cryoneuro.sweep",
    "cryoneuro.validation",
    "cryoneuro.analysis.meta",
    "cryoneuro.analysis.rct",
    "cryoneuro.analysis.survival",
    "cryoneuro.analysis.effects",
    "cryoneuro.analysis.outcomes",
    "cryoneuro.analysis.economics",
    "cryoneuro.analysis.report",
]


def _drawn(ax) -> int:
    return len(ax.lines) + len(ax.collections) + len(ax.patches) + len(ax.images) + len(ax.texts)


def test_no_library_module_chooses_a_backend_or_uses_pyplot():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("cli/"):
            continue  # the command line may choose a backend at its entry point
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "matplotlib.use":
                offenders.append(f"{rel}:{node.lineno} matplotlib.use")
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            offenders += [f"{rel}:{node.lineno} {n}" for n in names if "pyplot" in n]
    assert offenders == []


def test_drawing_keeps_the_callers_backend_and_opens_no_pyplot_figure():
    code = f"""
import importlib, sys
import matplotlib
matplotlib.use("svg")  # a caller's choice that Agg would replace
for name in {FIGURE_MODULES!r}:
    importlib.import_module(name)
import pandas as pd
from cryoneuro.analysis.outcomes import change_figure
table = pd.DataFrame({{"arm": ["a", "a"], "months": [1, 3], "mean_change": [-1.0, -2.0],
                      "ci_lower": [-2.0, -3.0], "ci_upper": [0.0, -1.0]}})
change_figure(table, "pain").savefig(sys.argv[1])
print(matplotlib.get_backend())
print("matplotlib.pyplot" in sys.modules and len(sys.modules["matplotlib.pyplot"].get_fignums()))
"""
    with tempfile.TemporaryDirectory() as tmp:
        out_png = Path(tmp) / "change.png"
        run = subprocess.run(
            [sys.executable, "-c", code, str(out_png)],
            capture_output=True,
            text=True,
            encoding="utf-8",
            check=True,
        )
        assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # saved without a backend
    backend, open_figures = run.stdout.split()
    assert backend == "svg"
    assert open_figures in ("False", "0")


# --- each function draws on the Axes it is given ------------------------------------------------


@pytest.fixture(scope="module")
def result():
    return cryoneuro.simulate(
        {
            "domain": {"size_mm": [12, 12, 16], "voxel_mm": 1.0, "tissue": "muscle"},
            "probes": [
                {
                    "tip_mm": [6, 6, 4],
                    "direction": [0, 0, 1],
                    "diameter_mm": 1.5,
                    "active_length_mm": 6,
                    "tip_temperature_c": -150,
                }
            ],
            "protocol": {"phases": [{"freeze_s": 20}]},
            "output": {"points": {"3 mm": [9, 6, 7]}},
            "solver": {"backend": "array"},
        }
    )


def _axes(n: int = 1):
    fig = Figure()
    axes = list(fig.subplots(1, n, squeeze=False)[0])
    return fig, axes


def test_thermal_and_plan_figures_draw_on_given_axes(result):
    from cryoneuro.planning.figures import draw_plan_overlays, draw_plan_section
    from cryoneuro.thermal.figures import draw_point_histories, draw_slices

    fig, axes = _axes(2)
    assert draw_slices(result, axes) is fig
    assert all(_drawn(a) for a in axes)
    fig, (ax,) = _axes()
    assert draw_point_histories(result, ax) is ax
    assert len(ax.lines) >= 1  # the point's history
    fig, (ax,) = _axes()
    tissue = result.tissue_mask
    assert draw_plan_section(ax, result, None, {"target": tissue}) is ax
    assert len(ax.collections) >= 1
    fig, axes = _axes(2)
    assert draw_plan_overlays(result, None, {}, axes) is fig
    assert all(_drawn(a) for a in axes)


def test_analysis_figures_draw_on_given_axes():
    from cryoneuro.analysis import economics, effects, outcomes, rct, survival

    change = pd.DataFrame(
        {
            "arm": ["a", "a", "b", "b"],
            "months": [1, 3, 1, 3],
            "mean_change": [-1.0, -2.0, -0.5, -0.7],
            "ci_lower": [-2.0, -3.0, -1.0, -1.2],
            "ci_upper": [0.0, -1.0, 0.0, -0.2],
        }
    )
    fig, (ax,) = _axes()
    assert outcomes.change_figure(change, "pain", ax=ax) is fig
    assert len(ax.containers) == 2  # one error-bar series per arm

    effect = change.rename(columns={"mean_change": "effect"}).assign(method="MMRM")
    fig, (ax,) = _axes()
    assert rct.effect_figure([effect, effect.assign(method="ANCOVA")], "pain", ax=ax) is fig
    assert len(ax.containers) == 2

    sub = pd.DataFrame(
        {
            "factor": ["sex", "sex"],
            "level": ["f", "m"],
            "effect": [-1.0, -2.0],
            "ci_lower": [-2.0, -3.0],
            "ci_upper": [0.0, -1.0],
            "n_treated": [5, 6],
            "n_control": [5, 5],
        }
    )
    tests = pd.DataFrame({"factor": ["sex"], "interaction_p": [0.4]})
    fig, (ax,) = _axes()
    assert effects.subgroup_figure(sub, tests, -1.5, "pain", ax=ax) is fig
    assert len(ax.lines) >= 4  # two CIs, two squares, the zero and overall lines

    rng = np.random.default_rng(0)
    times = pd.DataFrame(
        {
            "arm": ["a"] * 12 + ["b"] * 12,
            "duration": rng.uniform(30, 300, 24).round(),
            "event": [1, 0] * 12,
            "predicted_relief_days": rng.uniform(40, 200, 24).round(),
        }
    )
    fig, (ax,) = _axes()
    _table, km_fig = survival.kaplan_meier(times, "recurrence", ax=ax)
    assert km_fig is fig
    assert len(ax.lines) >= 2  # one survival curve per arm
    fig, (ax,) = _axes()
    _table, _summary, cal_fig = survival.calibration(times, ax=ax)
    assert cal_fig is fig
    assert len(ax.collections) >= 1

    boot = pd.DataFrame({"incremental_qaly": rng.normal(0.05, 0.02, 50)}).assign(
        incremental_cost=rng.normal(500, 100, 50)
    )
    ceac = pd.DataFrame({"wtp_gbp_per_qaly": [0, 20000, 30000]}).assign(
        probability_cost_effective=[0.0, 0.6, 0.8]
    )
    cu = economics.CostUtility(
        pd.DataFrame(),
        {"incremental_qaly_adjusted": 0.05, "incremental_cost": 500.0},
        boot,
        ceac,
    )
    fig, axes = _axes(2)
    plane, curve = economics.figures(cu, axes=axes)
    assert plane is fig
    assert curve is fig
    assert len(axes[0].collections) == 2  # replicates and the estimate
    assert len(axes[1].lines) >= 1

    from cryoneuro.analysis.outcomes import scored
    from cryoneuro.analysis.synthetic import SyntheticStudy, generate

    data = generate(SyntheticStudy(n_per_arm=8, seed=2))
    fig, (ax,) = _axes()
    assert rct.flow_figure(rct.flow(data, "m3", "pain", scored(data)), True, ax=ax) is fig
    assert any("m3" in t.get_text() for t in ax.texts)


def test_meta_figures_draw_on_given_axes():
    from cryoneuro.analysis.meta import forest_plot, sensitivity_plot

    res = cryoneuro.meta_analyse(outcomes=["pain"])
    pain = res.outcomes["pain"]
    fig, (ax,) = _axes()
    assert forest_plot(pain, ax=ax) is fig
    assert len(ax.collections) >= len(pain.studies)  # a square per study
    sweep = pd.DataFrame({"r": [0.2, 0.5, 0.8]}).assign(
        dl_estimate=[-3.0, -3.1, -3.2], dl_ci_lower=[-4.0, -4.0, -4.0], dl_ci_upper=[-2.0] * 3
    )
    fig, (ax,) = _axes()
    assert sensitivity_plot(sweep, "pain", [0.5], ax=ax) is fig
    assert len(ax.lines) >= 2  # the estimate and the mark at r = 0.5


def test_sweep_cohort_and_validation_figures_draw_on_given_axes():
    from cryoneuro.cohort import draw_then_vs_now
    from cryoneuro.sweep import Variation, draw_plan_sweep, draw_sweep
    from cryoneuro.validation import plot_measured_vs_predicted

    table = pd.DataFrame(
        {"probes[0].tip_temperature_c": [-150.0, -140.0, -130.0], "0_diameter_mm": [9, 8.5, 8]}
    )
    variations = [Variation("probes[0].tip_temperature_c", -150.0, -130.0)]
    fig, axes = _axes(2)
    assert draw_sweep(table, variations, axes) is fig
    assert len(axes[0].patches) > 0  # the histogram's bars
    assert len(axes[1].collections) == 1  # the scatter

    plan_table = pd.DataFrame(
        {
            "coverage_20": [0.9, 1.0, 0.8],
            "coverage_40": [0.5, 0.7, 0.4],
            "skin_min_c": [5.0, 3.0, -1.0],
            "warmest_min_c": [-25.0, -30.0, -15.0],
            "position_error_mm": [0.2, 1.1, 2.5],
            "complete_block": [True, True, False],
        }
    )
    fig = Figure()
    grid = fig.subplots(2, 2)
    assert draw_plan_sweep(plan_table, grid) is fig
    assert all(_drawn(a) for a in grid.ravel())

    cohort = pd.DataFrame(
        {
            "status": ["ok", "ok"],
            "complete_block_then": [True, True],
            "complete_block_now": [True, False],
            **{
                f"{k}_{w}": [1.0, 2.0]
                for k in ("warmest_min_c", "skin_min_c")
                for w in ("then", "now")
            },
            "relief_median_days_then": [60.0, 70.0],
            "relief_median_days_now": [61.0, 69.0],
        }
    )
    fig, axes = _axes(3)
    assert draw_then_vs_now(cohort, axes) is fig
    assert all(len(a.collections) >= 1 for a in axes)

    rows = [
        {"quantity": "diameter", "measured": 20.0, "predicted": 21.0, "role": "calibration"},
        {"quantity": "area_fraction", "measured": 0.5, "predicted": 0.45, "role": "held-out"},
        {"quantity": "ratio", "measured": 1.2, "predicted": 1.1, "role": "held-out"},
    ]
    fig, axes = _axes(3)
    assert plot_measured_vs_predicted({"rows": rows}, axes) == axes
    assert all(len(a.collections) >= 2 for a in axes)  # tolerance band and the point
