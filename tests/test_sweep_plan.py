"""Uncertainty of a plan (issue 7): replaying a saved plan reproduces it, perturbing it moves
the verdicts the right way, the sweep is the same on 1 or 2 workers or a separate scheduler,
and the planner's screening on Dask chooses the same plan as in process."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from cryoneuro.anatomy.phantoms import morton_forefoot
from cryoneuro.cli import app
from cryoneuro.errors import InputError
from cryoneuro.planning.pipeline import LEGACY_BOUNDARIES, plan_phantom
from cryoneuro.planning.plan import Plan
from cryoneuro.planning.replay import Perturbation, replay, stored_metrics
from cryoneuro.sweep import PlanUncertainty, plan_samples, run_plan_sweep

# Plan-uncertainty sweeps on a local Dask cluster: the slow tier.
pytestmark = pytest.mark.slow

#: The demo's chosen candidate (nitrous oxide, through the neuroma, active part 2 mm dorsal,
#: 2 x 60 s): planned alone so the fixture takes seconds, not the demo's full search.
DEMO_CHOICE = {
    "gases": ("nitrous-oxide",),
    "offsets_mm": (0.0,),
    "shifts_mm": (2.0,),
    "freezes_s": (60.0,),
    # the boundaries these tests were written against (adiabatic skin, blood as a perfusion sink
    # that stops once frozen); with a flowing digital artery this candidate does not block
    "boundaries": LEGACY_BOUNDARIES,
}
#: Position error only (no tip or tissue spread): isolates what the monotone check is about.
POSITION_ONLY = {"tip_temperature_sd_c": 0.0, "perfusion_scale": (1.0, 1.0)}


@pytest.fixture(scope="module")
def demo_plan(tmp_path_factory) -> tuple[Plan, object]:
    out = tmp_path_factory.mktemp("demo_plan")
    plan = plan_phantom(morton_forefoot(), out, **DEMO_CHOICE)
    return plan, out / "plan.json"


@pytest.fixture(scope="module")
def client():
    from cryoneuro.sweep import dask_client

    with dask_client(workers=2) as c:
        yield c


def test_unperturbed_replay_at_the_plans_grid_reproduces_the_plan(demo_plan):
    """At 0.5 mm the replay is the plan's own confirmation simulation: the same numbers (tolerances
    allow for later, small engine changes: 0.5 K, 0.02 of the target, one 0.25 mm station)."""
    plan, _ = demo_plan
    got = replay(plan, voxel_mm=0.5).as_dict()
    want = stored_metrics(plan)
    for key in ("complete_block", "neurotmesis_risk", "skin_safe"):
        assert got[key] == want[key], key
    for key, tol in (
        ("warmest_min_c", 0.5),
        ("skin_min_c", 0.5),
        ("artery_min_c", 0.5),
        ("coverage_20", 0.02),
        ("coverage_40", 0.02),
        ("blocked_length_mm", 0.25),
        ("relief_median_days", 0.5),
    ):
        assert got[key] == pytest.approx(want[key], abs=tol), key


def test_screening_grid_replay_keeps_the_verdicts(demo_plan):
    """The 1 mm reduced model: same block / neurotmesis / skin verdicts; deterministic."""
    plan, _ = demo_plan
    a = replay(plan, voxel_mm=1.0)
    assert a.complete_block
    assert a.skin_safe
    assert not a.neurotmesis_risk
    assert a == replay(plan, voxel_mm=1.0)
    assert a.warmest_min_c > plan.nerve["warmest_min_c"]  # coarser: warmer at the nominal placement
    with pytest.raises(InputError):
        replay(plan, voxel_mm=0.7)


def test_perturbations_act_in_the_physical_direction(demo_plan):
    plan, _ = demo_plan
    base = replay(plan, voxel_mm=1.0)
    warmer = replay(plan, Perturbation(tip_temperature_offset_c=20.0), voxel_mm=1.0)
    colder = replay(plan, Perturbation(tip_temperature_offset_c=-20.0), voxel_mm=1.0)
    assert warmer.warmest_min_c > base.warmest_min_c
    assert warmer.tip_temperature_c == pytest.approx(base.tip_temperature_c + 20)
    assert colder == base  # never colder than the boiling cryogen: clipped to the plan's tip
    longer = replay(plan, Perturbation(freeze_scale=1.5), voxel_mm=1.0)
    assert longer.coverage_40 >= base.coverage_40
    assert longer.skin_min_c < base.skin_min_c
    perfused = replay(plan, Perturbation(perfusion_scale=3.0), voxel_mm=1.0)
    assert perfused.coverage_40 <= base.coverage_40
    assert perfused.warmest_min_c > base.warmest_min_c
    with pytest.raises(InputError):
        Perturbation(perfusion_scale=0.0)


def test_samples_are_reproducible_latin_hypercube_normals():
    a = plan_samples(PlanUncertainty(), 200, seed=4)
    pd.testing.assert_frame_equal(a, plan_samples(PlanUncertainty(), 200, seed=4))
    assert abs(a.dx_mm.mean()) < 0.05
    assert a.dx_mm.std() == pytest.approx(1.0, abs=0.05)
    assert a.perfusion_scale.between(0.5, 2.0).all()
    assert (a.conductivity_scale == 1.0).all()
    with pytest.raises(InputError):
        PlanUncertainty(position_sd_mm=-1.0)


def test_a_larger_position_error_lowers_the_probability_of_block(demo_plan, client):
    plan, _ = demo_plan
    p = {}
    for sd in (0.0, 1.0, 3.0):
        t = run_plan_sweep(
            plan,
            PlanUncertainty(position_sd_mm=sd, **POSITION_ONLY),
            samples=8,
            seed=11,
            client=client,
        )
        p[sd] = t["complete_block"].mean()
    assert p[0.0] == 1.0
    assert p[0.0] >= p[1.0] >= p[3.0]
    assert p[3.0] < p[0.0]


def test_same_table_with_one_or_two_workers(demo_plan):
    plan, _ = demo_plan
    a = run_plan_sweep(plan, PlanUncertainty(), samples=6, seed=3, workers=1)
    b = run_plan_sweep(plan, PlanUncertainty(), samples=6, seed=3, workers=2)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert len(a) == 6
    assert {
        "complete_block",
        "coverage_20",
        "skin_min_c",
        "skin_safe",
        "artery_min_c",
        "position_error_mm",
    } <= set(a.columns)


def test_same_table_on_a_separately_started_scheduler(demo_plan, client):
    from test_sweep import separate_scheduler

    plan, _ = demo_plan
    with separate_scheduler(n_workers=2) as address:
        remote = run_plan_sweep(plan, PlanUncertainty(), samples=4, seed=5, scheduler=address)
    local = run_plan_sweep(plan, PlanUncertainty(), samples=4, seed=5, client=client)
    pd.testing.assert_frame_equal(remote, local, check_exact=True)


def test_sweep_command_with_a_plan_writes_the_summary(demo_plan, tmp_path):
    _, path = demo_plan
    out = tmp_path / "sw"
    result = CliRunner().invoke(
        app,
        [
            "sweep",
            "--plan",
            str(path),
            "--samples",
            "4",
            "--workers",
            "2",
            "--seed",
            "2",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    pb = summary["p_complete_block"]
    assert pb["n"] == 4
    assert pb["ci95"][0] <= pb["p"] <= pb["ci95"][1]
    assert {"coverage_20", "skin_min_c"} <= set(summary["distributions"])
    assert summary["nominal"]["complete_block"] is True
    for name in ("sweep.parquet", "sweep.csv", "summary.json", "uncertainty.png", "partial.csv"):
        assert (out / name).exists(), name
    assert len(pd.read_parquet(out / "sweep.parquet")) == 4
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["p_skin_safe"]["n"] == 4


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--plan", "missing/plan.json"], "no such plan file"),
        (["--plan", "{plan}", "--samples", "0"], "--samples"),
        (["--plan", "{plan}", "--position-sd-mm", "-1"], "--position-sd-mm"),
        (["--plan", "{plan}", "--tip-temperature-sd-c", "-2"], "--tip-temperature-sd-c"),
        (["--plan", "{plan}", "--perfusion-scale", "2:1"], "--perfusion-scale"),
        (["--plan", "{plan}", "--voxel-mm", "0.7"], "--voxel-mm"),
        (["--plan", "{unknown}"], "unknown phantom"),
        (["--plan", "{plan}", "--vary", "x=1:2"], "not both"),
    ],
)
def test_bad_plan_sweeps_are_one_line_errors(demo_plan, tmp_path, args, needle):
    plan, path = demo_plan
    unknown = tmp_path / "unknown.json"
    unknown.write_text(
        plan.model_copy(update={"inputs": {**plan.inputs, "phantom": "hand"}}).to_json(),
        encoding="utf-8",
    )
    args = [a.format(plan=path, unknown=unknown) for a in args]
    result = CliRunner().invoke(app, ["sweep", *args, "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 2, result.output
    assert needle in result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1


def test_screening_on_dask_gives_the_same_plan(tmp_path, client):
    """Placement search with the candidates screened on Dask workers: the identical Plan."""
    kw = {
        "gases": ("nitrous-oxide",),
        "offsets_mm": (0.0, -2.5),
        "shifts_mm": (2.0,),
        "freezes_s": (60.0,),
    }
    local = plan_phantom(morton_forefoot(), tmp_path / "a", **kw)
    remote = plan_phantom(morton_forefoot(), tmp_path / "b", client=client, **kw)
    drop = {"created_at", "files"}
    assert local.model_dump(exclude=drop) == remote.model_dump(exclude=drop)
    assert len(local.inputs["screened_at_1mm"]) == 2
