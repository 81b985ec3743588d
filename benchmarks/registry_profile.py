"""Where a registry page spends its time (issue 17 item 7): cProfile of the dashboard,
participant list, participant page and follow-up form paths on a seeded registry.

    PYTHONPATH=src .venv/bin/python benchmarks/registry_profile.py [--participants 10000]
        [--repeat 20] [--top 25] [--db postgresql://…] [--snapshot DIR]

Seeds the registry as benchmarks/registry_load.py does (the same function: the service layer,
audit trail included; PostgreSQL started in a temp dir unless ``--db``), logs in as the
data-entry user through the page form with Starlette's TestClient (in process: the server,
not the network, is measured), then runs each request ``--repeat`` times under cProfile and
prints the mean wall time per request and the functions with the most cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import registry_load

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def main(argv: list[str] | None = None) -> int:
    import datetime as dt

    from fastapi.testclient import TestClient

    from cryoneuro.registry.settings import RegistrySettings
    from cryoneuro.web import create_app

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--db")
    ap.add_argument("--snapshot", type=Path, help="as registry_load.py --snapshot")
    ap.add_argument("--only", help="profile only this kind (e.g. dashboard)")
    args = ap.parse_args(argv)
    url, stop = (args.db, None) if args.db else registry_load.start_postgres()
    try:
        t0 = time.perf_counter()
        ids = registry_load.seed_or_restore(url, args.participants, args.snapshot)["RBH"]
        print(f"seeded {args.participants} participants in {time.perf_counter() - t0:.0f} s")
        settings = RegistrySettings(
            db_url=url, key_file=registry_load.KEY_FILE, secure_cookies=False
        ).load_keys()
        with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
            token = TOKEN.search(client.get("/login").text).group(1)
            form = {"username": "nurse", "password": registry_load.PASSWORD, "csrf_token": token}
            assert client.post("/login", data=form, follow_redirects=False).status_code == 303
            visit_date = (dt.date.today() - dt.timedelta(days=3)).isoformat()
            step = iter(range(10**6))

            def followup_post() -> int:
                pid = ids[next(step) % len(ids)]
                data = {
                    "csrf_token": token,
                    "visit_code": "m1",
                    "visit_date": visit_date,
                    "answers.nrs.pain": "4",
                }
                return client.post(
                    f"/participants/{pid}/followup", data=data, follow_redirects=False
                ).status_code

            kinds = {
                "dashboard": lambda: client.get("/").status_code,
                "participant list": lambda: (
                    client.get("/api/participants?limit=100&offset=2000").status_code
                ),
                "participant page": lambda: client.get(f"/participants/{ids[17]}").status_code,
                "follow-up GET": lambda: (
                    client.get(f"/participants/{ids[17]}/followup").status_code
                ),
                "follow-up POST": followup_post,
            }
            # the pages run in the TestClient's server thread, which cProfile does not see:
            # the dashboard's service calls are also profiled here, in this thread
            from cryoneuro.registry.auth import Actor
            from cryoneuro.registry.models import User
            from cryoneuro.registry.services.dashboard import dashboard, outcome_summary
            from cryoneuro.registry.services.participants import participant_rows

            factory = client.app.state.session_factory
            with factory() as session:
                nurse = session.query(User).filter_by(username="nurse").one()
                actor = Actor.from_user(nurse)
                services = {
                    "dashboard()": lambda: dashboard(session, actor),
                    "outcome_summary()": lambda: outcome_summary(session, actor),
                    "participant_rows(page)": lambda: participant_rows(
                        session, actor, limit=100, offset=2000
                    ),
                }
                for name, call in services.items():
                    if args.only and args.only not in ("services", name):
                        continue
                    call()
                    prof = cProfile.Profile()
                    t = time.perf_counter()
                    prof.enable()
                    for _ in range(args.repeat):
                        call()
                    prof.disable()
                    ms = (time.perf_counter() - t) / args.repeat * 1e3
                    print(f"\n## service {name}: {ms:.1f} ms per call (profiled)")
                    text = io.StringIO()
                    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(args.top)
                    print(text.getvalue())
            for kind, call in kinds.items():
                if args.only and kind != args.only:
                    continue
                status = call()  # warm (templates compiled, caches filled)
                prof = cProfile.Profile()
                t = time.perf_counter()
                prof.enable()
                for _ in range(args.repeat):
                    status = call()
                prof.disable()
                ms = (time.perf_counter() - t) / args.repeat * 1e3
                print(f"\n## {kind}: {ms:.1f} ms per request (HTTP {status}, profiled)")
                text = io.StringIO()
                pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(args.top)
                print(text.getvalue())
    finally:
        if stop is not None:
            stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
