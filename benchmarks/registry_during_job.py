"""Is the registry's web process still responsive while a plan job runs? (issue 18, bar 2:
"p95 < 300 ms for other pages while a plan job runs").

    .venv/bin/python benchmarks/registry_during_job.py                  # starts its own PostgreSQL
    .venv/bin/python benchmarks/registry_during_job.py --seconds 30 --participants 2000 \
        --measure-from simulating --job-start-timeout 180 --finish-wait 120   # simulations only
    .venv/bin/python benchmarks/registry_during_job.py --db postgresql://…   # an existing server

Why a separate benchmark: plans run in ``cryoneuro worker`` (registry/services/jobs.py), never
in a request, but the worker shares the machine's cores, and the database, with the web
process. What a user feels is the latency of the *other* pages while a job computes, so this
script measures exactly that, side by side with the same measurement with no job running (the
peer, in the same run, on the same registry, under the same outside load).

Steps: seed a registry (the demo studies and users, then ``--participants`` participants each
with a procedure, through the service layer as benchmarks/registry_load.py does, so the
dashboard computes visit windows for all of them); start ``cryoneuro serve`` with uvicorn on
127.0.0.1 in a subprocess; queue one plan job of the Morton phantom for a procedure (as the
procedure page's form does, through :func:`cryoneuro.registry.services.jobs.enqueue_plan`);
log ``--clients`` web users in. Then two phases of ``--seconds`` each, every client requesting
back to back (no think time: the harshest load a handful of users can make) the dashboard,
the participant list, a participant page, the procedure page and the job's progress page:

1. **no job running** (the peer): the job is queued and no worker process exists yet;
2. **during the job**: a ``cryoneuro worker`` process is started, and the measurement begins
   once the job's state is ``running``; the job's state and progress are polled from the
   database every 0.5 s, and only requests that *finished while the job was running* count.
   The job first builds the phantom (over a minute on the loaded 2-core machine), then
   simulates the candidates; ``--measure-from simulating`` starts the phase only once the
   simulations have begun (progress > 5 %).
   The script fails (exit 1) when the job was not running for the whole phase, or the phase's
   window came out shorter than half of ``--seconds``.

Afterwards the job may finish (``--finish-wait`` seconds), else it is cancelled. Reported per
page and overall: p50, p95 and max latency of each phase and the during/no-job ratio, the
1-minute load average (os.getloadavg) at the start and end of each phase and its mean over
the phase, the job's progress at the start and end of its window. A table (rich) on stdout,
the figures as JSON in ``--out``. Loopback only; the run is bounded by ``--seconds``,
``--job-start-timeout`` and ``--finish-wait`` (under 4 minutes at the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import registry_load  # noqa: E402  (this folder's seeding and PostgreSQL helpers)

#: The issue's bar (ms).
BAR_P95_MS = 300.0
#: A plan of two candidates (argon, through the neuroma and 2.5 mm proximal, 60 s freezes):
#: tens of seconds on a 2-core machine, long enough to span a measurement phase.
JOB = {"phantom": "morton", "gases": "argon", "offsets_mm": "0,2.5", "shifts_mm": "0"}
JOB_FREEZES = "60"


def _pages(participant_id: int, procedure_id: int, job_id: int) -> dict[str, str]:
    return {
        "dashboard": "/",
        "participant list": "/api/participants",
        "participant page": f"/participants/{participant_id}",
        "procedure page": f"/procedures/{procedure_id}",
        "job progress": f"/procedures/{procedure_id}/plan-jobs/{job_id}/progress",
    }


def _percentiles(ms: list[float]) -> dict[str, float | int]:
    import numpy as np

    if not ms:
        return {"n": 0, "p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    a = np.asarray(ms)
    return {
        "n": len(ms),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "max": float(a.max()),
    }


class JobWatch:
    """Polls the job's state and progress from the database (not through the web app, so
    the watching adds nothing to the load being measured)."""

    def __init__(self, factory, job_id: int) -> None:
        self.factory, self.job_id = factory, job_id
        self.samples: list[tuple[float, str, float, str]] = []  # (monotonic, state, progress, msg)

    def read(self) -> tuple[str, float, str]:
        from cryoneuro.registry.models.jobs import Job

        with self.factory() as session:
            job = session.get(Job, self.job_id)
            return job.state, float(job.progress or 0.0), job.message or ""

    async def poll(self, stop: asyncio.Event, every_s: float = 0.5) -> None:
        while not stop.is_set():
            state, progress, message = await asyncio.to_thread(self.read)
            self.samples.append((time.monotonic(), state, progress, message))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)


async def _login(client, username: str) -> None:
    r = await client.post(
        "/api/login", json={"username": username, "password": registry_load.PASSWORD}
    )
    r.raise_for_status()


async def _client(client, pages: dict[str, str], offset: int, deadline: float, out: list) -> None:
    """Back to back through the pages (each client starting at a different one)."""
    names = list(pages)
    i = offset
    while time.monotonic() < deadline:
        name = names[i % len(names)]
        i += 1
        t0 = time.monotonic()
        r = await client.get(pages[name])
        await r.aread()
        out.append((name, t0, time.monotonic(), r.status_code))


async def _loadavg(stop: asyncio.Event, out: list[float]) -> None:
    while not stop.is_set():
        out.append(os.getloadavg()[0])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _phase(clients, pages, seconds: float, watch: JobWatch | None) -> dict:
    """Run every client for ``seconds``; returns the raw requests, load and job samples."""
    requests: list[tuple[str, float, float, int]] = []
    loads: list[float] = []
    stop = asyncio.Event()
    side = [asyncio.create_task(_loadavg(stop, loads))]
    if watch is not None:
        side.append(asyncio.create_task(watch.poll(stop)))
    load_start = os.getloadavg()[0]
    t0 = time.monotonic()
    await asyncio.gather(
        *(_client(c, pages, n, t0 + seconds, requests) for n, c in enumerate(clients))
    )
    t1 = time.monotonic()
    stop.set()
    await asyncio.gather(*side)
    return {
        "requests": requests,
        "t0": t0,
        "t1": t1,
        "load": {
            "start": load_start,
            "end": os.getloadavg()[0],
            "mean": sum(loads) / len(loads) if loads else float("nan"),
        },
    }


def _summary(requests: list[tuple[str, float, float, int]], pages: dict[str, str]) -> dict:
    by_page = {
        name: _percentiles([(e - s) * 1e3 for n, s, e, _ in requests if n == name])
        for name in pages
    }
    by_page["overall"] = _percentiles([(e - s) * 1e3 for _, s, e, _ in requests])
    codes = [c for *_, c in requests]
    return {
        "latency_ms": by_page,
        "status": {str(c): codes.count(c) for c in sorted(set(codes))},
    }


def _wait_port(port: int, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise SystemExit(f"the web server exited early (code {process.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the web server did not listen on port {port} within {timeout_s:.0f} s")


def _table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    idle, busy = report["no_job"], report["during_job"]
    table = Table(
        title=f"Registry latency with and without a plan job ({report['clients']} clients, "
        f"back to back; bar: p95 < {BAR_P95_MS:.0f} ms during the job)"
    )
    table.add_column("page")
    for head in ("n", "p50 ms", "p95 ms", "max ms"):
        table.add_column(f"no job {head}", justify="right")
    for head in ("n", "p50 ms", "p95 ms", "max ms"):
        table.add_column(f"job {head}", justify="right")
    table.add_column("p95 ratio", justify="right")
    for name, a in idle["latency_ms"].items():
        b = busy["latency_ms"][name]
        table.add_row(
            name,
            str(a["n"]),
            f"{a['p50']:.0f}",
            f"{a['p95']:.0f}",
            f"{a['max']:.0f}",
            str(b["n"]),
            f"{b['p50']:.0f}",
            f"{b['p95']:.0f}",
            f"{b['max']:.0f}",
            f"{report['p95_ratio'][name]:.2f}",
        )
    console = Console(width=max(Console().width, 150))
    console.print(table)
    job = report["job"]
    console.print(
        f"load average (1 min) no job: {idle['load']['start']:.1f} → {idle['load']['end']:.1f} "
        f"(mean {idle['load']['mean']:.1f}); during the job: {busy['load']['start']:.1f} → "
        f"{busy['load']['end']:.1f} (mean {busy['load']['mean']:.1f}); {os.cpu_count()} cores\n"
        f"job {job['id']}: running for the whole window: {job['running_throughout']}; progress "
        f"{job['progress_start']:.2f} → {job['progress_end']:.2f} over {busy['window_s']:.1f} s "
        f"('{job['message_start']}' → '{job['message_end']}'); final state {job['final_state']}"
        f"{' after ' + format(job['wall_s'], '.0f') + ' s' if job['wall_s'] else ''}\n"
        f"status codes: no job {idle['status']}, during {busy['status']}; "
        f"overall p95 during the job {busy['latency_ms']['overall']['p95']:.0f} ms: bar "
        f"{'met' if report['bar_met'] else 'NOT met'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="PostgreSQL URL (default: start a throwaway cluster)")
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--clients", type=int, default=5, help="concurrent web users")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    parser.add_argument("--workers", type=int, default=1, help="web server processes")
    parser.add_argument(
        "--freezes-s",
        default=JOB_FREEZES,
        help="freeze times of the plan job (comma-separated; more make a longer job)",
    )
    parser.add_argument("--offsets-mm", default=JOB["offsets_mm"], help="the job's offsets")
    parser.add_argument(
        "--measure-from",
        choices=("running", "simulating"),
        default="running",
        help="start the job phase when the worker has claimed the job (it first builds the "
        "phantom), or only once its simulations have begun (progress > 5 %%)",
    )
    parser.add_argument("--job-start-timeout", type=float, default=60.0)
    parser.add_argument(
        "--finish-wait",
        type=float,
        default=45.0,
        help="after the measurement, seconds to let the job finish before cancelling it",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "registry_during_job.json")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.participants < 1:
        parser.error("--clients, --seconds and --participants must be positive")

    import httpx
    from sqlalchemy import select

    from cryoneuro.registry.audit import make_sessionmaker
    from cryoneuro.registry.auth import Actor
    from cryoneuro.registry.db import make_engine, transaction
    from cryoneuro.registry.models import Procedure, User
    from cryoneuro.registry.services import jobs
    from cryoneuro.registry.settings import RegistrySettings

    args.out.parent.mkdir(parents=True, exist_ok=True)
    url, stop_db = args.db, None
    if url is None:
        url, stop_db = registry_load.start_postgres()
    server = worker = engine = None
    logs = []
    try:
        t_seed = time.perf_counter()
        ids = registry_load.seed(url, args.participants)
        seed_s = time.perf_counter() - t_seed
        settings = RegistrySettings(db_url=url, key_file=registry_load.KEY_FILE).load_keys()
        engine = make_engine(url)
        factory = make_sessionmaker(engine, settings.keys)
        participant_id = ids["RBH"][0]
        with transaction(factory) as session:
            procedure_id = session.scalar(
                select(Procedure.id).where(Procedure.participant_id == participant_id)
            )
            nurse = session.scalar(select(User).where(User.username == "nurse"))
            job = jobs.enqueue_plan(
                session,
                Actor.from_user(nurse),
                procedure_id,
                {**JOB, "offsets_mm": args.offsets_mm, "freezes_s": args.freezes_s},
            )
            job_id, job_parameters = job.id, dict(job.parameters)
        watch = JobWatch(factory, job_id)

        env = {
            **os.environ,
            "CRYONEURO_KEY_FILE": str(registry_load.KEY_FILE),
            "CRYONEURO_SECURE_COOKIES": "false",
        }
        port = registry_load._free_port()
        logs.append(open(args.out.with_suffix(".server.log"), "w"))  # noqa: SIM115
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cryoneuro.cli",
                "serve",
                "--db",
                url,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-upgrade",
                "--workers",
                str(args.workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=logs[-1],
        )
        _wait_port(port, server)
        pages = _pages(participant_id, procedure_id, job_id)

        async def run() -> dict:
            clients = [
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60.0)
                for _ in range(args.clients)
            ]
            try:
                # argon2 logins are deliberately slow: done before any timing
                await asyncio.gather(*(_login(c, "nurse") for c in clients))
                for c in clients:  # one warm-up round (templates, first queries)
                    for path in pages.values():
                        (await c.get(path)).raise_for_status()
                assert watch.read()[0] == "queued", "the job must wait for the worker"
                idle = await _phase(clients, pages, args.seconds, None)
                if watch.read()[0] != "queued":
                    raise SystemExit("the job left the queue during the no-job phase")

                nonlocal worker
                logs.append(open(args.out.with_suffix(".worker.log"), "w"))  # noqa: SIM115
                worker = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "cryoneuro.cli",
                        "worker",
                        "--db",
                        url,
                        "--key-file",
                        str(registry_load.KEY_FILE),
                        "--poll-s",
                        "0.5",
                    ],
                    env=env,
                    stdout=logs[-1],
                    stderr=subprocess.STDOUT,
                )
                t_worker = time.monotonic()
                threshold = 0.05 if args.measure_from == "simulating" else 0.0

                def started(state: str, progress: float) -> bool:
                    return state == "running" and progress >= threshold

                while not started(*(now := await asyncio.to_thread(watch.read))[:2]):
                    state = now[0]
                    if state not in ("queued", "running"):
                        raise SystemExit(f"the job ended ({state}) before it was measured")
                    if time.monotonic() - t_worker > args.job_start_timeout:
                        raise SystemExit("the worker did not start the job in time")
                    await asyncio.sleep(0.2)
                busy = await _phase(clients, pages, args.seconds, watch)
            finally:
                for c in clients:
                    await c.aclose()
            return {"idle": idle, "busy": busy, "t_worker": t_worker}

        raw = asyncio.run(run())

        # the window in which the job was seen running (first and last running sample)
        running = [s for s in watch.samples if s[1] == "running"]
        if not running:
            raise SystemExit("the job was never seen running during the measurement")
        w0, w1 = running[0][0], running[-1][0]
        running_throughout = all(s[1] == "running" for s in watch.samples)
        busy_requests = [r for r in raw["busy"]["requests"] if w0 <= r[1] and r[2] <= w1]

        # let the job finish, or cancel it (the worker stops at its next progress callback)
        t_end = time.monotonic() + args.finish_wait
        state = watch.read()[0]
        while state in ("queued", "running") and time.monotonic() < t_end:
            time.sleep(1.0)
            state = watch.read()[0]
        if state in ("queued", "running"):
            with transaction(factory) as session:
                nurse = session.scalar(select(User).where(User.username == "nurse"))
                jobs.cancel(session, Actor.from_user(nurse), procedure_id, job_id)
            end = time.monotonic() + 60
            while state in ("queued", "running") and time.monotonic() < end:
                time.sleep(1.0)
                state = watch.read()[0]
        from cryoneuro.registry.models.jobs import Job

        with factory() as session:
            final = jobs.status(session.get(Job, job_id))
        wall = None
        if final["started_at"] and final["finished_at"] and final["state"] == "done":
            wall = (
                dt.datetime.fromisoformat(final["finished_at"])
                - dt.datetime.fromisoformat(final["started_at"])
            ).total_seconds()
    finally:
        for process in (worker, server):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for log in logs:
            log.close()
        if engine is not None:
            engine.dispose()
        if stop_db is not None:
            stop_db()

    idle_summary = _summary(raw["idle"]["requests"], pages)
    busy_summary = _summary(busy_requests, pages)
    report = {
        "date": dt.date.today().isoformat(),
        "cores": os.cpu_count(),
        "participants": args.participants,
        "clients": args.clients,
        "server_workers": args.workers,
        "phase_seconds": args.seconds,
        "measure_from": args.measure_from,
        "seed_seconds": seed_s,
        "pages": pages,
        "no_job": {
            **idle_summary,
            "window_s": raw["idle"]["t1"] - raw["idle"]["t0"],
            "load": raw["idle"]["load"],
        },
        "during_job": {
            **busy_summary,
            "window_s": w1 - w0,
            "requests_outside_window": len(raw["busy"]["requests"]) - len(busy_requests),
            "load": raw["busy"]["load"],
        },
        "job": {
            "id": job_id,
            "parameters": job_parameters,
            "running_throughout": running_throughout,
            "progress_start": running[0][2],
            "progress_end": running[-1][2],
            "message_start": running[0][3],
            "message_end": running[-1][3],
            "worker_start_to_running_s": w0 - raw["t_worker"],
            "final_state": final["state"],
            "final_message": final["message"],
            "error": final["error"],
            "wall_s": wall,
        },
    }
    report["p95_ratio"] = {
        name: busy_summary["latency_ms"][name]["p95"] / idle_summary["latency_ms"][name]["p95"]
        for name in idle_summary["latency_ms"]
    }
    report["bar_met"] = bool(busy_summary["latency_ms"]["overall"]["p95"] < BAR_P95_MS)
    errors = sum(
        n for s in (idle_summary, busy_summary) for c, n in s["status"].items() if c != "200"
    )
    report["valid"] = bool(running_throughout and (w1 - w0) >= args.seconds / 2 and errors == 0)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    _table(report)
    if not report["valid"]:
        print(
            "INVALID run: the job was not running for the whole phase, the window was shorter "
            "than half of --seconds, or a request failed (see the JSON)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
