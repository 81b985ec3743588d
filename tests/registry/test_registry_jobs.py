"""Plan jobs (issue 18 item 4): queued from the procedure page, run by ``cryoneuro worker``,
progress recorded, the bundle stored with the procedure in one transaction, retries, failure
with its error line, cancel, and an exclusive claim (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import threading

import pytest
from registry_helpers import enrolment, login, procedure
from sqlalchemy import select
from typer.testing import CliRunner

from cryoneuro.cli import app
from cryoneuro.registry.audit import verify_chain
from cryoneuro.registry.errors import RegistryInputError
from cryoneuro.registry.models import AuditEntry, Procedure
from cryoneuro.registry.models.files import PlanFile
from cryoneuro.registry.models.jobs import Job
from cryoneuro.registry.services import jobs, plan_files

#: One candidate (argon, through the neuroma, 60 s freezes): the cheapest real plan.
CHEAP = {"gases": "argon", "offsets_mm": "0", "shifts_mm": "0", "freezes_s": "60"}


def _procedure(client, user: str = "nurse") -> tuple[dict, int]:
    headers = login(client, user)
    pid = client.post("/api/participants", json=enrolment(), headers=headers).json()["id"]
    body = procedure()
    body.pop("plan")
    proc = client.post(f"/api/participants/{pid}/procedures", json=body, headers=headers)
    assert proc.status_code == 201, proc.text
    return headers, proc.json()["id"]


def _queue(client, headers: dict, proc_id: int, **fields: str):
    return client.post(
        f"/procedures/{proc_id}/plan-jobs",
        data={"csrf_token": headers["X-CSRF-Token"], "phantom": "morton", **fields},
        follow_redirects=False,
    )


def _worker(registry, *extra: str):
    return CliRunner().invoke(
        app,
        [
            "worker",
            "--db",
            registry.url,
            "--key-file",
            str(registry.settings.key_path()),
            "--once",
            "--json",
            *extra,
        ],
    )


def _job_events(registry, job_id: int) -> list[AuditEntry]:
    with registry.factory() as session:
        return list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.table_name == "job", AuditEntry.row_id == str(job_id))
                .order_by(AuditEntry.id)
            )
        )


def test_plan_job_runs_in_the_worker_and_stores_the_bundle(client, monkeypatch) -> None:
    registry = client.registry
    headers, proc_id = _procedure(client)
    # record every progress write the worker makes
    seen: list[tuple[float, str]] = []
    original = jobs.report_progress

    def recording(factory, job_id, fraction, message):
        original(factory, job_id, fraction, message)
        with factory() as session:
            job = session.get(Job, job_id)
            seen.append((job.progress, job.message))

    monkeypatch.setattr(jobs, "report_progress", recording)

    response = _queue(client, headers, proc_id, **CHEAP)
    assert response.status_code == 303, response.text
    page = client.get(f"/procedures/{proc_id}").text
    job_id = int(re.search(r'id="plan-job-(\d+)" data-state="queued"', page).group(1))
    # the queued job is polled by htmx; no plan was made in the request
    assert f'hx-get="/procedures/{proc_id}/plan-jobs/{job_id}/progress"' in page
    assert "/static/htmx/htmx.min.js" in page
    with registry.factory() as session:
        assert session.scalar(select(PlanFile).where(PlanFile.procedure_id == proc_id)) is None
    status = client.get(f"/procedures/{proc_id}/plan-jobs/{job_id}").json()
    assert status["state"] == "queued"
    assert status["parameters"]["offsets_mm"] == [0.0]

    result = _worker(registry)
    assert result.exit_code == 0, result.output
    final = json.loads(result.stdout)
    assert (final["id"], final["state"]) == (job_id, "done"), final
    assert final["progress"] == 1.0
    assert final["attempts"] == 1

    # progress rose monotonically from 0 through the planner's screening and confirmation
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)
    assert fractions[0] == 0.0
    assert fractions[-1] < 1.0
    messages = " | ".join(m for _, m in seen)
    assert "screening 1/1" in messages
    assert "confirming 1/1" in messages

    with registry.factory() as session:
        files = {
            f.name
            for f in session.scalars(select(PlanFile).where(PlanFile.procedure_id == proc_id))
        }
        plan = session.get(Procedure, proc_id).plan
    assert {"plan.json", "report.html", "image.nii.gz", "iceball_labels.nii.gz"} <= files
    # the stored plan is the one the job asked for: one argon candidate at offset 0, 60 s
    assert plan["case"] == "morton_forefoot"
    assert [
        (c["gas"], c["offset_mm"], c["freeze_s"]) for c in plan["inputs"]["screened_at_1mm"]
    ] == [("argon", 0.0, 60.0)]
    page = client.get(f"/procedures/{proc_id}").text
    assert 'id="plan-report"' in page
    assert 'id="plan-viewer"' in page
    assert f'id="plan-job-{job_id}" data-state="done"' in page
    assert "hx-get" not in page  # nothing left to poll
    # a poll that finds the job done asks htmx to reload the page (report + viewer)
    poll = client.get(
        f"/procedures/{proc_id}/plan-jobs/{job_id}/progress", headers={"HX-Request": "true"}
    )
    assert poll.headers.get("HX-Refresh") == "true"

    actions = [e.action for e in _job_events(registry, job_id)]
    assert actions == ["job-queue", "job-start", "job-done"]
    with registry.factory() as session:
        uploads = session.scalars(
            select(AuditEntry).where(
                AuditEntry.table_name == "plan_file", AuditEntry.action == "create"
            )
        ).all()
        assert uploads
        assert all(e.username == "nurse" for e in uploads)
        assert verify_chain(session, registry.settings.keys.audit_key).ok


def test_plan_job_that_cannot_plan_fails_once_with_its_error_shown(client) -> None:
    registry = client.registry
    headers, proc_id = _procedure(client)
    # 8 mm lateral the vertical needle meets a metatarsal: no path, before any simulation
    assert _queue(client, headers, proc_id, **{**CHEAP, "offsets_mm": "8"}).status_code == 303
    result = _worker(registry)
    final = json.loads(result.stdout)
    assert final["state"] == "failed"
    assert final["attempts"] == 1
    assert "every candidate needle path is refused" in final["error"]
    page = client.get(f"/procedures/{proc_id}").text
    assert "Failed: morton_forefoot: every candidate needle path is refused" in page
    assert [e.action for e in _job_events(registry, final["id"])] == [
        "job-queue",
        "job-start",
        "job-fail",
    ]


def test_stale_job_is_retried_then_failed(client) -> None:
    registry = client.registry
    headers, proc_id = _procedure(client)
    assert _queue(client, headers, proc_id, **CHEAP).status_code == 303
    t0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    step = dt.timedelta(seconds=jobs.STALE_AFTER_S + 1)
    # three workers in turn take the job and die without a heartbeat
    claimed = [
        jobs.claim(registry.factory, f"w{n}", now=t0 + n * step) for n in range(jobs.MAX_ATTEMPTS)
    ]
    assert len(set(claimed)) == 1
    assert claimed[0] is not None
    with registry.factory() as session:
        job = session.get(Job, claimed[0])
        assert (job.state, job.attempts, job.worker) == ("running", 3, "w2")
        assert "the worker w1 stopped responding" in job.error
    # the next look finds the third attempt stale too: no attempts left
    assert jobs.claim(registry.factory, "w3", now=t0 + 3 * step) is None
    status = client.get(f"/procedures/{proc_id}/plan-jobs/{claimed[0]}").json()
    assert status["state"] == "failed"
    assert status["attempts"] == 3
    assert status["error"].startswith("the worker w2 stopped responding")
    page = client.get(f"/procedures/{proc_id}").text
    assert "Failed: the worker w2 stopped responding" in page
    actions = [e.action for e in _job_events(registry, claimed[0])]
    assert actions == [
        "job-queue",
        "job-start",
        "job-retry",
        "job-start",
        "job-retry",
        "job-start",
        "job-fail",
    ]


def test_unexpected_error_is_retried(client, monkeypatch) -> None:
    registry = client.registry
    headers, proc_id = _procedure(client)
    assert _queue(client, headers, proc_id, **CHEAP).status_code == 303
    calls: list[int] = []

    def flaky(factory, job_id):
        calls.append(job_id)
        raise (
            MemoryError("out of memory while meshing")
            if len(calls) == 1
            else OSError("disk full\nsecond line")
        )

    monkeypatch.setitem(jobs.HANDLERS, "plan", flaky)
    first = json.loads(_worker(registry).stdout)
    assert (first["state"], first["attempts"]) == ("queued", 1)
    assert first["error"] == "MemoryError: out of memory while meshing"
    second = json.loads(_worker(registry).stdout)
    assert (second["state"], second["attempts"]) == ("queued", 2)
    assert second["error"] == "OSError: disk full"  # one line
    third = json.loads(_worker(registry).stdout)
    assert (third["state"], third["attempts"]) == ("failed", 3)
    assert json.loads(_worker(registry).stdout) == {"id": None, "state": None}
    assert calls == [first["id"]] * 3


def test_cancel_queued_and_running(client) -> None:
    registry = client.registry
    headers, proc_id = _procedure(client)
    token = {"csrf_token": headers["X-CSRF-Token"]}
    assert _queue(client, headers, proc_id, **CHEAP).status_code == 303
    with registry.factory() as session:
        job_id = session.scalar(select(Job.id).where(Job.procedure_id == proc_id))
    # a second job while one is queued is refused
    assert _queue(client, headers, proc_id, **CHEAP).status_code == 409
    # no CSRF token, no cancel
    assert client.post(f"/procedures/{proc_id}/plan-jobs/{job_id}/cancel").status_code == 403
    cancel = client.post(
        f"/procedures/{proc_id}/plan-jobs/{job_id}/cancel", data=token, follow_redirects=False
    )
    assert cancel.status_code == 303
    assert client.get(f"/procedures/{proc_id}/plan-jobs/{job_id}").json()["state"] == "cancelled"
    assert json.loads(_worker(registry).stdout)["id"] is None  # nothing left to run
    again = client.post(f"/procedures/{proc_id}/plan-jobs/{job_id}/cancel", data=token)
    assert again.status_code == 409

    # a running job: the cancel sets a flag; the worker stops at its next progress callback
    assert _queue(client, headers, proc_id, **CHEAP).status_code == 303
    running = jobs.claim(registry.factory, "w1")
    assert (
        client.post(
            f"/procedures/{proc_id}/plan-jobs/{running}/cancel", data=token, follow_redirects=False
        ).status_code
        == 303
    )
    status = client.get(f"/procedures/{proc_id}/plan-jobs/{running}").json()
    assert status["state"] == "running"
    assert status["cancel_requested"] is True
    jobs.execute(registry.factory, running)
    status = client.get(f"/procedures/{proc_id}/plan-jobs/{running}").json()
    assert status["state"] == "cancelled"
    assert status["finished_at"]
    with registry.factory() as session:
        assert session.scalar(select(PlanFile).where(PlanFile.procedure_id == proc_id)) is None
    assert [e.action for e in _job_events(registry, running)] == [
        "job-queue",
        "job-start",
        "job-cancel",
        "job-cancel",
    ]


def test_queue_checks_role_site_and_parameters(client) -> None:
    headers, proc_id = _procedure(client)
    bad = _queue(client, headers, proc_id, **{**CHEAP, "freezes_s": "60, nan"})
    assert bad.status_code == 422
    assert "freezes_s: nan is outside" in bad.text
    bad = _queue(client, headers, proc_id, phantom="knee")
    assert bad.status_code == 422
    assert "phantom: choose one of morton, stump" in bad.text
    bad = _queue(client, headers, proc_id, **{**CHEAP, "gases": "helium"})
    assert bad.status_code == 422
    assert "gases: 'helium' is not one of" in html.unescape(bad.text)
    # no CSRF token
    assert (
        client.post(f"/procedures/{proc_id}/plan-jobs", data={"phantom": "morton"}).status_code
        == 403
    )
    # read-only role and another site's user may not queue
    monitor = login(client, "monitor")
    assert _queue(client, monitor, proc_id, **CHEAP).status_code == 403
    leeds = login(client, "leedsnurse")
    assert _queue(client, leeds, proc_id, **CHEAP).status_code == 404
    # nor read its jobs: the JSON status route answers JSON
    missing = client.get(f"/procedures/{proc_id}/plan-jobs/1")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no such participant at your sites"
    with client.registry.factory() as session:
        assert session.scalar(select(Job.id)) is None


def test_plan_parameters_defaults_are_the_planners() -> None:
    from cryoneuro.planning import pipeline

    p = jobs.plan_parameters({"phantom": "stump"})
    assert p["gases"] == list(pipeline.GASES)
    assert p["offsets_mm"] == list(pipeline.OFFSETS_MM)
    assert p["freezes_s"] == list(pipeline.FREEZE_S)
    with pytest.raises(RegistryInputError, match="offsets_mm: a value appears twice"):
        jobs.plan_parameters({"phantom": "stump", "offsets_mm": "1, 1"})


def _race(registry, n_jobs: int, n_workers: int) -> list[int]:
    """``n_workers`` threads claim until the queue is empty; every id they got."""
    got: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n_workers)

    def work(name: str) -> None:
        barrier.wait()
        while (job_id := jobs.claim(registry.factory, name)) is not None:
            with lock:
                got.append(job_id)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def _queue_direct(registry, n: int) -> list[int]:
    """Queue ``n`` jobs through the service (one procedure each)."""
    from registry_helpers import nhs_numbers

    from cryoneuro.registry.db import transaction
    from cryoneuro.registry.schemas import EnrolmentIn, ProcedureIn
    from cryoneuro.registry.services import clinical, participants

    actor = registry.actor("nurse")
    ids = []
    for nhs in nhs_numbers(n):
        with transaction(registry.factory) as session:
            part = participants.enrol(
                session, registry.settings, actor, EnrolmentIn.model_validate(enrolment(nhs))
            )
            body = procedure()
            body.pop("plan")
            proc = clinical.record_procedure(
                session, actor, part.id, ProcedureIn.model_validate(body)
            )
            ids.append(jobs.enqueue_plan(session, actor, proc.id, {"phantom": "morton"}).id)
    return ids


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_claim_is_exclusive(backend, request) -> None:
    registry = request.getfixturevalue("registry" if backend == "sqlite" else "pg_registry")
    queued = _queue_direct(registry, 6)
    got = _race(registry, 6, 3)
    assert sorted(got) == sorted(queued)  # each job claimed exactly once
    with registry.factory() as session:
        rows = session.scalars(select(Job)).all()
        assert {(j.state, j.attempts) for j in rows} == {("running", 1)}
        assert len({j.worker for j in rows}) >= 1


def test_postgres_claim_skips_a_locked_row(pg_registry) -> None:
    """While one worker's transaction holds the oldest queued row, another claims the next
    at once (SKIP LOCKED) instead of waiting for it."""
    first, second = _queue_direct(pg_registry, 2)
    holder = pg_registry.factory()
    try:
        holder.execute(select(Job).where(Job.id == first).with_for_update())
        assert jobs.claim(pg_registry.factory, "w2") == second
    finally:
        holder.rollback()
        holder.close()
    assert jobs.claim(pg_registry.factory, "w3") == first


def test_enqueue_needs_reason_to_replace_a_bundle(client) -> None:
    from plan_bundle_helpers import make_bundle

    headers, proc_id = _procedure(client)
    registry = client.registry
    with registry.factory() as session:
        plan_files.attach_bundle(session, registry.actor("nurse"), proc_id, make_bundle(_tmp()))
        session.commit()
    refused = _queue(client, headers, proc_id, **CHEAP)
    assert refused.status_code == 422
    assert "give a reason for replacing it" in refused.text
    assert _queue(client, headers, proc_id, reason="re-plan with argon", **CHEAP).status_code == 303


def _tmp():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="cryoneuro-jobtest-"))


def test_sigterm_gives_the_running_job_back(registry) -> None:
    """`cryoneuro worker` as its own process: stopped mid-plan (SIGTERM, as by systemd), it
    puts the job back in the queue with the attempt counted, and exits cleanly."""
    import os
    import signal
    import subprocess
    import sys
    import time

    (job_id,) = _queue_direct(registry, 1)
    with registry.factory() as session:
        session.get(Job, job_id).parameters = {
            **jobs.plan_parameters({"phantom": "morton", **CHEAP})
        }
        session.commit()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from cryoneuro.cli import app; app()",
            "worker",
            "--db",
            registry.url,
            "--key-file",
            str(registry.settings.key_path()),
            "--poll-s",
            "0.2",
            "--name",
            "sub",
        ],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        state = None
        while time.monotonic() < deadline and process.poll() is None:
            with registry.factory() as session:
                job = session.get(Job, job_id)
                state = (job.state, job.message)
            if state[0] == "running":
                break
            time.sleep(0.2)
        assert state is not None
        assert state[0] == "running", state
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err.decode()[-2000:]
    assert b"worker stopped" in err
    with registry.factory() as session:
        job = session.get(Job, job_id)
        assert (job.state, job.attempts, job.worker) == ("queued", 1, None)
        assert job.error == "the worker was stopped during the job"
