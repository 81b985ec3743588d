"""Cohort re-simulation (issue 7): every stored plan re-run with the current model, one row per
plan with then / now / difference — from a folder of plan files and from a registry database."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cryoneuro.anatomy.phantoms import morton_forefoot
from cryoneuro.cli import app
from cryoneuro.planning.pipeline import LEGACY_BOUNDARIES, plan_phantom
from cryoneuro.planning.plan import Plan

# Cohort re-simulation on Dask: the slow tier.
pytestmark = pytest.mark.slow

DEMO_CHOICE = {
    "gases": ("nitrous-oxide",),
    "offsets_mm": (0.0,),
    "shifts_mm": (2.0,),
    "freezes_s": (60.0,),
    # the boundaries these tests were written against (adiabatic skin, blood as a perfusion sink
    # that stops once frozen); with a flowing digital artery this candidate does not block
    "boundaries": LEGACY_BOUNDARIES,
}


@pytest.fixture(scope="module")
def plan(tmp_path_factory) -> Plan:
    return plan_phantom(morton_forefoot(), tmp_path_factory.mktemp("plan"), **DEMO_CHOICE)


def _stale(plan: Plan) -> Plan:
    """The same plan as an older model would have stored it: no block, a warmer nerve."""
    nerve = {
        **plan.nerve,
        "complete_block": False,
        "warmest_min_c": plan.nerve["warmest_min_c"] + 30.0,
    }
    return plan.model_copy(update={"nerve": nerve, "software_version": "0.0.9"})


def test_folder_of_two_plans(plan, tmp_path):
    folder = tmp_path / "plans"
    for name, p in (("current", plan), ("stale", _stale(plan))):
        (folder / name).mkdir(parents=True)
        p.save(folder / name / "plan.json")
    (folder / "stale" / "notes.json").write_text(json.dumps({"not": "a plan"}), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "cohort",
            "resimulate",
            str(folder),
            "--out",
            str(out),
            "--workers",
            "2",
            "--voxel-mm",
            "1.0",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["plans"] == 2
    assert summary["replayed"] == 2
    assert summary["errors"] == 0
    assert summary["block_changed"] == 1
    assert len(summary["skipped"]) == 1
    table = pd.read_parquet(out / "cohort.parquet").set_index("source")
    cur, old = (
        table.loc[str(folder / "current" / "plan.json")],
        table.loc[str(folder / "stale" / "plan.json")],
    )
    assert cur["complete_block_then"]
    assert cur["complete_block_now"]
    assert not old["complete_block_then"]
    assert old["complete_block_now"]
    assert "complete_block" in old["changed"]
    assert old["warmest_min_c_diff"] == pytest.approx(cur["warmest_min_c_diff"] - 30.0)
    assert old["software_then"] == "0.0.9"
    for name in ("cohort.csv", "summary.json", "then_vs_now.png"):
        assert (out / name).exists()


def test_own_grid_replay_matches_what_the_plan_stored(plan, tmp_path):
    """Unchanged model, the plan's own 0.5 mm grid: nothing changed."""
    from cryoneuro.cohort import StoredPlan, resimulate

    table = resimulate([StoredPlan("p", plan.to_json())], workers=1)
    row = table.iloc[0]
    assert row["status"] == "ok"
    assert row["voxel_mm"] == 0.5
    assert row["changed"] == ""
    assert abs(row["warmest_min_c_diff"]) < 0.5
    assert abs(row["skin_min_c_diff"]) < 0.5


def test_registry_with_one_procedure(plan, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent / "registry"))
    from registry_helpers import enrolment, make_registry, procedure

    from cryoneuro.registry.schemas import EnrolmentIn, ProcedureIn
    from cryoneuro.registry.services import clinical, participants

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    reg = make_registry(url)
    with reg.factory() as session:
        p = participants.enrol(
            session, reg.settings, reg.actor("nurse"), EnrolmentIn.model_validate(enrolment())
        )
        clinical.record_procedure(
            session,
            reg.actor("nurse"),
            p.id,
            ProcedureIn.model_validate(
                procedure(gas="nitrous-oxide", plan=plan.model_dump(mode="json"))
            ),
        )
        clinical.record_procedure(
            session, reg.actor("nurse"), p.id, ProcedureIn.model_validate(procedure(plan=None))
        )  # no plan: not part of the cohort
        session.commit()
    reg.engine.dispose()
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "cohort",
            "resimulate",
            "--db",
            url,
            "--out",
            str(out),
            "--workers",
            "1",
            "--voxel-mm",
            "1.0",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["plans"] == 1
    assert summary["replayed"] == 1
    row = pd.read_csv(out / "cohort.csv").iloc[0]
    assert row["source"].startswith("procedure/")
    assert bool(row["complete_block_now"])


def test_a_plan_that_cannot_be_replayed_gets_a_row_saying_why(plan):
    from cryoneuro.cohort import StoredPlan, resimulate_one

    other = plan.model_copy(update={"inputs": {**plan.inputs, "phantom": "hand"}})
    row = resimulate_one(StoredPlan("x", other.to_json()), 1.0)
    assert row["status"].startswith("error")
    assert "hand" in row["status"]


@pytest.mark.parametrize(
    ("make_args", "needle"),
    [
        (lambda d: [str(d / "nowhere")], "no such"),
        (lambda d: [str(d)], "no stored cryoneuro plans"),
        (lambda d: ["--db", f"sqlite:///{d / 'missing.db'}"], "no such database"),
        (lambda d: [str(d), "--workers", "0"], "--workers"),
        (lambda d: [], "one of them"),
    ],
)
def test_bad_cohort_input_is_a_one_line_error(tmp_path, make_args, needle):
    result = CliRunner().invoke(
        app, ["cohort", "resimulate", *make_args(tmp_path), "--out", str(tmp_path / "o"), "--json"]
    )
    assert result.exit_code == 2, result.output
    assert needle in result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
