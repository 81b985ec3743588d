"""``cryoneuro worker``: run the registry's background jobs (full plans queued from the
procedure page), so the web process never computes one (issue 18 item 4).

Run as many workers as there are cores to spare, on any machine that reaches the database and
holds the registry key file (the stored bundle is an audited write). Each claims one job at a
time (registry/services/jobs.py says how the claim stays exclusive), writes progress the page
polls, and stops a job whose cancel was asked at its next progress callback.
"""

from __future__ import annotations

import time

import typer

from cryoneuro.cli._app import app, console, emit_json, user_errors
from cryoneuro.cli.registry_cmd import DB_OPTION, KEY_FILE_OPTION, _keyed_factory, _settings


@app.command("worker")
@user_errors
def worker(
    db: str | None = DB_OPTION,
    key_file: str | None = KEY_FILE_OPTION,
    once: bool = typer.Option(
        False, "--once", help="Run at most one queued job, then exit (0 also when none)."
    ),
    poll_s: float = typer.Option(
        5.0, "--poll-s", min=0.1, max=3600, help="Seconds between looks for a queued job."
    ),
    name: str | None = typer.Option(
        None, "--name", help="This worker's name in the job table (default host:pid)."
    ),
    json_out: bool = typer.Option(
        False, "--json", help="With --once: print the job's final state as one JSON object."
    ),
) -> None:
    """Run queued registry jobs (plans) until stopped (Ctrl-C), or one with --once."""
    from cryoneuro.registry.models.jobs import Job
    from cryoneuro.registry.services import jobs

    _, engine, factory = _keyed_factory(_settings(db, key_file))
    label = name or jobs.worker_name()
    try:
        while True:
            job_id = jobs.run_one(factory, label)
            if job_id is not None:
                with factory() as session:
                    job = session.get(Job, job_id)
                    state = jobs.status(job)
                if json_out and once:
                    emit_json(state)
                else:
                    console.print(
                        f"job {job_id} ({state['kind']}, procedure {state['procedure_id']}): "
                        f"{state['state']}" + (f" — {state['error']}" if state["error"] else "")
                    )
            elif once:
                if json_out:
                    emit_json({"id": None, "state": None})
                else:
                    console.print("no queued job")
            if once:
                return
            if job_id is None:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        console.print("worker stopped")
    finally:
        engine.dispose()
