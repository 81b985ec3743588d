"""Registry load test (issue 7): many concurrent users entering follow-up data into a
registry of 10,000 participants on PostgreSQL, over loopback only.

    .venv/bin/python benchmarks/registry_load.py                       # starts its own PostgreSQL
    .venv/bin/python benchmarks/registry_load.py --users 20 --think-s 0 --requests 3000 \
        --out benchmarks/results/registry_load_stress.json              # saturation
    .venv/bin/python benchmarks/registry_load.py --db postgresql://…   # an existing server
    .venv/bin/python benchmarks/registry_load.py --participants 2000 --requests 600   # quicker

It seeds the participants, each with a procedure 30–390 days ago, through the service layer
(audit trail included), starts
`cryoneuro serve` on 127.0.0.1, and runs a bounded number of requests from concurrent API
users (each its own login session; exponential think time between requests, mean
``--think-s``): 90 % follow-up visit entries, 10 % dashboard reads.
It reports throughput and latency percentiles to stdout (Markdown) and
benchmarks/results/registry_load.json. Traffic never leaves the loopback interface, and the
run stops by itself after ``--requests`` requests or ``--max-seconds``.

``--mix pages`` (issue 17 item 7) drives the server-rendered pages instead, as a data-entry
user clicks through them, logged in through the login form: each client repeats the cycle
dashboard page (``/``) → participant list (``/api/participants``, one page of it) →
participant page → follow-up form GET → follow-up form POST, so each kind is a fifth of the
requests; latency percentiles are reported per kind.

    .venv/bin/python benchmarks/registry_load.py --mix pages --users 20 --think-s 0 \
        --requests 3000 --out benchmarks/results/registry_saturation_pages.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PASSWORD = "load-test-password-1"
VISITS = ["m1", "m3", "m6", "m12"]  # the demo studies' follow-up schedule


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres() -> tuple[str, callable]:
    """A throwaway cluster in a temp dir (as .ci/run does); returns its URL and a stopper."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bins:
        raise SystemExit(
            "PostgreSQL server binaries not found; install Debian's postgresql or pass --db"
        )
    pgbin, base, port = bins[-1], Path(tempfile.mkdtemp()), _free_port()
    prefix = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [
            *prefix,
            str(pgbin / "initdb"),
            "-D",
            str(base / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        [
            *prefix,
            str(pgbin / "pg_ctl"),
            "-D",
            str(base / "data"),
            "-l",
            str(base / "log"),
            "-w",
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )

    def stop() -> None:
        subprocess.run(
            [*prefix, str(pgbin / "pg_ctl"), "-D", str(base / "data"), "-m", "fast", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(base, ignore_errors=True)

    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop


#: Fresh random keys for this run (no built-in secret, issue 13).
KEY_FILE = Path(tempfile.mkdtemp(prefix="cryoneuro-load-keys-")) / "registry-keys.json"


def _pg_tool(name: str) -> str:
    return str(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))[-1])


def _ids_by_site(url: str) -> dict[str, list[int]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    ids: dict[str, list[int]] = {"RBH": [], "LTH": []}
    with engine.connect() as conn:
        for pid, code in conn.execute(
            text(
                "SELECT p.id, s.code FROM participant p JOIN site s ON s.id = p.site_id "
                "ORDER BY p.id"
            )
        ):
            ids.setdefault(code, []).append(pid)
    engine.dispose()
    return ids


def seed_or_restore(url: str, participants: int, snapshot: Path | None) -> dict[str, list[int]]:
    """:func:`seed`, or with ``snapshot`` (a folder) the same registry restored from an earlier
    run's seeding: the first run seeds through the services and saves ``pg_dump -Fc`` plus its
    key file there; later runs with the same ``--participants`` restore it (``pg_restore``,
    seconds instead of minutes) and migrate it to the current head. The rows are the ones the
    services wrote, audit chain included; procedure dates are relative to the seeding day, so
    a snapshot is for the day it was made (older ones are refused)."""
    import datetime as dt

    if snapshot is None:
        return seed(url, participants)
    meta_path = snapshot / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta["participants"] != participants or meta["date"] != dt.date.today().isoformat():
            raise SystemExit(f"{snapshot}: made for {meta}; remove it or use another folder")
        shutil.copyfile(snapshot / "registry-keys.json", KEY_FILE)
        KEY_FILE.chmod(0o600)  # the server refuses a key file others can read
        with open(snapshot / "registry.pgc", "rb") as dump:
            subprocess.run(
                [_pg_tool("pg_restore"), "--no-owner", "-d", url], stdin=dump, check=True
            )
        from cryoneuro.registry.migrate import upgrade

        upgrade(url)  # a snapshot from an older schema gains the newer migrations
        # pg_restore leaves the planner without statistics (a live registry has them from
        # autovacuum, which would otherwise gather them in the middle of the timed run)
        subprocess.run([_pg_tool("vacuumdb"), "--analyze-only", "-q", "-d", url], check=True)
        return _ids_by_site(url)
    ids = seed(url, participants)
    snapshot.mkdir(parents=True, exist_ok=True)
    with open(snapshot / "registry.pgc", "wb") as dump:
        subprocess.run([_pg_tool("pg_dump"), "-Fc", "-d", url], stdout=dump, check=True)
    shutil.copyfile(KEY_FILE, snapshot / "registry-keys.json")
    (snapshot / "registry-keys.json").chmod(0o600)
    meta = {"participants": participants, "date": dt.date.today().isoformat()}
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    return ids


def seed(url: str, participants: int) -> dict[str, list[int]]:
    """Migrate, create the demo studies/users and enrol ``participants`` (half per site)."""
    import datetime as dt

    from cryoneuro.registry.audit import make_sessionmaker
    from cryoneuro.registry.auth import Actor
    from cryoneuro.registry.database_keys import check_startup
    from cryoneuro.registry.db import make_engine
    from cryoneuro.registry.demo import seed_demo
    from cryoneuro.registry.keys import write_key_file
    from cryoneuro.registry.migrate import upgrade
    from cryoneuro.registry.models import User
    from cryoneuro.registry.nhs import nhs_check_digit
    from cryoneuro.registry.schemas import EnrolmentIn, ProcedureIn
    from cryoneuro.registry.services import clinical
    from cryoneuro.registry.services import participants as svc
    from cryoneuro.registry.services.setup import DEFAULT_CRITERIA
    from cryoneuro.registry.settings import RegistrySettings

    upgrade(url)
    write_key_file(KEY_FILE)
    settings = RegistrySettings(db_url=url, key_file=KEY_FILE).load_keys()
    factory = make_sessionmaker(make_engine(url), settings.keys)
    check_startup(settings, factory)
    users = seed_demo(factory, settings, PASSWORD)
    ids: dict[str, list[int]] = {"RBH": [], "LTH": []}
    today = dt.date.today()
    # an eligible participant: inclusion criteria met, exclusion criteria absent
    eligibility = {c["code"]: c["kind"] == "inclusion" for c in DEFAULT_CRITERIA}
    n, made = 0, 0
    with factory() as session:
        actor = Actor.from_user(session.get(User, users["admin"]))
    while made < participants:
        with factory() as session, session.begin():
            for _ in range(min(500, participants - made)):
                nine = f"999{n:06d}"
                n += 1
                check = nhs_check_digit(nine)
                if check is None:
                    continue
                site = "RBH" if made % 2 == 0 else "LTH"
                body = EnrolmentIn(
                    study_code="STUMP",
                    site_code=site,
                    nhs_number=nine + str(check),
                    sex="male",
                    age_at_enrolment_years=60,
                    enrolment_date=today - dt.timedelta(days=400),
                    consent_date=today - dt.timedelta(days=401),
                    consent_form_version="v1",
                    consented=True,
                    eligibility=eligibility,
                    neuroma={
                        "neuroma_type": "stump",
                        "anatomical_site": "tibial nerve",
                        "laterality": "left",
                        "size_mm": 9.0,
                        "prior_treatments": [],
                    },
                )
                pid = svc.enrol(session, settings, actor, body).id
                ids[site].append(pid)
                # a cryoablation 30–390 days ago: day 0 of the visit schedule, so the dashboard
                # computes due and overdue windows for every participant, as in a live registry
                clinical.record_procedure(
                    session,
                    actor,
                    pid,
                    ProcedureIn(
                        procedure_date=today - dt.timedelta(days=30 + made % 361),
                        imaging_modality="ultrasound",
                        anaesthesia="local",
                        device_name="generic",
                        manufacturer="n/a",
                        device_lot="L1",
                        gas="nitrous-oxide",
                        operator="IR",
                    ),
                )
                made += 1
    return ids


async def _login(client) -> dict[str, str]:
    async with client.post("/api/login", json={"username": "nurse", "password": PASSWORD}) as r:
        return {"X-CSRF-Token": (await r.json())["csrf_token"]}


async def _user(
    client,
    headers,
    ids: list[int],
    budget: list[int],
    latencies: list[tuple[str, float, int]],
    deadline: float,
    errors: list[str],
    think_s: float,
    seed: int,
):
    import datetime as dt

    rng = random.Random(seed)
    while budget[0] > 0 and time.monotonic() < deadline:
        budget[0] -= 1
        if think_s > 0:  # a user reads and types between submissions (exponential think time)
            await asyncio.sleep(rng.expovariate(1.0 / think_s))
        t0 = time.perf_counter()
        if rng.random() < 0.1:
            async with client.get("/api/dashboard") as resp:
                await resp.read()
            kind = "dashboard"
        else:
            pid = rng.choice(ids)
            body = {
                "visit_code": rng.choice(VISITS),
                "visit_date": (dt.date.today() - dt.timedelta(days=3)).isoformat(),
                "answers": {"nrs": {"pain": rng.randint(0, 10)}},
            }
            async with client.post(
                f"/api/participants/{pid}/visits", json=body, headers=headers
            ) as resp:
                text = await resp.text()
            kind = "follow-up"
            if resp.status == 422 and len(errors) < 3:
                errors.append(text[:300])
        latencies.append((kind, time.perf_counter() - t0, resp.status))


TOKEN_MARK = 'name="csrf_token" value="'


def _token(html: str) -> str:
    start = html.index(TOKEN_MARK) + len(TOKEN_MARK)
    return html[start : html.index('"', start)]


async def _page_login(client) -> dict[str, str]:
    """Log in through the HTML form (GET /login for the CSRF token, then POST); returns the
    token for later form posts (the session keeps it, deps.start_session)."""
    async with client.get("/login") as r:
        token = _token(await r.text())
    form = {"username": "nurse", "password": PASSWORD, "csrf_token": token}
    for _ in range(5):
        async with client.post("/login", data=form, allow_redirects=False) as r:
            if r.status == 303:
                return {"csrf_token": token}
            if r.status != 503:
                break
            # 20 log-ins at once (argon2, deliberately slow) can find the database busy: the
            # server says so with 503 and Retry-After, and a browser's user would retry
            await asyncio.sleep(float(r.headers.get("Retry-After", "2")))
    raise SystemExit(f"page login failed: HTTP {r.status}")


#: The page cycle of ``--mix pages``: every kind is a fifth of the requests.
PAGE_CYCLE = (
    "dashboard",
    "participant list",
    "participant page",
    "follow-up GET",
    "follow-up POST",
)


async def _page_user(
    client,
    form_token,
    ids: list[int],
    budget: list[int],
    latencies: list[tuple[str, float, int]],
    deadline: float,
    errors: list[str],
    think_s: float,
    seed: int,
):
    import datetime as dt

    rng = random.Random(seed)
    step = seed % len(PAGE_CYCLE)  # clients start at different points of the cycle
    pid = rng.choice(ids)
    while budget[0] > 0 and time.monotonic() < deadline:
        budget[0] -= 1
        if think_s > 0:
            await asyncio.sleep(rng.expovariate(1.0 / think_s))
        kind = PAGE_CYCLE[step]
        step = (step + 1) % len(PAGE_CYCLE)
        if kind == "participant page":
            pid = rng.choice(ids)
        t0 = time.perf_counter()
        if kind == "follow-up POST":
            form = {
                **form_token,
                "visit_code": rng.choice(VISITS),
                "visit_date": (dt.date.today() - dt.timedelta(days=3)).isoformat(),
                "answers.nrs.pain": str(rng.randint(0, 10)),
            }
            async with client.post(
                f"/participants/{pid}/followup", data=form, allow_redirects=False
            ) as resp:
                text = await resp.text()
            if resp.status == 422 and len(errors) < 3:
                errors.append(text[:300])
        else:
            url = {
                "dashboard": "/",
                # one page of the list (a server without paging sends all)
                "participant list": f"/api/participants?limit=100&offset={100 * rng.randrange(50)}",
                "participant page": f"/participants/{pid}",
                "follow-up GET": f"/participants/{pid}/followup",
            }[kind]
            async with client.get(url) as resp:
                await resp.read()
        latencies.append((kind, time.perf_counter() - t0, resp.status))


async def load(
    base_url: str,
    ids: list[int],
    users: int,
    requests: int,
    max_seconds: float,
    think_s: float = 0.0,
    mix: str = "api",
):
    """Concurrent users, each an aiohttp session with its own cookies (aiohttp rather than
    httpx: the load generator shares the 2-core machine with the server, and aiohttp needs
    a fraction of httpx's CPU per request, so more of the machine measures the server)."""
    import aiohttp

    latencies: list[tuple[str, float, int]] = []
    errors: list[str] = []
    budget = [requests]
    timeout = aiohttp.ClientTimeout(total=30.0)
    clients = [
        aiohttp.ClientSession(
            base_url=base_url, timeout=timeout, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        for _ in range(users)
    ]
    try:
        # log every user in first (argon2 hashing is deliberately slow), then time the data entry
        login, user = (_page_login, _page_user) if mix == "pages" else (_login, _user)
        headers = await asyncio.gather(*(login(c) for c in clients))
        deadline = time.monotonic() + max_seconds
        t0 = time.perf_counter()
        await asyncio.gather(
            *(
                user(c, h, ids, budget, latencies, deadline, errors, think_s, n)
                for n, (c, h) in enumerate(zip(clients, headers, strict=True))
            )
        )
        if errors:
            print("sample 422 responses:", *errors, sep="\n", file=sys.stderr)
    finally:
        for c in clients:
            await c.close()
    return latencies, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="PostgreSQL URL (default: start a throwaway cluster)")
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=100, help="concurrent API users")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--max-seconds", type=float, default=180.0)
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument(
        "--think-s",
        type=float,
        default=2.0,
        help="mean think time between a user's requests (0 = back to back: a saturation test)",
    )
    parser.add_argument(
        "--snapshot",
        type=Path,
        help="folder: save the seeded registry there (first run) or restore it (later runs)",
    )
    parser.add_argument(
        "--mix",
        choices=("api", "pages"),
        default="api",
        help="api: 90 %% follow-up API posts, 10 %% dashboard API; pages: the page cycle",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "registry_load.json")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()  # the machine is shared: say how busy it was

    stop = None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    url = args.db
    if url is None:
        url, stop = start_postgres()
    server = None
    try:
        t0 = time.perf_counter()
        ids = seed_or_restore(url, args.participants, args.snapshot)
        seed_s = time.perf_counter() - t0
        port = _free_port()
        env = {
            **os.environ,
            "CRYONEURO_KEY_FILE": str(KEY_FILE),
            "CRYONEURO_SECURE_COOKIES": "false",
        }
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
            # the server outlives this call; the log is closed with the process below
            stderr=open(args.out.with_suffix(".server.log"), "w"),  # noqa: SIM115
        )
        base = f"http://127.0.0.1:{port}"
        ready = time.monotonic() + 180  # a busy shared machine starts the workers slowly
        while time.monotonic() < ready:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.2)
        time.sleep(2.0)  # the port opens with the first worker; let the second start too
        lat, wall = asyncio.run(
            load(
                base,
                ids["RBH"],
                args.users,
                args.requests,
                args.max_seconds,
                args.think_s,
                args.mix,
            )
        )
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:  # a busy machine: do not leave it running
                server.kill()
                server.wait()
        if stop is not None:
            stop()
    ms = np.array([x[1] for x in lat]) * 1e3
    codes = [x[2] for x in lat]
    report = {
        "participants": args.participants,
        "mix": args.mix,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "users": args.users,
        "server_workers": args.workers,
        "think_s": args.think_s,
        "requests": len(lat),
        "seed_seconds": seed_s,
        "wall_seconds": wall,
        "throughput_per_s": len(lat) / wall,
        "latency_ms": {
            "p50": float(np.percentile(ms, 50)),
            "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)),
            "max": float(ms.max()),
        },
        "status": {str(c): codes.count(c) for c in sorted(set(codes))},
        "p95_ms_by_kind": {
            k: float(np.percentile([x[1] * 1e3 for x in lat if x[0] == k], 95))
            for k in sorted({x[0] for x in lat})
        },
        "server_errors": sum(c >= 500 for c in codes),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(
        f"| participants | concurrent users | requests | throughput (req/s) | p50 (ms) | p95 (ms) "
        f"| p99 (ms) | 5xx |\n"
        f"|---|---|---|---|---|---|---|---|\n| {args.participants} | {args.users} | {len(lat)} | "
        f"{report['throughput_per_s']:.0f} | {report['latency_ms']['p50']:.0f} | "
        f"{report['latency_ms']['p95']:.0f} | "
        f"{report['latency_ms']['p99']:.0f} | {report['server_errors']} |\n(seeding took "
        f"{seed_s:.0f} s; "
        f"status codes {report['status']}; p95 by kind {report['p95_ms_by_kind']})"
    )
    return 0 if report["server_errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
