"""The workspace's search proposal (issue 18 item 2: "the user places entry and tip by clicking
(or accepts the search's proposal)"): "Search" queues the planner's continuous search on the
uploaded images as a job; the worker plans the case and stores the bundle with the procedure;
``case.json`` then proposes that plan's probe — the same tip and direction as in the stored
``plan.json`` (read here from the database, the independent path) — instead of the vertical
default. Bad search settings are refused with the field named; nothing is queued."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import select
from test_registry_case_images import morton_case  # noqa: F401
from test_registry_workspace import _accepted

from cryoneuro.registry.models.files import PlanFile
from cryoneuro.registry.models.jobs import Job
from cryoneuro.registry.services import jobs

pytestmark = pytest.mark.slow  # a small search: a dozen 3-D simulations on 1 mm grids


def test_search_job_proposes_its_plan_probe(client, morton_case) -> None:  # noqa: F811
    headers, proc_id = _accepted(client, morton_case)
    before = client.get(f"/procedures/{proc_id}/plan/case.json").json()["proposal"]
    assert before["source"] == "default"
    bad = client.post(
        f"/procedures/{proc_id}/plan/search",
        data={"csrf_token": headers["X-CSRF-Token"], "protocol": "nonsense"},
    )
    assert bad.status_code == 422
    assert "protocol: choose one of" in bad.text
    registry = client.registry
    with registry.factory() as session:
        assert session.scalar(select(Job.id).where(Job.procedure_id == proc_id)) is None
    run = client.post(
        f"/procedures/{proc_id}/plan/search",
        data={
            "csrf_token": headers["X-CSRF-Token"],
            "voxel_mm": "1.0",
            "n_sobol": "4",
            "n_local": "4",
        },
        follow_redirects=False,
    )
    assert run.status_code == 303, run.text
    with registry.factory() as session:
        job = session.scalar(select(Job).where(Job.procedure_id == proc_id))
        assert job.parameters["mode"] == "search"
    assert jobs.run_one(registry.factory) == job.id
    with registry.factory() as session:
        job = session.get(Job, job.id)
        assert job.state == "done", job.error
        stored = session.scalar(
            select(PlanFile).where(PlanFile.procedure_id == proc_id, PlanFile.name == "plan.json")
        )
        plan = json.loads(stored.content)
    assert plan["case"] == f"procedure-{proc_id}"
    assert plan["inputs"]["search"]["method"] == "continuous"
    after = client.get(f"/procedures/{proc_id}/plan/case.json").json()["proposal"]
    assert after["source"] == "search"
    np.testing.assert_allclose(after["tip_mm"], plan["probes"][0]["tip_mm"], atol=1e-3)
    np.testing.assert_allclose(after["direction"], plan["probes"][0]["direction"], atol=1e-9)
    assert ("not feasible" in after["rule"]) == (not plan["feasible"])


def test_search_settings_are_checked() -> None:
    ok = jobs.plan_parameters({"mode": "search", "n_sobol": "8", "voxel_mm": "1.0"})
    assert (ok["n_sobol"], ok["voxel_mm"], ok["source"]) == (8, 1.0, "case")
    for raw, field in (
        ({"n_sobol": "0"}, "n_sobol"),
        ({"n_local": "2.5"}, "n_local"),
        ({"n_local": "65"}, "n_local"),
        ({"voxel_mm": "0.7"}, "voxel_mm"),
        ({"drive": "magic"}, "drive"),
    ):
        with pytest.raises(jobs.RegistryInputError) as info:
            jobs.plan_parameters({"mode": "search", **raw})
        assert info.value.field == field
