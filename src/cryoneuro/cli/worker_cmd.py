"""``cryoneuro worker``: run the registry's background jobs (full plans queued from the
procedure page), so the web process never computes one (issue 18 item 4).

Run as many workers as there are cores to spare, on any machine that reaches the database and
holds the registry key file (the stored bundle is an audited write). Each claims one job at a
time (registry/services/jobs.py says how the claim stays exclusive), writes progress the page
polls, and stops a job whose cancel was asked at its next progress callback.
"""

from __future__ import annotations

import signal
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

    def stop(_signum: int, _frame: object) -> None:
        # SIGTERM (systemd, docker stop): the running job stops at its next progress
        # callback and goes back to the queue; then the loop ends
        jobs.STOP.set()

    jobs.STOP.clear()
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while not jobs.STOP.is_set():
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
                # short sleeps, not STOP.wait(): the handler that sets STOP runs in this
                # thread, and must not need the lock a waiting Event holds
                end = time.monotonic() + poll_s
                while not jobs.STOP.is_set() and time.monotonic() < end:
                    time.sleep(min(0.2, poll_s))
        console.print("worker stopped")
    except KeyboardInterrupt:
        console.print("worker stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)
        engine.dispose()
